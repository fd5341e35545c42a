// The node's cost of waggle's plugin (issue 16), the pure half: what the measurement records,
// the parsing of what it reads (GNU time's rusage lines, /proc/slabinfo, /proc/meminfo), the
// statistics over it (percentiles, the slope of ADD latency against pods attached, how busy
// the CPUs were during a burst) and the issue's targets. bench/node-cost-run.ts measures.

import type { TargetResult } from "./analysis";
import { quantile } from "./stats";

export interface NodeCostPlan {
  /** ADD, DEL and unmeshed ADD samples, each on a node with no other pod of this part. */
  samples: number;
  /** Meshed pods attached one by one. */
  scalePods: number;
  /** Pod counts at which probe pods' ADD and DEL are timed (each <= scalePods). */
  checkpoints: number[];
  /** Probe ADD/DEL pairs per checkpoint. */
  probes: number;
  /** ADDs started at once, then as many DELs. */
  burst: number;
}

/** The checkpoints for a scale of `pods`: 1, 10, 50, 100, 250 as far as they go, and pods. */
export function checkpointsFor(pods: number): number[] {
  if (!Number.isInteger(pods) || pods < 1) throw new Error(`scale needs >= 1 pod, got ${pods}`);
  return [...new Set([...[1, 10, 50, 100, 250].filter((c) => c < pods), pods])];
}

/** One plugin process as the chain ran it: wall time seen by the runtime, and its rusage. */
export interface ProcessCost {
  ms: number;
  /** Peak resident set (KiB, wait4's ru_maxrss); null when no rusage was recorded. */
  rssKiB: number | null;
  /** User + system CPU seconds. */
  cpuS: number | null;
}

export interface Rusage {
  elapsedS: number;
  userS: number;
  sysS: number;
  maxRssKiB: number;
}

/** GNU time's format for parseRusage: elapsed, user, system seconds and peak RSS (KiB). */
export const TIME_FORMAT = "%e %U %S %M";

/**
 * Parses the file `time -f TIME_FORMAT -o FILE` wrote: the last non-empty line (a failed
 * command adds "Command exited with non-zero status N" before it).
 */
export function parseRusage(text: string): Rusage {
  const line = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .pop();
  const parts = line?.split(/\s+/).map(Number) ?? [];
  if (parts.length !== 4 || parts.some((x) => !Number.isFinite(x) || x < 0))
    throw new Error(`not a "${TIME_FORMAT}" line from GNU time: ${JSON.stringify(text)}`);
  const [elapsedS, userS, sysS, maxRssKiB] = parts;
  return { elapsedS, userS, sysS, maxRssKiB };
}

/** Bytes held by live slab objects: the sum of active_objs x objsize over /proc/slabinfo. */
export function parseSlabBytes(text: string): number {
  let total = 0;
  let rows = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("slabinfo") || line.startsWith("#") || line.trim() === "") continue;
    const f = line.trim().split(/\s+/);
    const active = Number(f[1]);
    const size = Number(f[3]);
    if (!Number.isFinite(active) || !Number.isFinite(size))
      throw new Error(`unexpected /proc/slabinfo line: ${line}`);
    total += active * size;
    rows++;
  }
  if (rows === 0) throw new Error("/proc/slabinfo has no caches");
  return total;
}

/** One /proc/meminfo field in bytes (the file says kB). */
export function meminfoBytes(text: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(text);
  if (!m) throw new Error(`/proc/meminfo has no ${field}`);
  return Number(m[1]) * 1024;
}

