// From runs to figures: per cell (rule level x workload x mode) the median and spread of each
// figure over rounds, pooled latency distributions, mode-to-mode ratios taken within each
// round, and the issue's targets judged on them. Pure: tested with synthetic runs.

import {
  type Histogram,
  type LatencySummary,
  mergeHistograms,
  summarizeHistogram,
} from "./histogram";
import { probeNsPerStep, type RunSpeed } from "./machine-speed";
import type { ModeName } from "./modes";
import { TLS_SUFFIX } from "./plan";
import { type ByRound, median, pairedRatios, type Spread, spread } from "./stats";
import { PROBE_KINDS, type ProbeKind } from "./tools/speedprobe";

/** The parts of a run the analysis reads (RunRecord satisfies it). */
export interface RunFigures {
  level: string;
  workload: string;
  mode: ModeName;
  round: number;
  throughputRps: number;
  latencyUs: LatencySummary;
  histogram: Histogram | null;
  errorCount: number;
  cpuPer1000: { node: number; loadgen: number; sidecars: number; app: number; system: number };
  portPressure: { exhausted: boolean; maxEphemeralTimeWait: number; addrNotAvail: number };
  /** The machine's speed around the run (absent from results of older benches). */
  machineSpeed?: RunSpeed;
}

export type Metric =
  | "throughput"
  | "p50"
  | "p90"
  | "p99"
  | "max"
  | "cpu"
  | "probeAlu"
  | "probeMemory";

export const METRICS: Record<Metric, { label: string; of: (r: RunFigures) => number }> = {
  throughput: { label: "throughput", of: (r) => r.throughputRps },
  p50: { label: "p50 latency", of: (r) => num(r.latencyUs.p50) },
  p90: { label: "p90 latency", of: (r) => num(r.latencyUs.p90) },
  p99: { label: "p99 latency", of: (r) => num(r.latencyUs.p99) },
  max: { label: "max latency", of: (r) => num(r.latencyUs.max) },
  cpu: { label: "node CPU per 1000 requests", of: (r) => num(r.cpuPer1000.node) },
  probeAlu: { label: "CPU probe time per step", of: (r) => probeOf(r, "alu") },
  probeMemory: { label: "memory probe time per step", of: (r) => probeOf(r, "memory") },
};

/** The metric of each kind of machine probe. */
export const PROBE_METRIC: Record<ProbeKind, Metric> = { alu: "probeAlu", memory: "probeMemory" };

function probeOf(r: RunFigures, kind: ProbeKind): number {
  return r.machineSpeed ? probeNsPerStep(r.machineSpeed, kind) : Number.NaN;
}

/** JSON turns NaN into null: read either as a number or NaN. */
function num(v: number | null | undefined): number {
  return typeof v === "number" ? v : Number.NaN;
}

export interface CellSummary {
  level: string;
  workload: string;
  mode: ModeName;
  runs: number;
  figures: Record<Metric, Spread>;
  /** Medians of CPU seconds per 1000 requests by role. */
  cpuByRole: { loadgen: number; sidecars: number; app: number; system: number };
  /** All runs' requests pooled (null when the tool gives no histogram: sockperf). */
  pooled: LatencySummary | null;
  /** Box-plot figures: pooled when there is a histogram, else medians of the runs' summaries. */
  box: { p1: number; p25: number; p50: number; p75: number; p99: number; max: number };
  errors: number;
  exhaustedRuns: number;
  maxEphemeralTimeWait: number;
}

function cellKey(r: { level: string; workload: string; mode: string }): string {
  return `${r.level}\u0000${r.workload}\u0000${r.mode}`;
}

