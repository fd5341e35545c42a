// Dotted numeric versions of any length, as glibc ("2.33") and kernels ("6.18.44") write them.

/** Compares dotted numeric versions ("2.28" < "2.33" < "2.33.1"): negative, zero or positive. */
export function compareDotted(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The numeric version at the start of a kernel release ("6.18.44-fc-v657" -> "6.18.44"), or null. */
export function kernelVersion(release: string): string | null {
  return /^(\d+\.\d+(?:\.\d+)?)/.exec(release)?.[1] ?? null;
}