export interface Percentiles {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function percentiles(values: readonly number[]): Percentiles {
  const xs = values.filter(Number.isFinite);
  return {
    n: xs.length,
    p50: quantile(xs, 0.5),
    p90: quantile(xs, 0.9),
    p99: quantile(xs, 0.99),
    max: xs.length ? Math.max(...xs) : Number.NaN,
  };
}

/** Least-squares slope of y over x (NaN with fewer than 2 distinct x). */
export function slope(points: readonly { x: number; y: number }[]): number {
  const ps = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (new Set(ps.map((p) => p.x)).size < 2) return Number.NaN;
  const mx = ps.reduce((s, p) => s + p.x, 0) / ps.length;
  const my = ps.reduce((s, p) => s + p.y, 0) / ps.length;
  let sxy = 0;
  let sxx = 0;
  for (const p of ps) {
    sxy += (p.x - mx) * (p.y - my);
    sxx += (p.x - mx) ** 2;
  }
  return sxy / sxx;
}

export interface Checkpoint {
  /** Meshed pods attached while the probes ran. */
  pods: number;
  add: ProcessCost[];
  del: ProcessCost[];
  /**
   * attachPod and detachPod with no process start, ms (absent before 2026-12-06 10:30): in the
   * bench's process until 2026-12-06 19:00, since then in its attach worker (attach-worker.ts).
   */
  attachMs?: number[];
  detachMs?: number[];
}

export interface KernelMemory {
  /** Meshed pods detached between the two readings. */
  pods: number;
  /** Growth of the shared maps' bytes_memlock per pod. */
  sharedMapsBytesPerPod: number;
  /** The pod's own pinned map (its record), bytes_memlock. */
  recordMapBytes: number;
  /** bpf links pinned per pod. */
  linksPerPod: number;
  /** Programs' bytes_memlock added per pod (shared programs: 0 expected). */
  programBytesPerPod: number;
  /** Live slab object bytes freed per pod by the detach. */
  slabBytesPerPod: number;
  /** Per-CPU memory (/proc/meminfo Percpu) freed per pod by the detach. */
  percpuBytesPerPod: number;
  /** Slab + per-CPU bytes the machine freed on its own over an equal wait just before (taken off). */
  driftBytes: number;
  /** The shared maps: name, type, max_entries and bytes_memlock with `pods` attached. */
  sharedMaps: { name: string; type: string; maxEntries: number; memlockBytes: number }[];
}

/** Kernel memory per pod: the larger of the slab+percpu reading and the maps' own accounting. */
export function kernelBytesPerPod(m: KernelMemory): number {
  const accounted = m.sharedMapsBytesPerPod + m.recordMapBytes + m.programBytesPerPod;
  return Math.max(accounted, m.slabBytesPerPod + m.percpuBytesPerPod);
}

export interface BurstPhase {
  /** Processes started at once. */
  size: number;
  failures: string[];
  /** Wall time from the first start to the last end. */
  wallMs: number;
  /** waggle's processes (rusage recorded by their wrapper). */
  waggle: ProcessCost[];
  /** CPU seconds of every child of the bench (the whole chain: every plugin, nsenter, sh). */
  chainCpuS: number;
}

export interface BurstFigures {
  add: BurstPhase;
  del: BurstPhase;
  cpus: number;
}

/**
 * How busy the machine's CPUs were with the chain during a burst phase: chain CPU seconds
 * over wall time x CPUs. Near 1: the burst was CPU-bound (processes waited for a CPU, not for
 * each other); well below 1 with long latencies: they waited on something else (a lock).
 */
export function busyFraction(phase: BurstPhase, cpus: number): number {
  return phase.chainCpuS / ((phase.wallMs / 1000) * cpus);
}

export interface NodeCostResults {
  plan: NodeCostPlan;
  /** The plugin the chain ran (dist/waggle or node over out/) and its VERSION answer. */
  binary: string;
  version: string;
  /** The machine's floor: `node -e 0` and the plugin's VERSION, run the same way as the chain runs waggle. */
  floor: { nodeE0: ProcessCost[]; waggleVersion: ProcessCost[] };
  meshedAdd: ProcessCost[];
  meshedDel: ProcessCost[];
  unmeshedAdd: ProcessCost[];
  /**
   * The node's first meshed ADD: it loads and pins the shared programs (on a node the installer
   * does that before waggle is chained in). Its pod stays attached through every timed sample,
   * as on a node that runs meshed pods (null in results of older runs).
   */
  firstAdd?: ProcessCost | null;
  /** ADD of the n-th meshed pod while n-1 were attached (pods: n - 1). */
  scaleAdds: { pods: number; ms: number }[];
  checkpoints: Checkpoint[];
  kernelMemory: KernelMemory | null;
  burst: BurstFigures | null;
}

export const msOf = (xs: readonly ProcessCost[]) => xs.map((x) => x.ms);
const rssOf = (xs: readonly ProcessCost[]) =>
  xs.flatMap((x) => (x.rssKiB === null ? [] : [x.rssKiB]));

/**
 * Peak RSS (MiB) over every waggle process of the samples, or NaN when none was recorded. The
 * node's first meshed ADD is not a sample (firstAdd, reported on its own).
 */
export function peakRssMiB(r: NodeCostResults): number {
  const all = rssOf([...r.meshedAdd, ...r.meshedDel, ...r.unmeshedAdd]);
  return all.length ? Math.max(...all) / 1024 : Number.NaN;
}

/** p50 ADD (or DEL) at the last checkpoint over p50 at the first. */
export function flatness(r: NodeCostResults, which: "add" | "del"): number {
  const [first, last] = [r.checkpoints[0], r.checkpoints[r.checkpoints.length - 1]];
  if (!first || !last || first === last) return Number.NaN;
  return quantile(msOf(last[which]), 0.5) / quantile(msOf(first[which]), 0.5);
}

/** The flatness a scale target accepts: p50 at the most pods within 10% of p50 at one pod. */
export const FLAT_RATIO = 1.1;
export const KERNEL_BYTES_PER_POD = 64 * 1024;

function target(
  id: string,
  description: string,
  measured: number,
  comparison: "<=" | ">=",
  threshold: number,
  detail: string,
  warnings: string[] = [],
): TargetResult {
  const ok = Number.isFinite(measured);
  return {
    id,
    description,
    measured: ok ? measured : null,
    threshold,
    comparison,
    met: ok ? (comparison === "<=" ? measured <= threshold : measured >= threshold) : null,
    detail: ok ? detail : `not measured: ${detail}`,
    warnings,
  };
}

/** Issue 16's targets, judged on a node-cost measurement and the in-process attach timings. */
export function nodeCostTargets(r: NodeCostResults, attachMs: readonly number[]): TargetResult[] {
  const p50 = (xs: readonly ProcessCost[]) => quantile(msOf(xs), 0.5);
  const floor = `floor: node -e 0 p50 ${p50(r.floor.nodeE0).toFixed(1)} ms, waggle VERSION p50 ${p50(r.floor.waggleVersion).toFixed(1)} ms`;
  const whole = (what: string, xs: ProcessCost[]) =>
    `p50 of ${xs.length} ${what} (the waggle process as the chain ran it); ${floor}`;
  const targets = [
    target(
      "node-add-p50",
      "ADD of a meshed pod, whole plugin process, p50 (ms)",
      p50(r.meshedAdd),
      "<=",
      40,
      whole("meshed ADDs", r.meshedAdd),
    ),
    target(
      "node-del-p50",
      "DEL of a meshed pod, whole plugin process, p50 (ms)",
      p50(r.meshedDel),
      "<=",
      30,
      whole("DELs", r.meshedDel),
    ),
    target(
      "node-unmeshed-add-p50",
      "ADD of an unmeshed pod, whole plugin process, p50 (ms)",
      p50(r.unmeshedAdd),
      "<=",
      30,
      whole("unmeshed ADDs", r.unmeshedAdd),
    ),
    target(
      "node-rss",
      "peak RSS of the plugin process (MiB)",
      peakRssMiB(r),
      "<=",
      64,
      `largest ru_maxrss over every ADD and DEL of the samples${r.firstAdd?.rssKiB ? `; the node's first meshed ADD, which loaded the shared programs, not among them: ${(r.firstAdd.rssKiB / 1024).toFixed(1)} MiB` : ""}`,
    ),
    target(
      "node-attach",
      "attachPod, in process (the bench's setup figure), median (ms)",
      attachMs.length ? quantile(attachMs, 0.5) : Number.NaN,
      "<=",
      1.4,
      `median of ${attachMs.length} attaches on fresh pods`,
    ),
  ];
  const last = r.checkpoints[r.checkpoints.length - 1];
  for (const which of ["add", "del"] as const)
    targets.push(
      target(
        `node-scale-${which}`,
        `${which.toUpperCase()} with ${last?.pods ?? "?"} meshed pods attached / with ${r.checkpoints[0]?.pods ?? "?"}, p50 ratio (flat)`,
        flatness(r, which),
        "<=",
        FLAT_RATIO,
        `p50 over ${r.plan.probes} probe pods per checkpoint; slope of every ADD against pods attached: ${(slope(r.scaleAdds.map((a) => ({ x: a.pods, y: a.ms }))) * 100).toFixed(3)} ms per 100 pods`,
      ),
    );
  targets.push(
    target(
      "node-kernel-memory",
      "kernel memory per meshed pod beyond the shared maps (KiB)",
      r.kernelMemory ? kernelBytesPerPod(r.kernelMemory) / 1024 : Number.NaN,
      "<=",
      KERNEL_BYTES_PER_POD / 1024,
      r.kernelMemory
        ? `over ${r.kernelMemory.pods} pods: the larger of slab+percpu freed by their detach (${((r.kernelMemory.slabBytesPerPod + r.kernelMemory.percpuBytesPerPod) / 1024).toFixed(1)} KiB) and the maps' and programs' own accounting (${((r.kernelMemory.sharedMapsBytesPerPod + r.kernelMemory.recordMapBytes + r.kernelMemory.programBytesPerPod) / 1024).toFixed(1)} KiB)`
        : "no scale run",
    ),
  );
  const b = r.burst;
  targets.push(
    target(
      "node-burst",
      `burst of ${b?.add.size ?? "?"} ADDs then DELs at once: failures`,
      b ? b.add.failures.length + b.del.failures.length : Number.NaN,
      "<=",
      0,
      b
        ? `ADD p99 ${percentiles(msOf(b.add.waggle)).p99.toFixed(0)} ms, DEL p99 ${percentiles(msOf(b.del.waggle)).p99.toFixed(0)} ms; CPUs busy ${(busyFraction(b.add, b.cpus) * 100).toFixed(0)}% during the ADDs`
        : "no burst run",
    ),
  );
  return targets;
}

/** CPU seconds of this process's waited-for children: cutime + cstime of /proc/self/stat. */
export function childrenCpuS(stat: string, ticksPerS = 100): number {
  // fields after "(comm)": state is field 3, so cutime (16) and cstime (17) are at 13 and 14
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cutime = Number(rest[13]);
  const cstime = Number(rest[14]);
  if (!Number.isFinite(cutime) || !Number.isFinite(cstime))
    throw new Error(`not a /proc/<pid>/stat line: ${stat.slice(0, 80)}`);
  return (cutime + cstime) / ticksPerS;
}
