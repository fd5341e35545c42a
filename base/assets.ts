// Build outputs the binary carries: the BPF objects and the ebpf-napi addon.
// In the single executable they come from SEA assets; in a checkout, from the build dirs.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { assetKey, buildInfo, isBundled } from "./build-info";

/** The repository root when running from out/ (compiled) or from a checkout. */
export function repoRoot(): string {
  // out/base/assets.js -> repo root is two levels up from out/base
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

/** Objects bpf/ builds for tests only (the addon's selftest programs): never shipped. */
export const testOnlyBpfObjects: readonly string[] = ["selftest"];

/** The shipped objects' base names among the files of a BPF build directory, sorted. */
export function shippedBpfObjects(files: string[]): string[] {
  return files
    .filter((f) => f.endsWith(bpfSuffix))
    .map((f) => f.slice(0, -bpfSuffix.length))
    .filter((name) => !testOnlyBpfObjects.includes(name))
    .sort();
}

/** Base names of every BPF object waggle ships (embedded, or built in bpf/build). */
export function bpfObjectNames(): string[] {
  if (isBundled()) return [...buildInfo().bpfObjects];
  return shippedBpfObjects(readdirSync(join(repoRoot(), "bpf", "build")));
}
