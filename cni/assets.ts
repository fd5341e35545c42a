// Build outputs the binary carries: the BPF objects and the ebpf-napi addon.
// In the single executable they come from SEA assets; in a checkout, from the build dirs.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { assetKey, buildInfo, isBundled } from "./build-info";

/** The repository root when running from out/ (compiled) or from a checkout. */
export function repoRoot(): string {
  // out/cni/assets.js -> repo root is two levels up from out/cni
  return join(__dirname, "..", "..");
}

const bpfSuffix = ".bpf.o";

/** The bytes of a compiled BPF object, by base name ("capture" -> capture.bpf.o). */
export function bpfObject(name: string): Buffer {
  if (isBundled()) {
    if (!buildInfo().bpfObjects.includes(name)) {
      throw new Error(`no BPF object ${JSON.stringify(name)} in this binary`);
    }
    const sea = require("node:sea") as typeof import("node:sea");
    return Buffer.from(sea.getAsset(assetKey.bpf(name)));
  }
  return readFileSync(join(repoRoot(), "bpf", "build", `${name}${bpfSuffix}`));
}

/** Base names of every BPF object available (embedded, or built in bpf/build). */
export function bpfObjectNames(): string[] {
  if (isBundled()) return [...buildInfo().bpfObjects];
  return readdirSync(join(repoRoot(), "bpf", "build"))
    .filter((f) => f.endsWith(bpfSuffix))
    .map((f) => f.slice(0, -bpfSuffix.length))
    .sort();
}
