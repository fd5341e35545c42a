// Runs a reference plugin that speaks CNI up to 1.0.0 inside a 1.1.0 configuration list.
//
// No primary plugin on this machine supports 1.1.0 (Debian's containernetworking-plugins 1.1.1
// and released Calico stop at 1.0.0), yet waggle must be tested in a 1.1.0 list. The result
// types of 1.0.0 and 1.1.0 are the same shape, so for ADD/DEL/CHECK this shim relabels the
// request as 1.0.0, runs the real plugin, and relabels its output as 1.1.0. GC and STATUS
// (new in 1.1.0) succeed without calling the plugin: it has neither. VERSION adds "1.1.0".
// Usage (from a wrapper script named like the plugin): node cni-version-shim.js <real plugin>
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

const real = process.argv[2];
const stdin = readFileSync(0, "utf8");
const command = process.env.CNI_COMMAND;

function relabel(json: string, from: string, to: string): string {
  if (json.trim() === "") return json;
  const value = JSON.parse(json) as Record<string, unknown>;
  if (value.cniVersion === from) value.cniVersion = to;
  const prev = value.prevResult as Record<string, unknown> | undefined;
  if (prev && prev.cniVersion === from) prev.cniVersion = to;
  return JSON.stringify(value);
}

function runReal(input: string): { stdout: string; status: number } {
  const r = spawnSync(real, [], { input, env: process.env, encoding: "utf8" });
  if (r.error) throw r.error;
  process.stderr.write(r.stderr);
  return { stdout: r.stdout, status: r.status ?? 1 };
}

let version: unknown;
try {
  version = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
} catch {
  version = undefined;
}
if (command === "VERSION") {
  const r = runReal(stdin);
  const info = JSON.parse(r.stdout) as { supportedVersions: string[] };
  info.supportedVersions = [...new Set([...info.supportedVersions, "1.1.0"])];
  process.stdout.write(JSON.stringify(info));
  process.exitCode = r.status;
} else if (version !== "1.1.0") {
  const r = runReal(stdin);
  process.stdout.write(r.stdout);
  process.exitCode = r.status;
} else if (command === "GC" || command === "STATUS") {
  process.exitCode = 0;
} else {
  const r = runReal(relabel(stdin, "1.1.0", "1.0.0"));
  process.stdout.write(relabel(r.stdout, "1.0.0", "1.1.0"));
  process.exitCode = r.status;
}
