// waggle-speedprobe (bench/speedprobe/speedprobe.c): times fixed chains of work on one CPU,
// one that only the CPU's speed moves (alu) and one that only the latency of the shared cache
// and memory moves (memory), so the bench can say how much the machine itself moved while it
// measured. Built on first use (./c-program.ts); run pinned with taskset; its JSON is checked
// here.

import { runChecked } from "../../test/support/command";
import { benchSource, buildCProgram } from "./c-program";

const SOURCE = benchSource("speedprobe", "speedprobe.c");

export const PROBE_KINDS = ["alu", "memory"] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];

/**
 * Steps per sample: about 5 ms each on this machine (2.3 ns per xorshift step, about 150 ns
 * per load from a 64 MiB buffer).
 */
export const PROBE_ITERATIONS: Record<ProbeKind, number> = { alu: 1 << 21, memory: 1 << 15 };

export function buildSpeedprobe(source = SOURCE, outDir?: string): Promise<string> {
  return buildCProgram(source, "waggle-speedprobe", outDir);
}

export interface SpeedSample {
  kind: ProbeKind;
  /** The CPU the probe was pinned to; null when it ran unpinned. */
  cpu: string | null;
  /** Steps per sample. */
  iterations: number;
  /** Nanoseconds per sample, in the order taken. */
  ns: number[];
}

export function speedprobeArgv(
  kind: ProbeKind,
  samples: number,
  iterations = PROBE_ITERATIONS[kind],
): string[] {
  if (!PROBE_KINDS.includes(kind))
    throw new Error(`speedprobe kind must be alu or memory: ${kind}`);
  if (!Number.isInteger(samples) || samples < 1)
    throw new Error(`speedprobe samples must be a positive integer, got ${samples}`);
  if (!Number.isInteger(iterations) || iterations < 1)
    throw new Error(`speedprobe iterations must be a positive integer, got ${iterations}`);
  return ["--kind", kind, "--samples", String(samples), "--iterations", String(iterations)];
}

/** Parses the probe's JSON line; throws on anything malformed or of another kind. */
export function parseSpeedprobeOutput(
  stdout: string,
  kind: ProbeKind,
  cpu: string | null,
  samples: number,
): SpeedSample {
  const line = stdout.split("\n").find((l) => l.startsWith('{"tool":"waggle-speedprobe"'));
  if (!line) throw new Error(`speedprobe printed no result: ${stdout.slice(0, 300)}`);
  const raw = JSON.parse(line) as { kind: unknown; iterations: unknown; ns: unknown };
  if (raw.kind !== kind) throw new Error(`speedprobe ran kind ${raw.kind}, not ${kind}`);
  if (!Number.isInteger(raw.iterations) || (raw.iterations as number) < 1)
    throw new Error("speedprobe result has a bad iteration count");
  if (
    !Array.isArray(raw.ns) ||
    raw.ns.length !== samples ||
    !raw.ns.every((t) => Number.isInteger(t) && t > 0)
  )
    throw new Error(`speedprobe result should hold ${samples} positive sample times`);
  return { kind, cpu, iterations: raw.iterations as number, ns: raw.ns as number[] };
}

/** Every kind of probe on one CPU in turn, one sample set each. */
export async function probeEveryKind(
  binary: string,
  cpu: string | null,
  samples: number,
): Promise<SpeedSample[]> {
  const out: SpeedSample[] = [];
  for (const kind of PROBE_KINDS) out.push(await probeCpu(binary, cpu, kind, samples));
  return out;
}

/** Runs the probe on one CPU (taskset) or unpinned (cpu null) on the host. */
export async function probeCpu(
  binary: string,
  cpu: string | null,
  kind: ProbeKind,
  samples: number,
): Promise<SpeedSample> {
  const argv = speedprobeArgv(kind, samples);
  const out =
    cpu === null
      ? await runChecked(binary, argv)
      : await runChecked("taskset", ["-c", cpu, binary, ...argv]);
  return parseSpeedprobeOutput(out, kind, cpu, samples);
}
