// Runs a plan: deploys every mode on one node, then per rule level and workload runs rounds
// of all modes in rotating order (A B C D, B C D A, ...), then the per-pod setup comparison
// and waggle's program run times. Everything is torn down at the end, also on failure.

import { cpus, loadavg, release } from "node:os";
import { type BpfStats, withBpfStats } from "./bpf-stats";
import { BenchCluster, type ModeDeployment, type Placement, POD_SYSCTLS } from "./cluster";
import { type FloodApplied, HostFlood } from "./flood";
import { parseFloodLevel } from "./kube-rules";
import type { MachineStability } from "./machine-speed";
import { Measurer, type RunRecord } from "./measure";
import { type MemorySample, measureConnectionMemory } from "./memory";
import type { MerbridgeInfo, MerbridgePathCheck } from "./merbridge";
import type { NodeCostResults } from "./node-cost";
import { measureNodeCost } from "./node-cost-run";
import {
  describeWorkload,
  type Plan,
  planMeasuresMemory,
  planRunsTraffic,
  planUsesTls,
  workloadId,
  workloadModes,
} from "./plan";
import { type MapMemory, measureSetup, type SetupCost } from "./setup-cost";
import { roundOrder } from "./stats";
import { buildSpeedprobe, probeEveryKind, type SpeedSample } from "./tools/speedprobe";

export interface HostInfo {
  kernel: string;
  cpus: number;
  cpuModel: string;
  loadavgStart: number[];
  loadavgEnd: number[];
}

/** Everything a bench run measured (written as results.json). */
export interface BenchResults {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  host: HostInfo;
  plan: Plan;
  placement: Placement;
  podSysctls: Record<string, string | number>;
  floods: FloodApplied[];
  runs: RunRecord[];
  setup: SetupCost | null;
  mapMemory: MapMemory | null;
  bpfStats: BpfStats | null;
  /** Capture setup of the bench pods themselves (ms): iptables-restore / waggle CNI ADD. */
  benchPodCaptureMs: Record<string, number[]>;
  /** Idle probes of every CPU before the first run and after the last (absent before 2026-11-26). */
  machineStability?: MachineStability;
  /** Kernel memory of idle connections, waggle and waggle-redirect (absent before 2026-12-06). */
  memory?: MemorySample[];
  /** The plugin's own cost on the node: ADD/DEL, scale, burst (absent before 2026-12-06). */
  nodeCost?: NodeCostResults;
  /** Mode merbridge: what was built, from which commit, and what its path checks found. */
  merbridge?: MerbridgeInfo & { paths: MerbridgePathCheck[] };
}

/** Idle probe samples per CPU and kind (about 5 ms each) before the first run and after the last. */
export const STABILITY_SAMPLES = 200;

/** The first CPU of a cpuset list ("1-3,5" -> "1"); null when unpinned. */
export function firstCpu(list: string | undefined): string | null {
  if (list === undefined || list.trim() === "") return null;
  const first = list.split(/[,-]/)[0].trim();
  if (!/^\d+$/.test(first)) throw new Error(`not a CPU list: ${list}`);
  return first;
}

/** Probes every CPU of the machine in turn, each pinned, with every kind of probe. */
async function probeEveryCpu(binary: string): Promise<SpeedSample[]> {
  const samples: SpeedSample[] = [];
  for (let cpu = 0; cpu < cpus().length; cpu++)
    samples.push(...(await probeEveryKind(binary, String(cpu), STABILITY_SAMPLES)));
  return samples;
}

export interface RunOptions {
  placement: Placement;
  /** A Merbridge checkout, for mode merbridge. */
  merbridgeSrc?: string;
  log: (line: string) => void;
}

