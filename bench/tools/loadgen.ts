// waggle-loadgen (bench/loadgen/loadgen.c): the open-loop fixed-rate HTTP load generator.
// Built on first use (./c-program.ts); its JSON result is parsed and checked here.

import { type Histogram, normalizeHistogram } from "../histogram";
import { benchSource, buildCProgram } from "./c-program";

const SOURCE = benchSource("loadgen", "loadgen.c");

/** Compiles loadgen.c when the binary is missing or older; returns the binary's path. */
export function buildLoadgen(source = SOURCE, outDir?: string): Promise<string> {
  return buildCProgram(source, "waggle-loadgen", outDir);
}

export interface LoadgenArgs {
  target: string;
  rate: number;
  durationS: number;
  warmupS: number;
  connections: number;
  newConnection: boolean;
  timeoutMs: number;
}

export function loadgenArgv(a: LoadgenArgs): string[] {
  if (!(a.rate > 0)) throw new Error(`loadgen rate must be positive, got ${a.rate}`);
  return [
    "--target",
    a.target,
    "--rate",
    String(a.rate),
    "--duration",
    String(a.durationS),
    "--warmup",
    String(a.warmupS),
    "--connections",
    String(a.connections),
    "--timeout-ms",
    String(a.timeoutMs),
    ...(a.newConnection ? ["--new-connection"] : []),
  ];
}

export const LOADGEN_ERROR_KINDS = [
  "connect_eaddrnotavail",
  "connect_refused",
  "connect_timeout",
  "connect_other",
  "reset",
  "read_other",
  "write_other",
  "closed_early",
  "timeout",
  "bad_response",
  "status_non_2xx",
  "socket",
] as const;
export type LoadgenErrorKind = (typeof LOADGEN_ERROR_KINDS)[number];

export interface LoadgenResult {
  rate: number;
  durationS: number;
  warmupS: number;
  newConnection: boolean;
  scheduled: number;
  sent: number;
  completed: number;
  /** Successful requests after the warm-up: the ones in the histograms. */
  recorded: number;
  unsent: number;
  inFlightAtEnd: number;
  /** Requests that started more than 1 ms after their intended time. */
  late: number;
  maxQueue: number;
  elapsedUs: number;
  interrupted: boolean;
  errors: Record<LoadgenErrorKind, number>;
  status: Record<string, number>;
  /** From intended start to response complete (what the fixed-rate client sees). */
  latencyUs: Histogram;
  /** From actual start (connect included) to response complete. */
  serviceUs: Histogram;
}

/** Parses loadgen's one JSON line; throws on anything malformed. */
export function parseLoadgenOutput(stdout: string): LoadgenResult {
  const line = stdout.split("\n").find((l) => l.startsWith('{"tool":"waggle-loadgen"'));
  if (!line) throw new Error(`loadgen printed no result: ${stdout.slice(0, 300)}`);
  const raw = JSON.parse(line) as LoadgenResult & { tool: string };
  for (const kind of LOADGEN_ERROR_KINDS) {
    if (!Number.isInteger(raw.errors?.[kind]))
      throw new Error(`loadgen result lacks error ${kind}`);
  }
  for (const k of ["scheduled", "sent", "completed", "recorded", "late", "elapsedUs"] as const) {
    if (!Number.isInteger(raw[k]) || raw[k] < 0) throw new Error(`loadgen result has a bad ${k}`);
  }
  const { tool: _tool, ...rest } = raw;
  return {
    ...rest,
    latencyUs: normalizeHistogram(raw.latencyUs),
    serviceUs: normalizeHistogram(raw.serviceUs),
  };
}

export function loadgenErrorCount(r: LoadgenResult): number {
  return Object.values(r.errors).reduce((a, b) => a + b, 0);
}
