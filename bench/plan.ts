// What a bench run does: the workloads, the rule levels each runs at, rounds and durations,
// for the quick preset (npm run bench, at most 5 minutes on a 2-core machine) and the full one
// (npm run bench -- --full), with command-line overrides.

import { parseFloodLevel } from "./kube-rules";
import { MERBRIDGE_SRC_ENV, MODES, type ModeName, presetModes } from "./modes";
import { checkpointsFor, type NodeCostPlan } from "./node-cost";

export type ConnectionMode = "keepalive" | "new";

/**
 * A workload; `tls: true` runs it through the TLS sidecar pair of each mode (HAProxy `ssl`
 * between the client sidecar and the server sidecar, like Istio's mTLS between sidecars).
 */
export type Workload = (
  | { kind: "max"; connection: ConnectionMode }
  | { kind: "rate"; rps: number; connection: ConnectionMode }
  | { kind: "pingpong" }
) & { tls?: boolean };

/** The id suffix of a workload run between TLS sidecars. */
export const TLS_SUFFIX = "-tls";

export function workloadId(w: Workload): string {
  const tls = w.tls ? TLS_SUFFIX : "";
  switch (w.kind) {
    case "max":
      return `max-${w.connection}${tls}`;
    case "rate":
      return `rate${w.rps}-${w.connection}${tls}`;
    case "pingpong":
      return `pingpong${tls}`;
  }
}

/** The modes a workload runs in: a TLS workload needs sidecars, so not mode none. */
export function workloadModes(w: Workload, modes: readonly ModeName[]): ModeName[] {
  return modes.filter((m) => !(w.tls && m === "none"));
}

/** True when any level of the plan runs a TLS workload (the TLS sidecar pairs are needed). */
export function planUsesTls(plan: Pick<Plan, "levels">): boolean {
  return plan.levels.some((l) => l.workloads.some((w) => w.tls));
}

export function describeWorkload(w: Workload): string {
  const conn = (c: ConnectionMode) =>
    c === "keepalive" ? "keep-alive" : "new connection per request";
  const tls = w.tls ? ", TLS between the sidecars" : "";
  switch (w.kind) {
    case "max":
      return `maximum throughput, ${conn(w.connection)}${tls} (wrk)`;
    case "rate":
      return `${w.rps} requests/s, ${conn(w.connection)}${tls} (waggle-loadgen)`;
    case "pingpong":
      return `TCP ping-pong, 64-byte messages, one connection${tls} (sockperf)`;
  }
}

function parsePlainWorkload(id: string, whole: string): Workload {
  if (id === "pingpong") return { kind: "pingpong" };
  const max = /^max-(keepalive|new)$/.exec(id);
  if (max) return { kind: "max", connection: max[1] as ConnectionMode };
  const rate = /^rate(\d+)-(keepalive|new)$/.exec(id);
  if (rate) {
    const rps = Number(rate[1]);
    if (rps < 1 || rps > 100_000) throw new Error(`rate must be 1..100000 requests/s in ${whole}`);
    return { kind: "rate", rps, connection: rate[2] as ConnectionMode };
  }
  throw new Error(
    `unknown workload ${JSON.stringify(whole)}: use max-keepalive, max-new, rate<N>-keepalive, rate<N>-new or pingpong, each optionally with ${TLS_SUFFIX}`,
  );
}

/**
 * Parses "max-keepalive", "max-new", "rate1000-new", "rate200-keepalive", "pingpong", and each
 * of them with "-tls" (through the TLS sidecars).
 */
export function parseWorkload(id: string): Workload {
  if (id.endsWith(TLS_SUFFIX))
    return { ...parsePlainWorkload(id.slice(0, -TLS_SUFFIX.length), id), tls: true };
  return parsePlainWorkload(id, id);
}

export interface Durations {
  /** Measured seconds of a wrk run (whole seconds). */
  maxS: number;
  /** Measured seconds of a fixed-rate run, after warmupS. */
  rateS: number;
  warmupS: number;
  /** Seconds of a sockperf run (sockperf spends ~0.4 s of it warming up). */
  pingpongS: number;
}

