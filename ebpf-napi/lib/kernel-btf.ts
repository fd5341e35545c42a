// The kernel's BTF as the addon hands it to libbpf (src/kernel_btf.cc): mapped from
// /sys/kernel/btf/vmlinux where the kernel allows it, else libbpf's own search.
import { native } from "./native";

/** How this process's loads of the kernel's BTF went, counted since the addon was loaded. */
export interface KernelBtfLoads {
  /** Parsed from the mapped /sys/kernel/btf/vmlinux: one copy of it in memory, not two. */
  mapped: number;
  /** Handed to libbpf's own search (the file could not be mapped or did not parse). */
  searched: number;
}

/** How the loads of the kernel's BTF (every object load that needs it) went so far. */
export function kernelBtfLoads(): KernelBtfLoads {
  return native().kernelBtfLoads();
}

/**
 * Parses the BTF file at `path` the way the addon loads the kernel's (mapped, not read);
 * returns its number of types. Throws BpfError (op open, fstat, mmap or btf__new) where that
 * way fails, which for the kernel's own file means libbpf's search serves instead.
 */
export function mapKernelBtf(path: string): number {
  return native().mapKernelBtf(path);
}

/** libbpf's own search for the kernel's BTF (the fallback); its number of types. */
export function searchKernelBtf(): number {
  return native().searchKernelBtf();
}

/**
 * Tests: the file the addon maps for libbpf instead of /sys/kernel/btf/vmlinux (a missing or
 * non-BTF one makes every load take libbpf's search); null restores the kernel's.
 */
export function setKernelBtfPath(path: string | null): void {
  native().setKernelBtfPath(path);
}
