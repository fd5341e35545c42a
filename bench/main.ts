// waggle's benchmark: `npm run bench` (quick) and `npm run bench -- --full` (scripts/bench).
// Answers: does eBPF redirection lower the latency and CPU cost of a sidecar mesh compared
// with iptables? See docs/benchmarks.md for what runs and how to read the report.

import { fork } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import yargs from "yargs";
import type { TargetResult } from "./analysis";
import { cleanupByTag } from "./cleanup";
import type { Placement } from "./cluster";
import { JOB_ENV, type WorkerHello, type WorkerJob } from "./job";
import { MERBRIDGE_SRC_ENV, MODES } from "./modes";
import { writeOutputs } from "./output";
import {
  applyOverrides,
  estimateSeconds,
  fullPlan,
  type Plan,
  planMeasuresMemory,
  planRunsTraffic,
  quickPlan,
  setupPlan,
  workloadId,
} from "./plan";
import type { BenchResults } from "./runner";

const REPO = join(__dirname, "..", "..");

function list(v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  return String(v)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** Load generator on CPU 0, everything else on the other CPUs (2 cores: CPU 1). */
export function defaultPlacement(cpuCount: number, pin: boolean): Placement {
  if (!pin || cpuCount < 2) return {};
  return { load: "0", mesh: cpuCount === 2 ? "1" : `1-${cpuCount - 1}` };
}

function describePlan(plan: Plan): string {
  const lines = [
    planRunsTraffic(plan)
      ? `preset ${plan.preset}: modes ${plan.modes.join(", ")}; ${plan.rounds} round(s); durations max ${plan.durations.maxS} s, rate ${plan.durations.rateS} s (+${plan.durations.warmupS} s warm-up), ping-pong ${plan.durations.pingpongS} s`
      : `preset ${plan.preset}: no traffic`,
    ...plan.levels.map((l) => `  rules ${l.level}: ${l.workloads.map(workloadId).join(", ")}`),
    `  node cost: ${plan.nodeCost ? `${plan.nodeCost.samples} ADD/DEL samples, ${plan.nodeCost.scalePods} meshed pods (checkpoints ${plan.nodeCost.checkpoints.join(", ")}), burst of ${plan.nodeCost.burst}` : "no"}`,
    `  per-pod setup samples: ${plan.setupSamples}; BPF run-time stats: ${plan.bpfStats ? "yes" : "no"}; memory: ${planMeasuresMemory(plan) ? `${plan.memoryRounds} x ${plan.memoryConnections} idle connections per waggle mode` : "no"}`,
    `  estimated duration: ${Math.ceil(estimateSeconds(plan) / 60)} min`,
  ];
  return lines.join("\n");
}

function printTargets(targets: TargetResult[]): void {
  for (const t of targets) {
    const verdict = t.met === null ? "NOT MEASURED" : t.met ? "met" : "NOT MET";
    const measured = t.measured === null ? "-" : t.measured.toFixed(3);
    process.stdout.write(
      `  [${verdict}] ${t.description}: ${measured} (${t.comparison} ${t.threshold})\n`,
    );
  }
}

export async function main(argv: string[]): Promise<number> {
  const args = await yargs(argv)
    .scriptName("npm run bench --")
    .usage("$0 [options]: waggle's benchmark (quick by default)")
    .option("full", {
      type: "boolean",
      default: false,
      describe:
        "Every workload at 0, 10k and 100k host rules (TLS workloads at 0), 5 rounds (about 2 hours)",
    })
    .option("setup", {
      type: "boolean",
      default: false,
      describe:
        "Only the plugin's own cost on the node: ADD/DEL next to Node's floor, 250 meshed pods, a burst of 100 (no traffic)",
    })
    .option("scale-pods", {
      type: "number",
      describe: "Meshed pods attached one by one in the node-cost part (0 with --burst 0: skip it)",
    })
    .option("burst", {
      type: "number",
      describe: "ADDs, then DELs, started at once in the node-cost part",
    })
    .option("node-samples", {
      type: "number",
      describe: "ADD/DEL samples (and floor samples) of the node-cost part",
    })
    .option("modes", {
      type: "string",
      describe: `Modes to compare (comma separated: ${MODES.join(", ")})`,
    })
    .option("merbridge-src", {
      type: "string",
      default: process.env[MERBRIDGE_SRC_ENV] || undefined,
      defaultDescription: `$${MERBRIDGE_SRC_ENV}`,
      describe:
        "A Merbridge checkout (or its git directory) to build mode merbridge from; with it the presets compare merbridge too",
    })
    .option("rules", {
      type: "string",
      describe: "Host rule levels: 0, 10k, 100k or SERVICESxENDPOINTS (comma separated)",
    })
    .option("workloads", {
      type: "string",
      describe:
        "max-keepalive, max-new, rate<N>-keepalive, rate<N>-new, pingpong (comma separated)",
    })
    .option("rounds", {
      type: "number",
      describe: "Rounds per cell (each round runs every mode once)",
    })
    .option("duration", { type: "number", describe: "Seconds per measured run (every workload)" })
    .option("body-bytes", { type: "number", describe: "Response body size" })
    .option("setup-samples", {
      type: "number",
      describe: "Pods timed for the per-pod setup comparison (0: skip)",
    })
    .option("memory-connections", {
      type: "number",
      describe:
        "Idle connections per memory sample, waggle vs waggle-redirect (0: skip the memory measurement)",
    })
    .option("bpf-stats", {
      type: "boolean",
      describe: "One extra waggle run with kernel.bpf_stats_enabled (default: on)",
    })
    .option("pin", {
      type: "boolean",
      default: true,
      describe: "Pin the load generator to CPU 0 and the pods' processes to the other CPUs",
    })
    .option("out", {
      type: "string",
      describe: "Output directory (default .bench/<time>, .bench/latest links to it)",
    })
    .option("report-only", {
      type: "string",
      describe: "Re-render the report and plots of a results.json without running",
    })
    .option("dry-run", {
      type: "boolean",
      default: false,
      describe: "Print the plan and its estimated duration, run nothing",
    })
    .strict()
    .help()
    .parseAsync();

  if (args["report-only"]) {
    const file = resolve(args["report-only"]);
    const results = JSON.parse(readFileSync(file, "utf8")) as BenchResults;
    const dir = args.out ? resolve(args.out) : dirname(file);
    const written = writeOutputs(results, dir);
    process.stdout.write(`report: ${join(dir, "report.md")} (${written.png})\n`);
    return 0;
  }

  if (args.setup && args.full) throw new Error("--setup and --full are two presets: choose one");
  const merbridgeSrc = args["merbridge-src"] ? resolve(args["merbridge-src"]) : undefined;
  if (merbridgeSrc && !existsSync(merbridgeSrc))
    throw new Error(`--merbridge-src ${merbridgeSrc} does not exist`);
  const preset = args.setup ? setupPlan() : args.full ? fullPlan() : quickPlan();
  const plan = applyOverrides(preset, {
    modes: list(args.modes),
    rules: list(args.rules),
    workloads: list(args.workloads),
    rounds: args.rounds,
    durationS: args.duration,
    bodyBytes: args["body-bytes"],
    setupSamples: args["setup-samples"],
    bpfStats: args["bpf-stats"],
    memoryConnections: args["memory-connections"],
    scalePods: args["scale-pods"],
    burst: args.burst,
    nodeSamples: args["node-samples"],
    merbridge: merbridgeSrc !== undefined,
  });
  process.stderr.write(`${describePlan(plan)}\n`);
  if (args["dry-run"]) return 0;
  if (process.getuid?.() !== 0) {
    process.stderr.write("bench: must run as root (network namespaces, cgroups, BPF)\n");
    return 1;
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const dir = args.out ? resolve(args.out) : join(REPO, ".bench", stamp);
  mkdirSync(dir, { recursive: true });
  const job: WorkerJob = {
    plan,
    placement: defaultPlacement(cpus().length, args.pin),
    dir,
    ...(merbridgeSrc && plan.modes.includes("merbridge") ? { merbridgeSrc } : {}),
  };
  const started = Date.now();
  const exit = await supervise(job);
  if (exit.code !== 0) {
    process.stderr.write(`bench: the run failed (${exit.signal ?? `exit code ${exit.code}`})\n`);
    return exit.interrupted ? 130 : 1;
  }
  const results = JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as BenchResults;
  const written = writeOutputs(results, dir);
  if (!args.out) {
    const latest = join(REPO, ".bench", "latest");
    rmSync(latest, { force: true });
    symlinkSync(stamp, latest);
  }
  process.stdout.write(
    `\nwaggle bench (${plan.preset}) finished in ${Math.round((Date.now() - started) / 1000)} s\n`,
  );
  printTargets(written.report.targets);
  process.stdout.write(`report: ${join(dir, "report.md")} (${written.png})\n`);
  return exit.leftovers ? 1 : 0;
}

const BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled";

/**
 * Runs the worker and waits for it. Ctrl-C reaches the worker with the terminal's process
 * group and it tears down itself; SIGTERM/SIGHUP to this process are passed on. Whatever way
 * it ends, everything named with its run tag that is still there is removed here, and
 * kernel.bpf_stats_enabled is put back if the worker left it changed.
 */
async function supervise(
  job: WorkerJob,
): Promise<{ code: number; signal: string | null; interrupted: boolean; leftovers: boolean }> {
  const bpfStatsBefore = readFileSync(BPF_STATS, "utf8").trim();
  const child = fork(join(__dirname, "worker.js"), [], {
    env: { ...process.env, [JOB_ENV]: JSON.stringify(job) },
    stdio: ["inherit", "inherit", "inherit", "ipc"],
  });
  let tag: string | undefined;
  let interrupted = false;
  child.on("message", (m: WorkerHello) => {
    tag = m.tag;
  });
  const onInterrupt = () => {
    interrupted = true;
  };
  const forward = (sig: NodeJS.Signals) => {
    interrupted = true;
    child.kill(sig);
  };
  process.on("SIGINT", onInterrupt);
  process.on("SIGTERM", forward);
  process.on("SIGHUP", forward);
  const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
  process.off("SIGINT", onInterrupt);
  process.off("SIGTERM", forward);
  process.off("SIGHUP", forward);
  let leftovers = false;
  if (tag) {
    const { removed, failed } = cleanupByTag(tag);
    if (removed.length > 0) {
      leftovers = code === 0;
      process.stderr.write(`bench: removed what the worker left behind: ${removed.join(", ")}\n`);
    }
    for (const f of failed) process.stderr.write(`bench: could not remove ${f}\n`);
    if (removed.length === 0 && failed.length === 0)
      process.stderr.write(
        "bench: cleanup verified: no netns, cgroup, pin or directory left behind\n",
      );
  }
  if (readFileSync(BPF_STATS, "utf8").trim() !== bpfStatsBefore) {
    writeFileSync(BPF_STATS, bpfStatsBefore);
    process.stderr.write(`bench: restored kernel.bpf_stats_enabled=${bpfStatsBefore}\n`);
  }
  return { code: code ?? 1, signal, interrupted: interrupted || code === 130, leftovers };
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}
