// Where a CNI call's time goes (issue 16): `scripts/profile-cni [--runs N] [--phase-runs N]
// [--strace] [--json FILE] [--compare LABEL=BINARY]... [--attach-compare LABEL=OUT_DIR]...`. On a throwaway node (a pod netns + cgroup and its own bpf root,
// the shared programs loaded by a first ADD) it runs, round after round so a slow moment of
// the machine touches every row alike:
//   floor: `node -e 0` (the Node the binary is made from) and the binary's CNI VERSION;
//   the binary's meshed ADD, its DEL, an unmeshed ADD and a DEL with nothing attached,
// each a whole process under /usr/bin/time (wall time from spawn to exit, peak RSS), logging
// at info to a file as the default config does. A second meshed pod stays attached meanwhile,
// as on a node with meshed pods; the rows "..., no other pod meshed" are the meshed ADD and DEL
// with it detached (the first meshed pod on a node, and the last). Then, with WAGGLE_PHASES=1 (base/phases.ts),
// the median time at which each phase of each call was reached; with --strace, each call's
// syscalls (strace -f -c); and attachPod/detachPod timed in this process, warm, as the
// bench's setup figure (--attach-runs N, default 30), alternating with the attachPod of other
// builds' compiled out/ directories (--attach-compare); with --first-add-runs N, meshed ADDs
// that load the shared programs (the datapath removed before each). Prints a Markdown report.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PHASES_ENV, type PhaseReport, parsePhaseReport } from "../base/phases";
import { type DatapathOptions, detachPod, type PodRecordData, removeDatapath } from "../datapath";
import {
  describeRun,
  type PodRequest,
  podConf,
  podEnv,
  WAGGLE_BINARY,
} from "../test/support/cni-binary";
import { COMMAND_PATH } from "../test/support/command";
import { uniqueName } from "../test/support/names";
import { createPod, type Pod } from "../test/support/pod";
import { ReliabilityBench } from "../test/support/reliability";
import { attachTestPod, testAttachRequest } from "../test/support/waggle-mode";
import { median, quantile } from "./stats";

/** A meshed ADD that loads the shared programs (--first-add-runs): the bench's peak RSS. */
export const FIRST_ADD = "ADD meshed, first on the node";

/** Suffix of the meshed ADD and DEL made while no other pod on the node is meshed. */
export const ALONE = ", no other pod meshed";

/** The calls profiled of each binary, in the order each round runs them (after `node -e 0`). */
export const BINARY_CALLS = [
  "VERSION",
  "ADD meshed",
  "DEL meshed",
  "ADD unmeshed",
  "DEL nothing attached",
  `ADD meshed${ALONE}`,
  `DEL meshed${ALONE}`,
] as const;
/** A call's name: `node -e 0`, or one of BINARY_CALLS, with " (<label>)" for a compared binary. */
export type Call = string;