export async function runBench(plan: Plan, opts: RunOptions): Promise<BenchResults> {
  const startedAt = new Date().toISOString();
  const loadavgStart = loadavg();
  const traffic = planRunsTraffic(plan) ? await runTraffic(plan, opts) : undefined;
  let nodeCost: NodeCostResults | undefined;
  let setup = traffic?.setup ?? null;
  let mapMemory = traffic?.mapMemory ?? null;
  if (plan.nodeCost) {
    // the traffic node is gone: this part has the machine to itself; without traffic it also
    // times the per-pod setup
    const run = await measureNodeCost(plan.nodeCost, traffic ? 0 : plan.setupSamples, opts.log);
    nodeCost = run.nodeCost;
    if (!traffic) ({ setup, mapMemory } = run);
  }
  return {
    schema: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    host: {
      kernel: release(),
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      loadavgStart,
      loadavgEnd: loadavg(),
    },
    plan,
    placement: opts.placement,
    podSysctls: { ...POD_SYSCTLS },
    floods: traffic?.floods ?? [],
    runs: traffic?.runs ?? [],
    setup,
    mapMemory,
    bpfStats: traffic?.bpfStats ?? null,
    benchPodCaptureMs: traffic?.benchPodCaptureMs ?? {},
    ...(traffic ? { machineStability: traffic.machineStability } : {}),
    ...(traffic?.memory ? { memory: traffic.memory } : {}),
    ...(nodeCost ? { nodeCost } : {}),
    ...(traffic?.merbridge ? { merbridge: traffic.merbridge } : {}),
  };
}

type TrafficResults = Pick<
  BenchResults,
  | "floods"
  | "runs"
  | "setup"
  | "mapMemory"
  | "bpfStats"
  | "benchPodCaptureMs"
  | "machineStability"
  | "memory"
  | "merbridge"
>;