/** One summary per cell, in the order cells first appear in the runs. */
export function summarizeCells(runs: readonly RunFigures[]): CellSummary[] {
  const cells = new Map<string, RunFigures[]>();
  for (const r of runs) {
    const k = cellKey(r);
    const list = cells.get(k) ?? [];
    list.push(r);
    cells.set(k, list);
  }
  return [...cells.values()].map((rs) => {
    const figures = Object.fromEntries(
      (Object.keys(METRICS) as Metric[]).map((m) => [m, spread(rs.map(METRICS[m].of))]),
    ) as Record<Metric, Spread>;
    const histograms = rs.map((r) => r.histogram).filter((h): h is Histogram => h !== null);
    const pooled =
      histograms.length === rs.length ? summarizeHistogram(mergeHistograms(histograms)) : null;
    const med = (f: (r: RunFigures) => number) => median(rs.map(f));
    const box = pooled
      ? {
          p1: pooled.p1,
          p25: pooled.p25,
          p50: pooled.p50,
          p75: pooled.p75,
          p99: pooled.p99,
          max: pooled.max,
        }
      : {
          p1: med((r) => num(r.latencyUs.p1)),
          p25: med((r) => num(r.latencyUs.p25)),
          p50: med((r) => num(r.latencyUs.p50)),
          p75: med((r) => num(r.latencyUs.p75)),
          p99: med((r) => num(r.latencyUs.p99)),
          max: Math.max(...rs.map((r) => num(r.latencyUs.max))),
        };
    return {
      level: rs[0].level,
      workload: rs[0].workload,
      mode: rs[0].mode,
      runs: rs.length,
      figures,
      cpuByRole: {
        loadgen: med((r) => r.cpuPer1000.loadgen),
        sidecars: med((r) => r.cpuPer1000.sidecars),
        app: med((r) => r.cpuPer1000.app),
        system: med((r) => r.cpuPer1000.system),
      },
      pooled,
      box,
      errors: rs.reduce((s, r) => s + r.errorCount, 0),
      exhaustedRuns: rs.filter((r) => r.portPressure.exhausted).length,
      maxEphemeralTimeWait: Math.max(...rs.map((r) => r.portPressure.maxEphemeralTimeWait)),
    };
  });
}

export interface Ratio {
  level: string;
  workload: string;
  metric: Metric;
  mode: ModeName;
  baseline: ModeName;
  /** mode / baseline within each round both ran in. */
  perRound: number[];
  summary: Spread;
}

/** The paired ratio of a metric between two modes in one cell (null when either is missing). */
export function ratio(
  runs: readonly RunFigures[],
  where: { level: string; workload: string },
  metric: Metric,
  mode: ModeName,
  baseline: ModeName,
): Ratio | null {
  const byRound = (m: ModeName): ByRound =>
    new Map(
      runs
        .filter((r) => r.level === where.level && r.workload === where.workload && r.mode === m)
        .map((r) => [r.round, METRICS[metric].of(r)]),
    );
  const perRound = pairedRatios(byRound(mode), byRound(baseline));
  if (perRound.length === 0) return null;
  return { ...where, metric, mode, baseline, perRound, summary: spread(perRound) };
}

/** Paired runs further apart than this in machine speed get a warning. */
export const SPEED_TOLERANCE = 0.1;

/**
 * How far the machine (either probe around each run) moved between the two runs of each
 * paired round: |1 - probe(mode) / probe(baseline)|. Null without probes in both.
 */
export function speedMismatch(
  runs: readonly RunFigures[],
  where: { level: string; workload: string },
  mode: ModeName,
  baseline: ModeName,
): { rounds: number; mismatched: number; worst: number; worstKind: ProbeKind } | null {
  const off = new Map<number, number>();
  let worst = 0;
  let worstKind: ProbeKind = "alu";
  for (const kind of PROBE_KINDS) {
    const r = ratio(runs, where, PROBE_METRIC[kind], mode, baseline);
    if (!r) return null;
    r.perRound.forEach((x, i) => {
      const d = Math.abs(1 - x);
      off.set(i, Math.max(off.get(i) ?? 0, d));
      if (d > worst) {
        worst = d;
        worstKind = kind;
      }
    });
  }
  return {
    rounds: off.size,
    mismatched: [...off.values()].filter((d) => d > SPEED_TOLERANCE).length,
    worst,
    worstKind,
  };
}

export interface TargetResult {
  id: string;
  description: string;
  /** The measured value (a ratio, or a fraction for the variance target); null: not measured. */
  measured: number | null;
  threshold: number;
  comparison: "<=" | ">=";
  met: boolean | null;
  detail: string;
  warnings: string[];
}

export interface SetupFigures {
  iptablesRestoreMs: number[];
  waggleAttachMs: number[];
}

/** The level targets at "no rules" use: "0" when it ran, else the first level. */
function baseLevel(runs: readonly RunFigures[]): string | undefined {
  return runs.some((r) => r.level === "0") ? "0" : runs[0]?.level;
}