/** One whole-process run. */
export interface ProcessRun {
  ms: number;
  maxRssKiB: number;
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** p50 and p90 of a call's runs. */
export interface CallRow {
  call: Call;
  runs: number;
  p50Ms: number;
  p90Ms: number;
  p50RssMiB: number;
}

/** When one phase was reached (median over runs) and how long it took after the previous one. */
export interface PhaseRow {
  phase: string;
  /** Runs that reached it. */
  runs: number;
  atMs: number;
  /** atMs minus the previous row's atMs. */
  stepMs: number;
}

/** strace -c's totals and its most expensive syscalls. */
export interface SyscallSummary {
  calls: number;
  errors: number;
  top: { syscall: string; calls: number; seconds: number }[];
}

/** The p50, p90 and median peak RSS of each call's runs. */
export function callRows(runs: ReadonlyMap<Call, ProcessRun[]>): CallRow[] {
  return [...runs].map(([call, rs]) => ({
    call,
    runs: rs.length,
    p50Ms: median(rs.map((r) => r.ms)),
    p90Ms: quantile(
      rs.map((r) => r.ms),
      0.9,
    ),
    p50RssMiB: median(rs.map((r) => r.maxRssKiB)) / 1024,
  }));
}

/**
 * The phases of a set of reports of one call, in the order they were reached: Node's own
 * milestones first, then the marks. A phase's time is its median over the reports that
 * reached it; a mark reached more than once counts at its first time.
 */
export function phaseRows(reports: readonly PhaseReport[]): PhaseRow[] {
  const times = new Map<string, number[]>();
  const add = (name: string, ms: number) => {
    const list = times.get(name) ?? [];
    list.push(ms);
    times.set(name, list);
  };
  for (const r of reports) {
    const seen = new Set<string>();
    for (const [name, ms] of Object.entries(r.node)) add(`node: ${name}`, ms);
    for (const [name, ms] of r.marks) {
      if (seen.has(name)) continue;
      seen.add(name);
      add(name, ms);
    }
  }
  const rows = [...times]
    .map(([phase, ms]) => ({ phase, runs: ms.length, atMs: median(ms), stepMs: 0 }))
    .sort((a, b) => a.atMs - b.atMs);
  rows.forEach((row, i) => {
    row.stepMs = i === 0 ? row.atMs : row.atMs - rows[i - 1].atMs;
  });
  return rows;
}

/** Parses `strace -c` output (its summary table). Throws when there is none. */
export function parseStraceSummary(text: string): SyscallSummary {
  const rows: { syscall: string; calls: number; errors: number; seconds: number }[] = [];
  let total: { calls: number; errors: number } | null = null;
  for (const line of text.split("\n")) {
    // % time  seconds  usecs/call  calls  errors  syscall   (errors may be blank)
    const m = line.match(/^\s*[\d.]+\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(\d+)?\s+(\S+)\s*$/);
    if (!m) continue;
    const [, seconds, , calls, errors, syscall] = m;
    const row = {
      syscall,
      calls: Number(calls),
      errors: Number(errors ?? 0),
      seconds: Number(seconds),
    };
    if (syscall === "total") total = { calls: row.calls, errors: row.errors };
    else rows.push(row);
  }
  if (total === null) throw new Error("no strace -c summary (no total row)");
  return {
    calls: total.calls,
    errors: total.errors,
    top: rows
      .sort((a, b) => b.seconds - a.seconds || b.calls - a.calls)
      .slice(0, 8)
      .map(({ syscall, calls, seconds }) => ({ syscall, calls, seconds })),
  };
}

// ---------------------------------------------------------------------------------------------
// Running.

/** Runs a command to its end under /usr/bin/time (for its peak RSS), timing it from spawn to exit. */
function runProcess(
  argv: string[],
  env: Record<string, string>,
  stdin: string,
  scratch: string,
): Promise<ProcessRun> {
  const rssFile = join(scratch, "rss");
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn("/usr/bin/time", ["-f", "%M", "-o", rssFile, ...argv], {
      env: { PATH: COMMAND_PATH, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (exitCode) => {
      const ms = performance.now() - started;
      const rss = readFileSync(rssFile, "utf8").trim().split("\n").pop() ?? "";
      resolve({
        ms,
        maxRssKiB: Number(rss),
        exitCode,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(stdin);
  });
}

interface Invocation {
  argv: string[];
  env: Record<string, string>;
  stdin: string;
}

/**
 * The node, its pods, the bpf root and how each call is invoked. The calls are made for the
 * first pod; the second is the resident: meshed while the calls run, as on a node with meshed
 * pods. With none meshed, the kernel switches its cgroup-BPF static keys on at a meshed ADD and
 * off at its DEL (patching kernel text on every CPU, several ms on this VM), which a node with
 * meshed pods never does; the "no other pod meshed" calls measure that case.
 */
class ProfileLab {
  private resident: PodRecordData | null = null;

  private constructor(
    readonly bench: ReliabilityBench,
    readonly scratch: string,
    readonly binary: string,
  ) {}

  static async create(binary: string): Promise<ProfileLab> {
    const scratch = mkdtempSync(join(tmpdir(), "waggle-profile-"));
    try {
      return new ProfileLab(await ReliabilityBench.create(2), scratch, binary);
    } catch (e) {
      rmSync(scratch, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * The invocations of one round: `node -e 0`, then each binary's calls (the DELs undo the ADDs
   * of the same round), a compared binary's names ending in " (<label>)".
   */
  round(compare: { label: string; path: string }[] = []): Map<Call, Invocation> {
    const rounds = [
      ...this.calls(this.binary, ""),
      ...compare.flatMap((c) => this.calls(c.path, ` (${c.label})`)),
    ];
    return new Map([
      ["node -e 0", { argv: [process.execPath, "-e", "0"], env: {}, stdin: "" }],
      ...rounds,
    ]);
  }

  /** Meshes the resident pod (see the class), when it is not. */
  attachResident(): void {
    this.resident ??= attachTestPod(this.bench.pods[1] as Pod, this.bench.root.opts);
  }

  /** Unmeshes the resident pod, when it is meshed. */
  detachResident(): void {
    if (this.resident === null) return;
    detachPod(this.resident.containerId, this.bench.root.opts);
    this.resident = null;
  }

  /** A meshed ADD and its DEL (the ADD the first on the node when the datapath was removed). */
  firstAdd(binary: string): { add: Invocation; del: Invocation } {
    const meshed = this.requests().meshed;
    return { add: cniCall(binary, "ADD", meshed), del: cniCall(binary, "DEL", meshed) };
  }

  private requests(): { meshed: PodRequest; unmeshed: PodRequest } {
    const pod = this.bench.pods[0];
    const entry = { log_file: join(this.scratch, "cni.log"), log_level: "info" };
    return {
      meshed: this.bench.request(pod, { entry }),
      unmeshed: this.bench.request(pod, { entry, annotations: {} }),
    };
  }

  private calls(binary: string, suffix: string): [Call, Invocation][] {
    const { meshed, unmeshed } = this.requests();
    const cni = (command: string, req: PodRequest) => cniCall(binary, command, req);
    const calls: [(typeof BINARY_CALLS)[number], Invocation][] = [
      [
        "VERSION",
        { argv: [binary], env: { CNI_COMMAND: "VERSION" }, stdin: '{"cniVersion":"1.1.0"}' },
      ],
      ["ADD meshed", cni("ADD", meshed)],
      ["DEL meshed", cni("DEL", meshed)],
      ["ADD unmeshed", cni("ADD", unmeshed)],
      ["DEL nothing attached", cni("DEL", { ...unmeshed, containerId: uniqueName("k") })],
      [`ADD meshed${ALONE}`, cni("ADD", meshed)],
      [`DEL meshed${ALONE}`, cni("DEL", meshed)],
    ];
    return calls.map(([call, inv]) => [`${call}${suffix}`, inv]);
  }

  /** Runs one call of a round: an "alone" ADD unmeshes the resident, its DEL meshes it again. */
  async runCall(
    call: Call,
    inv: Invocation,
    extraEnv: Record<string, string> = {},
    prefix: string[] = [],
  ) {
    if (call.startsWith(`ADD meshed${ALONE}`)) this.detachResident();
    try {
      return await this.run(inv, extraEnv, prefix);
    } finally {
      if (call.startsWith(`DEL meshed${ALONE}`)) this.attachResident();
    }
  }

  async run(inv: Invocation, extraEnv: Record<string, string> = {}, prefix: string[] = []) {
    const r = await runProcess(
      [...prefix, ...inv.argv],
      { ...inv.env, ...extraEnv },
      inv.stdin,
      this.scratch,
    );
    if (r.exitCode !== 0) {
      throw new Error(
        `${inv.argv.join(" ")} ${inv.env.CNI_COMMAND ?? ""} failed: ${describeRun({ ...r, outcome: "crash", signal: null })}`,
      );
    }
    return r;
  }

  async destroy(): Promise<void> {
    this.detachResident();
    await this.bench.destroy();
    rmSync(this.scratch, { recursive: true, force: true });
  }
}

/** A CNI call of the binary for the pod request. */
function cniCall(binary: string, command: string, req: PodRequest): Invocation {
  return { argv: [binary], env: podEnv(command, req), stdin: JSON.stringify(podConf(req)) };
}

/** attachPod and detachPod timed in this process (warm), as the bench's setup figure. */
export interface InProcessRow {
  /** "this build", or the label of an --attach-compare build. */
  label: string;
  runs: number;
  attachP50Ms: number;
  /** CPU time of the process (all threads) during the attach. */
  attachCpuP50Ms: number;
  detachP50Ms: number;
}

/** The datapath functions timed in process: this build's, or another build's out/ directory. */
interface DatapathImpl {
  label: string;
  attach: (pod: Pod, opts: DatapathOptions) => PodRecordData;
  detach: (containerId: string, opts: DatapathOptions) => boolean;
}

const THIS_BUILD: DatapathImpl = { label: "this build", attach: attachTestPod, detach: detachPod };

/** Another build's datapath, from its compiled out/ directory (same bpf root layout). */
function otherBuild(label: string, outDir: string): DatapathImpl {
  const dp = require(join(resolve(outDir), "datapath")) as typeof import("../datapath");
  return {
    label,
    attach: (pod, opts) => dp.attachPod(testAttachRequest(pod), opts),
    detach: dp.detachPod,
  };
}

/**
 * Attaches and detaches `runs` times after 5 unmeasured rounds, each time the next of 5 pods
 * (attaching to the cgroup a detach has just left costs more: the kernel is still releasing),
 * while the lab's resident pod stays meshed.
 * With several builds, each round attaches with each of them in turn, the order reversed
 * every other round, so a slow moment of a shared machine touches them alike.
 */
async function timeAttach(
  lab: ProfileLab,
  runs: number,
  impls: DatapathImpl[],
): Promise<InProcessRow[]> {
  while (lab.bench.pods.length < FIRST_TIMED_POD + 5) {
    lab.bench.pods.push(await createPod({ node: lab.bench.node }));
  }
  lab.attachResident();
  return timeAttachRounds(lab, runs, impls);
}

/** The bench's pods from this one on are the in-process rounds' (0 is the calls', 1 the resident). */
const FIRST_TIMED_POD = 2;

async function timeAttachRounds(
  lab: ProfileLab,
  runs: number,
  impls: DatapathImpl[],
): Promise<InProcessRow[]> {
  const opts = lab.bench.root.opts;
  const samples = impls.map(() => ({
    attach: [] as number[],
    cpu: [] as number[],
    detach: [] as number[],
  }));
  for (let i = 0; i < runs + 5; i++) {
    const order = impls.map((_, k) => k);
    if (i % 2 === 1) order.reverse();
    for (const k of order) {
      const impl = impls[k] as DatapathImpl;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const rec = impl.attach(lab.bench.pods[FIRST_TIMED_POD + (i % 5)] as Pod, opts);
      const t1 = performance.now();
      const used = process.cpuUsage(cpu0);
      impl.detach(rec.containerId, opts);
      const t2 = performance.now();
      if (i < 5) continue;
      const s = samples[k] as (typeof samples)[number];
      s.attach.push(t1 - t0);
      s.cpu.push((used.user + used.system) / 1000);
      s.detach.push(t2 - t1);
    }
  }
  return impls.map((impl, k) => {
    const s = samples[k] as (typeof samples)[number];
    return {
      label: impl.label,
      runs,
      attachP50Ms: median(s.attach),
      attachCpuP50Ms: median(s.cpu),
      detachP50Ms: median(s.detach),
    };
  });
}

export interface ProfileResult {
  binary: string;
  /** Empty when not asked for (--attach-runs 0). */
  inProcess: InProcessRow[];
  calls: CallRow[];
  phases: Partial<Record<Call, PhaseRow[]>>;
  syscalls: Partial<Record<Call, SyscallSummary>>;
}

export async function profile(opts: {
  runs: number;
  phaseRuns: number;
  strace: boolean;
  /** attachPod/detachPod rounds in this process (0: none). */
  attachRuns: number;
  /** Meshed ADDs of each binary on a node without the shared programs (0: none). */
  firstAddRuns?: number;
  binary: string;
  /** Binaries timed in the same rounds (e.g. the build before a change), by label. */
  compare: { label: string; path: string }[];
  /** Other builds' out/ directories whose attachPod is timed alongside this one's, by label. */
  attachCompare?: { label: string; path: string }[];
  log: (line: string) => void;
}): Promise<ProfileResult> {
  const lab = await ProfileLab.create(opts.binary);
  try {
    lab.attachResident();
    const runs = new Map<Call, ProcessRun[]>();
    for (let i = 0; i < opts.runs; i++) {
      for (const [call, inv] of lab.round(opts.compare)) {
        runs.set(call, [...(runs.get(call) ?? []), await lab.runCall(call, inv)]);
      }
      if ((i + 1) % 10 === 0) opts.log(`profile-cni: ${i + 1}/${opts.runs} rounds`);
    }
    // The first ADD on a node: no other pod meshed, no shared programs.
    if ((opts.firstAddRuns ?? 0) > 0) lab.detachResident();
    for (let i = 0; i < (opts.firstAddRuns ?? 0); i++) {
      const binaries = [{ label: "", path: opts.binary }, ...opts.compare];
      if (i % 2 === 1) binaries.reverse();
      for (const b of binaries) {
        const call = `${FIRST_ADD}${b.label ? ` (${b.label})` : ""}`;
        const calls = lab.firstAdd(b.path);
        removeDatapath(lab.bench.root.opts); // this ADD loads and pins the shared programs
        runs.set(call, [...(runs.get(call) ?? []), await lab.run(calls.add)]);
        await lab.run(calls.del);
      }
    }
    lab.attachResident();
    const reports = new Map<Call, PhaseReport[]>();
    for (let i = 0; i < opts.phaseRuns; i++) {
      for (const [call, inv] of lab.round()) {
        if (call === "node -e 0") continue;
        const report = parsePhaseReport(
          (await lab.runCall(call, inv, { [PHASES_ENV]: "1" })).stderr,
        );
        if (report === null) throw new Error(`${call}: no phase report with ${PHASES_ENV}=1`);
        reports.set(call, [...(reports.get(call) ?? []), report]);
      }
    }
    const syscalls: ProfileResult["syscalls"] = {};
    if (opts.strace) {
      const out = join(lab.scratch, "strace");
      for (const [call, inv] of lab.round()) {
        await lab.runCall(call, inv, {}, ["strace", "-f", "-c", "-o", out]);
        syscalls[call] = parseStraceSummary(readFileSync(out, "utf8"));
      }
    }
    return {
      binary: opts.binary,
      inProcess:
        opts.attachRuns > 0
          ? await timeAttach(lab, opts.attachRuns, [
              THIS_BUILD,
              ...(opts.attachCompare ?? []).map((c) => otherBuild(c.label, c.path)),
            ])
          : [],
      calls: callRows(runs),
      phases: Object.fromEntries([...reports].map(([call, rs]) => [call, phaseRows(rs)])),
      syscalls,
    };
  } finally {
    await lab.destroy();
  }
}

/** The report as Markdown. */
export function renderProfile(p: ProfileResult): string {
  const f = (x: number) => x.toFixed(1);
  const lines = [
    `binary: ${p.binary}`,
    "",
    "| call | runs | p50 ms | p90 ms | peak RSS p50 MiB |",
    "|---|---:|---:|---:|---:|",
    ...p.calls.map(
      (c) => `| ${c.call} | ${c.runs} | ${f(c.p50Ms)} | ${f(c.p90Ms)} | ${f(c.p50RssMiB)} |`,
    ),
  ];
  for (const a of p.inProcess) {
    lines.push(
      "",
      `attachPod in this process, ${a.label} (warm, ${a.runs} runs): p50 ${f(a.attachP50Ms)} ms wall, ${f(a.attachCpuP50Ms)} ms CPU; detachPod p50 ${f(a.detachP50Ms)} ms`,
    );
  }
  for (const [call, rows] of Object.entries(p.phases)) {
    lines.push("", `${call}: phases (median ms since the process started)`, "");
    lines.push("| phase | at ms | step ms |", "|---|---:|---:|");
    for (const r of rows ?? []) lines.push(`| ${r.phase} | ${f(r.atMs)} | ${f(r.stepMs)} |`);
  }
  for (const [call, s] of Object.entries(p.syscalls)) {
    if (!s) continue;
    const top = s.top.map((t) => `${t.syscall} ${t.calls}`).join(", ");
    lines.push("", `${call}: ${s.calls} syscalls (${s.errors} failed); most time: ${top}`);
  }
  return `${lines.join("\n")}\n`;
}

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Every `NAME LABEL=PATH` pair of the command line. */
function labelledPaths(argv: string[], name: string): { label: string; path: string }[] {
  return argv.flatMap((a, i) => {
    if (a !== name) return [];
    const [label, path] = (argv[i + 1] ?? "").split("=");
    if (!label || !path) throw new Error(`${name} needs LABEL=PATH`);
    return [{ label, path }];
  });
}

async function main(argv: string[]): Promise<void> {
  const count = (name: string, dflt: number) => {
    const v = Number(argValue(argv, name) ?? dflt);
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name} needs a count, got ${v}`);
    return v;
  };
  const result = await profile({
    runs: count("--runs", 30),
    phaseRuns: count("--phase-runs", 10),
    strace: argv.includes("--strace"),
    attachRuns: count("--attach-runs", 30),
    firstAddRuns: count("--first-add-runs", 0),
    binary: argValue(argv, "--binary") ?? WAGGLE_BINARY,
    compare: labelledPaths(argv, "--compare"),
    attachCompare: labelledPaths(argv, "--attach-compare"),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(renderProfile(result));
  const json = argValue(argv, "--json");
  if (json) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e: Error) => {
      process.stderr.write(`profile-cni: ${e.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
