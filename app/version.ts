// `waggle version`: what this binary is. Cheap by default; `--verbose` also loads the addon.
import { buildInfo, loadedChunks } from "../base/build-info";
import type { CliArgs, CliIo } from "../base/cli-io";

export interface VersionReport {
  version: string;
  commit: string;
  node: string;
  /** Only with --verbose: loading the addon to ask libbpf costs a dlopen. */
  libbpf?: string;
  /** Only with --verbose: where the addon was loaded from. */
  addon?: string;
  /** Only with --verbose, in the single executable: loaded JS chunks and their code cache verdict. */
  chunks?: Record<string, string>;
}

export async function runVersion(args: CliArgs, io: CliIo): Promise<number> {
  const info = buildInfo();
  const report: VersionReport = {
    version: info.version,
    commit: info.commit,
    node: process.version,
  };
  if (args.verbose) {
    const { loadAddon } = require("../base/addon") as typeof import("../base/addon");
    const addon = loadAddon();
    report.libbpf = addon.libbpfVersion;
    report.addon = addon.path;
    const chunks = loadedChunks();
    if (Object.keys(chunks).length > 0) report.chunks = chunks;
  }
  if (args.json) {
    io.out(`${JSON.stringify(report)}\n`);
    return 0;
  }
  const lines = [`waggle ${report.version} (commit ${report.commit})`, `node ${report.node}`];
  if (report.libbpf !== undefined) lines.push(`libbpf ${report.libbpf}`);
  if (report.addon !== undefined) lines.push(`addon ${report.addon}`);
  for (const [name, state] of Object.entries(report.chunks ?? {}))
    lines.push(`chunk ${name}: ${state}`);
  io.out(`${lines.join("\n")}\n`);
  return 0;
}