function ratioTarget(
  runs: readonly RunFigures[],
  spec: {
    id: string;
    description: string;
    level: string | undefined;
    workload: string;
    metric: Metric;
    mode: ModeName;
    baseline: ModeName;
    comparison: "<=" | ">=";
    threshold: number;
  },
): TargetResult {
  const base = {
    id: spec.id,
    description: spec.description,
    threshold: spec.threshold,
    comparison: spec.comparison,
  };
  const r = spec.level
    ? ratio(
        runs,
        { level: spec.level, workload: spec.workload },
        spec.metric,
        spec.mode,
        spec.baseline,
      )
    : null;
  if (!r)
    return {
      ...base,
      measured: null,
      met: null,
      detail: `not measured: no ${spec.mode} and ${spec.baseline} runs of ${spec.workload} at rules ${spec.level ?? "100k"} in the same round`,
      warnings: [],
    };
  const measured = r.summary.median;
  const met = spec.comparison === ">=" ? measured >= spec.threshold : measured <= spec.threshold;
  const involved = runs.filter(
    (x) =>
      x.level === spec.level &&
      x.workload === spec.workload &&
      (x.mode === spec.mode || x.mode === spec.baseline),
  );
  const warnings: string[] = [];
  const errors = involved.reduce((s, x) => s + x.errorCount, 0);
  if (errors > 0) warnings.push(`${errors} request errors in these runs`);
  const exhausted = involved.filter((x) => x.portPressure.exhausted).length;
  if (exhausted > 0) warnings.push(`${exhausted} runs hit ephemeral port exhaustion`);
  if (r.perRound.length < 3) warnings.push(`only ${r.perRound.length} paired round(s)`);
  const speed = speedMismatch(runs, r, spec.mode, spec.baseline);
  if (speed && speed.mismatched > 0)
    warnings.push(
      `the machine itself (probes) differed by more than ${SPEED_TOLERANCE * 100}% between the paired runs in ${speed.mismatched} of ${speed.rounds} rounds (worst ${(speed.worst * 100).toFixed(0)}%, ${speed.worstKind} probe)`,
    );
  return {
    ...base,
    measured,
    met,
    detail: `median of ${r.perRound.length} per-round ratios ${spec.mode}/${spec.baseline} of ${METRICS[spec.metric].label} (${spec.workload}, rules ${spec.level}); range ${r.summary.min.toFixed(3)}..${r.summary.max.toFixed(3)}`,
    warnings,
  };
}

/**
 * Issue 13's targets for the socket bypass (mode waggle), at the base rule level, each judged
 * on the plain workload and on its TLS twin (`-tls`: mutual TLS between the sidecars).
 */
export const BYPASS_TARGETS: {
  id: string;
  description: string;
  workload: string;
  metric: Metric;
  baseline: ModeName;
  comparison: "<=" | ">=";
  threshold: number;
}[] = [
  {
    id: "bypass-keepalive-vs-iptables",
    description: "keep-alive, max throughput: waggle (bypass) >= 1.7 x iptables",
    workload: "max-keepalive",
    metric: "throughput",
    baseline: "iptables",
    comparison: ">=",
    threshold: 1.7,
  },
  {
    id: "bypass-keepalive-vs-explicit",
    description: "keep-alive, max throughput: waggle (bypass) >= 1.5 x explicit",
    workload: "max-keepalive",
    metric: "throughput",
    baseline: "explicit",
    comparison: ">=",
    threshold: 1.5,
  },
  {
    id: "bypass-keepalive-cpu",
    description: "keep-alive, max throughput: waggle (bypass) CPU per request <= 0.53 x iptables",
    workload: "max-keepalive",
    metric: "cpu",
    baseline: "iptables",
    comparison: "<=",
    threshold: 0.53,
  },
  {
    id: "bypass-pingpong-p50",
    description: "ping-pong round trip: waggle (bypass) p50 <= 0.66 x iptables",
    workload: "pingpong",
    metric: "p50",
    baseline: "iptables",
    comparison: "<=",
    threshold: 0.66,
  },
  {
    id: "bypass-newconn",
    description:
      "new connection per request, max throughput: waggle (bypass) >= 0.98 x waggle-redirect",
    workload: "max-new",
    metric: "throughput",
    baseline: "waggle-redirect",
    comparison: ">=",
    threshold: 0.98,
  },
];