export interface Plan {
  preset: "quick" | "full" | "setup" | "custom";
  modes: ModeName[];
  /** Rule levels in the order they run, each with its workloads. */
  levels: { level: string; workloads: Workload[] }[];
  rounds: number;
  durations: Durations;
  /** wrk's connections for the maximum-throughput runs. */
  wrkConnections: number;
  /** waggle-loadgen's in-flight limit. */
  loadgenConnections: number;
  bodyBytes: number;
  /** Pods timed for the per-pod setup comparison. */
  setupSamples: number;
  /** Run waggle once more with kernel.bpf_stats_enabled for per-program run time. */
  bpfStats: boolean;
  /** Idle connections held open per memory sample (0: no memory measurement). */
  memoryConnections: number;
  /** Memory samples per mode (waggle and waggle-redirect alternate). */
  memoryRounds: number;
  /** The plugin's own cost on the node: ADD/DEL, scale, burst (bench/node-cost.ts); null: skip. */
  nodeCost: NodeCostPlan | null;
}

/** The node-cost part at a scale of `pods` meshed pods and a burst of `burst`. */
export function nodeCostPlan(
  samples: number,
  pods: number,
  probes: number,
  burst: number,
): NodeCostPlan {
  return { samples, scalePods: pods, checkpoints: checkpointsFor(pods), probes, burst };
}

const ALL_RATES = [200, 1000, 1500];

/** The workloads run between TLS sidecars (rules 0 only: host rules cost TLS nothing more). */
const TLS_WORKLOADS: Workload[] = [
  { kind: "max", connection: "keepalive", tls: true },
  { kind: "max", connection: "new", tls: true },
  { kind: "pingpong", tls: true },
];

export function quickPlan(): Plan {
  return {
    preset: "quick",
    modes: presetModes(false),
    levels: [
      {
        level: "0",
        workloads: [
          { kind: "max", connection: "keepalive" },
          { kind: "max", connection: "new" },
          { kind: "rate", rps: 1000, connection: "new" },
          { kind: "pingpong" },
          ...TLS_WORKLOADS,
        ],
      },
      { level: "100k", workloads: [{ kind: "rate", rps: 1000, connection: "new" }] },
    ],
    rounds: 2,
    durations: { maxS: 3, rateS: 3, warmupS: 0.5, pingpongS: 2 },
    wrkConnections: 32,
    loadgenConnections: 256,
    bodyBytes: 1024,
    setupSamples: 8,
    bpfStats: true,
    memoryConnections: 1000,
    memoryRounds: 2,
    nodeCost: nodeCostPlan(5, 20, 3, 10),
  };
}

export function fullPlan(): Plan {
  const everything: Workload[] = [
    { kind: "max", connection: "keepalive" },
    { kind: "max", connection: "new" },
    ...ALL_RATES.flatMap((rps): Workload[] => [
      { kind: "rate", rps, connection: "keepalive" },
      { kind: "rate", rps, connection: "new" },
    ]),
    { kind: "pingpong" },
  ];
  return {
    ...quickPlan(),
    preset: "full",
    levels: ["0", "10k", "100k"].map((level) => ({
      level,
      workloads: level === "0" ? [...everything, ...TLS_WORKLOADS] : everything,
    })),
    rounds: 5,
    durations: { maxS: 10, rateS: 10, warmupS: 1, pingpongS: 5 },
    setupSamples: 30,
    memoryConnections: 2000,
    memoryRounds: 3,
    nodeCost: nodeCostPlan(30, 250, 5, 100),
  };
}

/**
 * `--setup`: only the plugin's own cost on a node (issue 16): 30 ADD/DEL samples next to the
 * machine's floor, 250 meshed pods one by one, a burst of 100, and the per-pod setup; no traffic.
 */
export function setupPlan(): Plan {
  return {
    ...quickPlan(),
    preset: "setup",
    modes: [],
    levels: [],
    rounds: 1,
    setupSamples: 30,
    bpfStats: false,
    memoryConnections: 0,
    nodeCost: nodeCostPlan(30, 250, 5, 100),
  };
}

