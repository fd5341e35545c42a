// Build outputs the binary carries: the BPF objects and the ebpf-napi addon.
// In the single executable they come from SEA assets; in a checkout, from the build dirs.
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The repository root when running from out/ (compiled) or from a checkout. */
export function repoRoot(): string {
  // out/cni/assets.js -> repo root is two levels up from out/cni
  return join(__dirname, "..", "..");
}

/** The bytes of a compiled BPF object, by base name ("capture" -> capture.bpf.o). */
export function bpfObject(name: string): Buffer {
  return readFileSync(join(repoRoot(), "bpf", "build", `${name}.bpf.o`));
}
