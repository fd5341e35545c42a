// The machine's own speed, from waggle-speedprobe (tools/speedprobe.ts): idle probes of every
// CPU before and after the runs, and probes of the mesh's CPU around each run, of two kinds:
// alu (the CPU's own speed) and memory (the latency of the shared cache and memory). On a
// virtual machine both move with the host's other tenants; a run-to-run spread as large as
// the probes' is the machine's, not the mesh's. Pure: tested with synthetic samples.

import { median, type Spread, spread } from "./stats";
import { PROBE_KINDS, type ProbeKind, type SpeedSample } from "./tools/speedprobe";

/** Nanoseconds per step of each sample (lower: faster). */
export function samplesNsPerStep(s: SpeedSample): number[] {
  return s.ns.map((t) => t / s.iterations);
}

/** One kind of probe around one run: medians of its samples just before and just after. */
export interface ProbeAround {
  beforeNs: number;
  afterNs: number;
}

/** The probes around one run, ns per step. */
export interface RunSpeed {
  cpu: string | null;
  alu: ProbeAround;
  memory: ProbeAround;
}

/** The run's speeds from the probes taken before it and after it (one sample set per kind). */
export function runSpeed(before: readonly SpeedSample[], after: readonly SpeedSample[]): RunSpeed {
  const cpu = before[0]?.cpu ?? null;
  const pick = (list: readonly SpeedSample[], kind: ProbeKind, when: string) => {
    const s = list.filter((x) => x.kind === kind);
    if (s.length !== 1)
      throw new Error(`one ${kind} probe ${when} a run is needed, got ${s.length}`);
    if (s[0].cpu !== cpu)
      throw new Error(`probes of one run on different CPUs: ${cpu} and ${s[0].cpu}`);
    return median(samplesNsPerStep(s[0]));
  };
  const around = (kind: ProbeKind): ProbeAround => ({
    beforeNs: pick(before, kind, "before"),
    afterNs: pick(after, kind, "after"),
  });
  return { cpu, alu: around("alu"), memory: around("memory") };
}

/** One figure per run and kind: the mean of the probe before and after it (lower: faster). */
export function probeNsPerStep(r: RunSpeed, kind: ProbeKind): number {
  return (r[kind].beforeNs + r[kind].afterNs) / 2;
}

/** How far a kind of probe moved between just before a run and just after it. */
export function driftWithin(r: RunSpeed, kind: ProbeKind): number {
  return Math.abs(r[kind].afterNs / r[kind].beforeNs - 1);
}

/** Idle probes of every CPU (each kind), before the first run and after the last. */
export interface MachineStability {
  start: SpeedSample[];
  end: SpeedSample[];
}

export interface StabilityRow {
  when: "start" | "end";
  kind: ProbeKind;
  cpu: string | null;
  nsPerStep: Spread;
}

export function summarizeStability(m: MachineStability): StabilityRow[] {
  return (["start", "end"] as const).flatMap((when) =>
    PROBE_KINDS.flatMap((kind) =>
      m[when]
        .filter((s) => s.kind === kind)
        .map((s) => ({ when, kind, cpu: s.cpu, nsPerStep: spread(samplesNsPerStep(s)) })),
    ),
  );
}