/** The issue's targets, judged on the runs and the setup timings. */
export function evaluateTargets(
  runs: readonly RunFigures[],
  setup: SetupFigures | null,
  cells: readonly CellSummary[] = summarizeCells(runs),
): TargetResult[] {
  const level0 = baseLevel(runs);
  const floodLevel = runs.some((r) => r.level === "100k") ? "100k" : undefined;
  const targets: TargetResult[] = [
    ratioTarget(runs, {
      id: "newconn-throughput",
      description: "new connection per request, max throughput: waggle-redirect >= 0.97 x explicit",
      level: level0,
      workload: "max-new",
      metric: "throughput",
      mode: "waggle-redirect",
      baseline: "explicit",
      comparison: ">=",
      threshold: 0.97,
    }),
    ratioTarget(runs, {
      id: "newconn-cpu",
      description:
        "new connection per request, max throughput: waggle-redirect CPU per 1000 requests <= 1.03 x explicit",
      level: level0,
      workload: "max-new",
      metric: "cpu",
      mode: "waggle-redirect",
      baseline: "explicit",
      comparison: "<=",
      threshold: 1.03,
    }),
    ratioTarget(runs, {
      id: "keepalive-throughput",
      description: "keep-alive, max throughput: waggle-redirect >= 0.98 x explicit",
      level: level0,
      workload: "max-keepalive",
      metric: "throughput",
      mode: "waggle-redirect",
      baseline: "explicit",
      comparison: ">=",
      threshold: 0.98,
    }),
    ratioTarget(runs, {
      id: "flood-p99",
      description:
        "new connection per request at 1000 rps with ~100k host rules: waggle-redirect p99 <= 0.85 x iptables",
      level: floodLevel,
      workload: "rate1000-new",
      metric: "p99",
      mode: "waggle-redirect",
      baseline: "iptables",
      comparison: "<=",
      threshold: 0.85,
    }),
    ...BYPASS_TARGETS.flatMap((t) =>
      [false, true].map((tls) =>
        ratioTarget(runs, {
          id: `${t.id}${tls ? TLS_SUFFIX : ""}`,
          description: `${tls ? "TLS between the sidecars: " : ""}${t.description}`,
          level: level0,
          workload: `${t.workload}${tls ? TLS_SUFFIX : ""}`,
          metric: t.metric,
          mode: "waggle",
          baseline: t.baseline,
          comparison: t.comparison,
          threshold: t.threshold,
        }),
      ),
    ),
  ];
  // Per-pod setup: median attach over median restore.
  const setupTarget: TargetResult = {
    id: "setup",
    description: "per-pod setup: waggle attach <= 0.5 x iptables-restore of the istio rules",
    measured: null,
    threshold: 0.5,
    comparison: "<=",
    met: null,
    detail: "not measured",
    warnings: [],
  };
  if (setup && setup.iptablesRestoreMs.length > 0 && setup.waggleAttachMs.length > 0) {
    const w = median(setup.waggleAttachMs);
    const i = median(setup.iptablesRestoreMs);
    setupTarget.measured = w / i;
    setupTarget.met = setupTarget.measured <= 0.5;
    setupTarget.detail = `median waggle attach ${w.toFixed(2)} ms / median iptables-restore ${i.toFixed(2)} ms over ${setup.waggleAttachMs.length} pods`;
  }
  targets.push(setupTarget);
  // Variance: every cell's runs within 5 % of their median p50.
  const repeated = cells.filter((c) => c.runs >= 2 && Number.isFinite(c.figures.p50.maxDeviation));
  const variance: TargetResult = {
    id: "variance",
    description: "repeated runs of one mode within 5% of their median at p50",
    measured: null,
    threshold: 0.05,
    comparison: "<=",
    met: null,
    detail: "not measured: no cell ran more than once",
    warnings: [],
  };
  if (repeated.length > 0) {
    const worst = repeated.reduce((a, b) =>
      b.figures.p50.maxDeviation > a.figures.p50.maxDeviation ? b : a,
    );
    const within = repeated.filter((c) => c.figures.p50.maxDeviation <= 0.05).length;
    variance.measured = worst.figures.p50.maxDeviation;
    variance.met = variance.measured <= 0.05;
    variance.detail = `${within} of ${repeated.length} cells within 5%; worst ${worst.mode} ${worst.workload} at rules ${worst.level}: ${(worst.figures.p50.maxDeviation * 100).toFixed(1)}% off its median p50`;
    const probes = PROBE_KINDS.map((kind) => ({
      kind,
      s: spread(runs.map(METRICS[PROBE_METRIC[kind]].of)),
    })).filter((p) => p.s.n > 1);
    if (probes.length > 0)
      variance.detail += `; the machine itself, probed around each run: ${probes
        .map(
          (p) =>
            `${p.kind} CV ${(p.s.cv * 100).toFixed(1)}% (slowest +${((p.s.max / p.s.min - 1) * 100).toFixed(0)}%)`,
        )
        .join(", ")}`;
  }
  targets.push(variance);
  return targets;
}