/** The traffic part: every mode's pods on one node, the workloads, setup, BPF stats, memory. */
async function runTraffic(plan: Plan, opts: RunOptions): Promise<TrafficResults> {
  const { log } = opts;
  const speedprobe = await buildSpeedprobe();
  const stabilityStart = await probeEveryCpu(speedprobe);
  log(`machine probed idle on ${cpus().length} CPU(s)`);
  const cluster = await BenchCluster.create({
    modes: plan.modes,
    tls: planUsesTls(plan),
    placement: opts.placement,
    bodyBytes: plan.bodyBytes,
    merbridgeSrc: opts.merbridgeSrc,
    log,
  });
  const measurer = new Measurer(
    cluster,
    opts.placement.load,
    plan.durations,
    plan.wrkConnections,
    plan.loadgenConnections,
    firstCpu(opts.placement.mesh),
  );
  const flood = new HostFlood(cluster.node);
  const runs: RunRecord[] = [];
  const floods: FloodApplied[] = [];
  let setup: SetupCost | null = null;
  let mapMemory: MapMemory | null = null;
  let bpfStats: BpfStats | null = null;
  let memory: MemorySample[] | undefined;
  let merbridge: TrafficResults["merbridge"];
  const benchPodCaptureMs: Record<string, number[]> = {};
  try {
    await measurer.prepare();
    for (const mode of plan.modes) await measurer.verifyPath(mode);
    if (planUsesTls(plan))
      for (const mode of plan.modes) if (mode !== "none") await measurer.verifyPath(mode, true);
    log(
      `paths verified: every request of ${plan.modes.filter((m) => m !== "none").join(", ")} passed both sidecars${planUsesTls(plan) ? " (plain and TLS pods)" : ""}; waggle's hops were bypassed, waggle-redirect's were not`,
    );
    if (cluster.merbridge) {
      merbridge = { ...cluster.merbridge.info, paths: measurer.merbridgePaths };
      for (const p of measurer.merbridgePaths)
        log(
          `  ${p.deployment}: Merbridge ${merbridge.commit ?? "(commit unknown)"}; priming request ${p.priming.succeeded ? "succeeded" : "failed"} (the server sidecar refused ${p.priming.loopsRefused} connection(s) Merbridge sent back to its own 15006); ${p.connections} kept-alive connections with both ends of every hop in its sockhash; ${p.segments} TCP segments for one more request on each`,
        );
    }
    for (const [mode, d] of cluster.deployments as Map<string, ModeDeployment>)
      if (d.captureSetupMs.length > 0) benchPodCaptureMs[mode] = d.captureSetupMs;
    for (const { level, workloads } of plan.levels) {
      const applied = await flood.apply(parseFloodLevel(level));
      floods.push(applied);
      log(
        `rules ${level}: ${applied.rules} rules in ${applied.chains} chains (${applied.saveLines} iptables-save lines) loaded in ${Math.round(applied.applyMs)} ms`,
      );
      try {
        for (const w of workloads) {
          log(`  ${workloadId(w)}: ${describeWorkload(w)}`);
          const modes = workloadModes(w, plan.modes);
          if (w.kind === "max")
            for (const mode of modes) await measurer.run(mode, w, { level, round: -1 }, true);
          for (let round = 0; round < plan.rounds; round++) {
            for (const mode of roundOrder(modes, round)) {
              const r = await measurer.run(mode, w, { level, round });
              if (!r) continue;
              runs.push(r);
              log(`    round ${round + 1} ${mode.padEnd(15)} ${formatRun(r)}`);
            }
          }
        }
      } finally {
        applied.removeMs = await flood.remove();
      }
    }
    if (plan.bpfStats && plan.modes.includes("waggle")) {
      const w = { kind: "rate", rps: 1000, connection: "new" } as const;
      bpfStats = await withBpfStats(cluster.bpf.path, workloadId(w), async () => {
        const r = await measurer.run("waggle", w, { level: "0", round: -1 });
        return r?.allRequests ?? 0;
      });
      log(`bpf stats: ${bpfStats.nsPerRequest.toFixed(0)} ns of waggle programs per request`);
    }
    if (planMeasuresMemory(plan)) {
      log(
        `memory: ${plan.memoryConnections} idle connections per sample, waggle and waggle-redirect alternating`,
      );
      memory = await measureConnectionMemory(cluster, {
        connections: plan.memoryConnections,
        rounds: plan.memoryRounds,
        loadCpus: opts.placement.load,
        bypassMsgs: (d) => {
          const b = measurer.bypassCounters(d);
          return b ? b.client.msgs + b.server.msgs : 0;
        },
        log,
      });
    }
    if (plan.setupSamples > 0) {
      const waggleAdds = benchPodCaptureMs.waggle ?? [];
      ({ setup, mapMemory } = await measureSetup(cluster, plan.setupSamples, waggleAdds, log));
    }
  } finally {
    measurer.close();
    await cluster.destroy();
  }
  const stabilityEnd = await probeEveryCpu(speedprobe);
  return {
    floods,
    runs,
    setup,
    mapMemory,
    bpfStats,
    benchPodCaptureMs,
    machineStability: { start: stabilityStart, end: stabilityEnd },
    ...(memory ? { memory } : {}),
    ...(merbridge ? { merbridge } : {}),
  };
}

function formatRun(r: RunRecord): string {
  const ms = (us: number) => (us / 1000).toFixed(3);
  const parts = [
    `${r.throughputRps.toFixed(0).padStart(6)} req/s`,
    `p50 ${ms(r.latencyUs.p50)} p99 ${ms(r.latencyUs.p99)} ms`,
    `cpu ${r.cpuPer1000.node.toFixed(3)} s/1000`,
  ];
  if (r.errorCount > 0)
    parts.push(
      `ERRORS ${Object.entries(r.errors)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k}=${n}`)
        .join(",")}`,
    );
  if (r.portPressure.exhausted) parts.push(`PORTS EXHAUSTED: ${r.portPressure.reason}`);
  if (r.bypass) parts.push(`bypassed ${r.bypass.msgs} msgs`);
  return parts.join("  ");
}