/** True when the plan runs traffic (a node with every mode's pods). */
export function planRunsTraffic(plan: Pick<Plan, "levels">): boolean {
  return plan.levels.some((l) => l.workloads.length > 0);
}

/** Each idle connection holds 3 sockets per sidecar; HAProxy's maxconn is 8000. */
export const MAX_MEMORY_CONNECTIONS = 3000;

/** True when the plan measures memory per bypassed connection (both waggle modes needed). */
export function planMeasuresMemory(plan: Plan): boolean {
  return (
    plan.memoryConnections > 0 &&
    plan.modes.includes("waggle") &&
    plan.modes.includes("waggle-redirect")
  );
}

export interface PlanOverrides {
  modes?: string[];
  rules?: string[];
  workloads?: string[];
  rounds?: number;
  durationS?: number;
  bodyBytes?: number;
  setupSamples?: number;
  bpfStats?: boolean;
  memoryConnections?: number;
  /** Meshed pods of the node-cost scale part (0: skip the node-cost part). */
  scalePods?: number;
  /** ADDs (then DELs) started at once in the node-cost part. */
  burst?: number;
  /** ADD/DEL samples (and floor samples) of the node-cost part. */
  nodeSamples?: number;
  /** A Merbridge checkout was given: the preset's modes include merbridge. */
  merbridge?: boolean;
}

/** A whole number in [min, max] for option `name`, or an error. */
function bounded(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be ${min}..${max}, got ${v}`);
  return v;
}

/** Applies command-line overrides; --rules/--workloads replace the level/workload matrix. */
export function applyOverrides(base: Plan, o: PlanOverrides): Plan {
  const plan: Plan = structuredClone(base);
  let custom = false;
  if (o.modes) {
    for (const m of o.modes)
      if (!(MODES as readonly string[]).includes(m))
        throw new Error(`unknown mode ${JSON.stringify(m)}: use ${MODES.join(", ")}`);
    if (o.modes.length === 0) throw new Error("--modes needs at least one mode");
    if (o.modes.includes("merbridge") && !o.merbridge)
      throw new Error(
        `mode merbridge is built from a Merbridge checkout: name one with --merbridge-src DIR or ${MERBRIDGE_SRC_ENV}`,
      );
    plan.modes = MODES.filter((m) => o.modes?.includes(m));
    custom = true;
  } else if (o.merbridge && plan.modes.length > 0) {
    plan.modes = MODES.filter((m) => m === "merbridge" || plan.modes.includes(m));
  }
  if (o.rules || o.workloads) {
    const levels = o.rules ?? [...new Set(plan.levels.map((l) => l.level))];
    for (const l of levels) parseFloodLevel(l);
    const workloads = o.workloads?.map(parseWorkload);
    plan.levels = levels.map((level) => ({
      level,
      workloads:
        workloads ??
        plan.levels.find((l) => l.level === level)?.workloads ??
        plan.levels[0].workloads,
    }));
    custom = true;
  }
  if (o.rounds !== undefined) {
    if (!Number.isInteger(o.rounds) || o.rounds < 1 || o.rounds > 100)
      throw new Error(`--rounds must be 1..100, got ${o.rounds}`);
    plan.rounds = o.rounds;
    custom = true;
  }
  if (o.durationS !== undefined) {
    if (!Number.isInteger(o.durationS) || o.durationS < 1 || o.durationS > 600)
      throw new Error(`--duration must be a whole number of seconds 1..600, got ${o.durationS}`);
    plan.durations = {
      ...plan.durations,
      maxS: o.durationS,
      rateS: o.durationS,
      pingpongS: o.durationS,
    };
    custom = true;
  }
  if (o.bodyBytes !== undefined) {
    if (!Number.isInteger(o.bodyBytes) || o.bodyBytes < 1 || o.bodyBytes > 65536)
      throw new Error(`--body-bytes must be 1..65536, got ${o.bodyBytes}`);
    plan.bodyBytes = o.bodyBytes;
    custom = true;
  }
  if (o.setupSamples !== undefined) {
    if (!Number.isInteger(o.setupSamples) || o.setupSamples < 0 || o.setupSamples > 1000)
      throw new Error(`--setup-samples must be 0..1000, got ${o.setupSamples}`);
    plan.setupSamples = o.setupSamples;
    custom = true;
  }
  if (o.memoryConnections !== undefined) {
    if (
      !Number.isInteger(o.memoryConnections) ||
      o.memoryConnections < 0 ||
      o.memoryConnections > MAX_MEMORY_CONNECTIONS
    )
      throw new Error(
        `--memory-connections must be 0..${MAX_MEMORY_CONNECTIONS}, got ${o.memoryConnections}`,
      );
    plan.memoryConnections = o.memoryConnections;
    custom = true;
  }
  if (o.nodeSamples !== undefined && plan.nodeCost) {
    plan.nodeCost.samples = bounded("node-samples", o.nodeSamples, 1, 1000);
    custom = true;
  }
  if (o.scalePods !== undefined || o.burst !== undefined) {
    const pods = bounded("scale-pods", o.scalePods ?? plan.nodeCost?.scalePods ?? 0, 0, 2000);
    const burst = bounded("burst", o.burst ?? plan.nodeCost?.burst ?? 0, 0, 500);
    const base = plan.nodeCost ?? quickPlan().nodeCost;
    plan.nodeCost =
      pods === 0 && burst === 0
        ? null
        : {
            ...(base as NodeCostPlan),
            scalePods: pods,
            checkpoints: pods > 0 ? checkpointsFor(pods) : [],
            burst,
          };
    custom = true;
  }
  if (o.bpfStats !== undefined) plan.bpfStats = o.bpfStats;
  if (custom) plan.preset = "custom";
  return plan;
}

/** Seconds one measured run of a workload takes (tool time only). */
export function runSeconds(w: Workload, d: Durations): number {
  switch (w.kind) {
    case "max":
      return d.maxS;
    case "rate":
      return d.rateS + d.warmupS;
    case "pingpong":
      return d.pingpongS;
  }
}

/**
 * Per-run overhead (counter snapshots, process starts, the machine probes before and after:
 * 2 x 2 x 50 ms) measured on this machine, seconds.
 */
export const RUN_OVERHEAD_S = 0.85;

/** Seconds of one pod's sandbox, chain ADD and chain DEL on an idle 2-core machine. */
export const NODE_POD_S = 1.2;

/** A rough wall-clock estimate of a plan, seconds (setup and flood loading included). */
export function estimateSeconds(plan: Plan): number {
  // idle machine probes, node, CNI ADDs, processes
  let total = planRunsTraffic(plan) ? 18 + 3 * plan.modes.length : 0;
  if (planUsesTls(plan)) total += 3 * plan.modes.length; // the TLS pods
  if (plan.modes.includes("merbridge")) total += 10; // building Merbridge's programs, twice
  for (const { level, workloads } of plan.levels) {
    const { services } = parseFloodLevel(level);
    total += services * 0.015; // loading and removing the flood
    for (const w of workloads) {
      const modes = workloadModes(w, plan.modes).length;
      // wrk runs get a 1 s warm-up per mode first; then rounds x modes measured runs
      if (w.kind === "max") total += modes * (1 + RUN_OVERHEAD_S);
      total += plan.rounds * modes * (runSeconds(w, plan.durations) + RUN_OVERHEAD_S);
    }
  }
  total += plan.setupSamples * 1.5;
  // each memory sample: open, settle, read, close and drain (about 1 s per 1000 connections + 4 s)
  if (planMeasuresMemory(plan))
    total += 2 * plan.memoryRounds * (4 + plan.memoryConnections / 1000);
  if (plan.bpfStats && plan.modes.includes("waggle")) total += 6;
  const n = plan.nodeCost;
  if (n) {
    // pod lifecycles (sandbox, chain ADD, chain DEL) of the samples, the scale and its probes;
    // the burst's ADDs and DELs share the CPUs
    const lifecycles = 2 * n.samples + n.scalePods + n.checkpoints.length * n.probes;
    total += 5 + NODE_POD_S * (lifecycles + n.burst / 2) + 0.2 * n.samples;
  }
  return total;
}
