// The markdown report and the charts of a bench run, rendered from results.json alone (so a
// report can be re-rendered from saved results: waggle-bench --report-only).

import {
  type CellSummary,
  evaluateTargets,
  METRICS,
  type Metric,
  PROBE_METRIC,
  ratio,
  summarizeCells,
  type TargetResult,
} from "./analysis";
import { driftWithin, type RunSpeed, summarizeStability } from "./machine-speed";
import { table } from "./markdown";
import { summarizeMemory } from "./memory";
import type { ModeName } from "./modes";
import { nodeCostTargets } from "./node-cost";
import { nodeCostSection, nodeScaleChart } from "./node-cost-report";
import { describeWorkload, parseWorkload, TLS_SUFFIX } from "./plan";
import type { BenchResults } from "./runner";
import { correlation, type Spread, spread } from "./stats";
import { type BarGroup, type BoxGroup, barChartSvg, boxPlotSvg } from "./svg";
import { PROBE_KINDS, type ProbeKind } from "./tools/speedprobe";

export interface Chart {
  /** File name without extension ("latency-rate1000-new"). */
  name: string;
  title: string;
  svg: string;
}

export interface RenderedReport {
  markdown: string;
  charts: Chart[];
  cells: CellSummary[];
  targets: TargetResult[];
}

const ms = (us: number) => (Number.isFinite(us) ? (us / 1000).toFixed(3) : "–");
const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : "–");
const fixed = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : "–");

/** A load average above this means the figures are indicative only (results without CPU data). */
export const BUSY_LOAD = 0.5;

/** User time outside the bench's pods above this many CPUs (median over runs): a busy machine. */
export const BUSY_OUTSIDE_CPUS = 0.1;

/**
 * CPUs' worth of user time outside the bench's pods while each run ran: the whole machine's
 * user time from /proc/stat minus the pods' cgroups, over the run's duration. Other work (a
 * build, a test run) shows here; the runs' own kernel work does not (timers and softirqs on an
 * idle CPU are charged to no process, so the machine's system time cannot tell them apart),
 * nor does the load average's count of the bench's own build and report. Null for results
 * without CPU data.
 */
export function outsideLoad(runs: BenchResults["runs"]): Spread | null {
  const per = runs
    .filter((r) => r.cpu?.machine && r.cpu.byRole && r.durationS > 0)
    .map((r) => {
      const podsUser = Object.values(r.cpu.byRole).reduce((s, c) => s + c.userS, 0);
      return Math.max(0, r.cpu.machine.userS - podsUser) / r.durationS;
    });
  return per.length > 0 ? spread(per) : null;
}

/** A report section: its heading, then each paragraph or table followed by a blank line. */
function section(heading: string, ...blocks: string[]): string[] {
  return [`## ${heading}`, "", ...blocks.flatMap((b) => [b, ""])];
}

function cellsOf(cells: CellSummary[], level: string, workload: string): CellSummary[] {
  return cells.filter((c) => c.level === level && c.workload === workload);
}

function targetRow(t: TargetResult): string[] {
  const verdict = t.met === null ? "not measured" : t.met ? "**met**" : "**not met**";
  const measured = t.measured === null ? "–" : fixed(t.measured);
  return [
    t.description,
    `${t.comparison} ${t.threshold}`,
    measured,
    verdict,
    [t.detail, ...t.warnings.map((w) => `⚠ ${w}`)].join("; "),
  ];
}

/** How far the machine itself moved, and how the repeated runs followed it. */
function machineStabilitySection(results: BenchResults, cells: CellSummary[]): string[] {
  const probed = results.runs.filter((r) => r.machineSpeed);
  if (!results.machineStability && probed.length === 0) return [];
  const slower = (sp: Spread) => `+${pct(sp.max / sp.min - 1)}`;
  const md = [
    "## Machine stability",
    "",
    "The machine itself, measured by waggle-speedprobe pinned to one CPU, with two fixed chains of dependent work of about 5 ms per sample: `alu` (xorshift steps: only the CPU's own speed moves it) and `memory` (loads from a 64 MiB buffer in an order no prefetcher guesses: the latency of the shared cache and memory, where the network stack lives). Idle on every CPU before the first run and after the last; on the mesh's CPU just before and just after every run. On a virtual machine both move with the host's other tenants, which no load average shows; no figure of the bench can be steadier than the machine, so read a run-to-run spread against these.",
    "",
  ];
  if (results.machineStability)
    md.push(
      table(
        ["when", "probe", "CPU", "samples", "median ns per step", "CV", "slowest sample"],
        summarizeStability(results.machineStability).map((row) => [
          row.when === "start" ? "before the first run" : "after the last run",
          row.kind,
          row.cpu ?? "any",
          String(row.nsPerStep.n),
          fixed(row.nsPerStep.median, 2),
          pct(row.nsPerStep.cv),
          slower(row.nsPerStep),
        ]),
      ),
      "",
    );
  if (probed.length > 0) {
    const speeds = probed.map((r) => r.machineSpeed as RunSpeed);
    md.push(
      `Around the runs (CPU ${speeds[0].cpu ?? "any"}, ${probed.length} runs): ${PROBE_KINDS.map(
        (kind) => {
          const around = spread(probed.map(METRICS[PROBE_METRIC[kind]].of));
          const drift = spread(speeds.map((s) => driftWithin(s, kind)));
          return `the ${kind} probe's CV over runs ${pct(around.cv)} (slowest run ${slower(around)}), moving ${pct(drift.median)} (median) and up to ${pct(drift.max)} from just before a run to just after it`;
        },
      ).join("; ")}.`,
      "",
    );
    const maxCells = cells.filter((c) => c.workload.startsWith("max-") && c.runs >= 3);
    if (maxCells.length > 0)
      md.push(
        "Maximum-throughput cells, where the mesh's CPU is saturated: the spread of repeated runs' throughput beside the probes', and their correlation with the machine's speed (1 / probe time) around each run. A correlation near 1 with a similar spread says the runs' spread is the machine's; a large spread that follows neither probe has another cause.",
        "",
        table(
          [
            "rules",
            "workload",
            "mode",
            "runs",
            "throughput CV",
            "alu CV",
            "memory CV",
            "correlation with alu",
            "correlation with memory",
          ],
          maxCells.map((c) => {
            const rs = probed.filter(
              (r) => r.level === c.level && r.workload === c.workload && r.mode === c.mode,
            );
            const corr = (kind: ProbeKind) =>
              fixed(
                correlation(
                  rs.map((r) => r.throughputRps),
                  rs.map((r) => 1 / METRICS[PROBE_METRIC[kind]].of(r)),
                ),
                2,
              );
            return [
              c.level,
              c.workload,
              c.mode,
              String(c.runs),
              pct(c.figures.throughput.cv),
              pct(c.figures.probeAlu.cv),
              pct(c.figures.probeMemory.cv),
              corr("alu"),
              corr("memory"),
            ];
          }),
        ),
        "",
      );
  }
  return md;
}

/** Builds the charts: a latency box plot per workload, throughput bars, CPU bars, setup bars. */
export function renderCharts(results: BenchResults, cells: CellSummary[]): Chart[] {
  const charts: Chart[] = [];
  const modes = results.plan.modes;
  const levels = [...new Set(cells.map((c) => c.level))];
  const workloads = [...new Set(cells.map((c) => c.workload))];
  for (const workload of workloads) {
    const groups: BoxGroup[] = levels
      .filter((level) => cellsOf(cells, level, workload).length > 0)
      .map((level) => ({
        label: `rules ${level}`,
        boxes: modes.map((mode) => {
          const c = cells.find(
            (x) => x.level === level && x.workload === workload && x.mode === mode,
          );
          return {
            series: mode,
            stats: c
              ? {
                  p1: c.box.p1 / 1000,
                  p25: c.box.p25 / 1000,
                  p50: c.box.p50 / 1000,
                  p75: c.box.p75 / 1000,
                  p99: c.box.p99 / 1000,
                  max: c.box.max / 1000,
                }
              : null,
          };
        }),
      }));
    const w = parseWorkload(workload);
    const isPingpong = w.kind === "pingpong";
    charts.push({
      name: `latency-${workload}`,
      title: `Latency: ${describeWorkload(w)}`,
      svg: boxPlotSvg(groups, {
        title: `${isPingpong ? "Round trip" : "Latency"}: ${workload}`,
        yLabel: isPingpong ? "round trip (ms, log)" : "latency (ms, log)",
        unit: "",
        log: true,
        note: `box p25-p75, line p50, whiskers ${isPingpong ? "p25-p99 (sockperf)" : "p1-p99"}, dot max; all rounds pooled`,
      }),
    });
  }
  const maxCells = cells.filter((c) => c.workload.startsWith("max-"));
  if (maxCells.length > 0) {
    const groups: BarGroup[] = [...new Set(maxCells.map((c) => `${c.workload}@${c.level}`))].map(
      (key) => {
        const [workload, level] = key.split("@");
        return {
          label: `${workload} (rules ${level})`,
          bars: cellsOf(cells, level, workload).map((c) => ({
            series: c.mode,
            parts: [{ name: "throughput", value: c.figures.throughput.median }],
            range: [c.figures.throughput.min, c.figures.throughput.max] as [number, number],
          })),
        };
      },
    );
    charts.push({
      name: "throughput",
      title: "Maximum throughput",
      svg: barChartSvg(groups, {
        title: "Maximum throughput (requests/s)",
        yLabel: "requests/s",
        note: "median over rounds, whiskers min-max",
      }),
    });
  }
  const cpuGroups: BarGroup[] = [...new Set(cells.map((c) => `${c.workload}@${c.level}`))]
    .filter((key) => !key.startsWith("pingpong"))
    .map((key) => {
      const [workload, level] = key.split("@");
      return {
        label: `${workload} @${level}`,
        bars: cellsOf(cells, level, workload).map((c) => ({
          series: c.mode,
          parts: [
            { name: "load generator", value: c.cpuByRole.loadgen },
            { name: "sidecars", value: c.cpuByRole.sidecars },
            { name: "app", value: c.cpuByRole.app },
          ],
          range: [c.figures.cpu.min, c.figures.cpu.max] as [number, number],
        })),
      };
    });
  if (cpuGroups.length > 0)
    charts.push({
      name: "cpu",
      title: "CPU seconds per 1000 requests",
      svg: barChartSvg(cpuGroups, {
        title: "CPU seconds per 1000 requests, by role",
        yLabel: "CPU s / 1000 requests",
        note: "medians by role; whiskers: node total (with ksoftirqd), min-max",
      }),
    });
  if (results.setup) {
    const s = results.setup;
    const bar = (series: string, xs: { median: number; min: number; max: number }) => ({
      series,
      parts: [{ name: "ms", value: xs.median }],
      range: [xs.min, xs.max] as [number, number],
    });
    charts.push({
      name: "setup",
      title: "Per-pod setup time",
      svg: barChartSvg(
        [
          {
            label: "per-pod capture setup",
            bars: [
              bar("iptables", s.iptables),
              bar("waggle", s.waggleAttach),
              ...(s.waggleCniAdd.n > 0 ? [bar("waggle CNI ADD", s.waggleCniAdd)] : []),
            ],
          },
        ],
        {
          title: "Per-pod setup (ms)",
          yLabel: "milliseconds",
          note: "iptables-restore of the istio rules vs waggle attachPod (and waggle's whole CNI ADD process)",
        },
      ),
    });
  }
  return charts;
}

/** The workloads the bypass section compares, each plain and with TLS between the sidecars. */
const BYPASS_WORKLOADS = ["max-keepalive", "max-new", "pingpong"] as const;

/** The figure each bypass workload is judged by (ping-pong: the round trip's p50). */
const BYPASS_METRIC: Record<(typeof BYPASS_WORKLOADS)[number], Metric> = {
  "max-keepalive": "throughput",
  "max-new": "throughput",
  pingpong: "p50",
};

/**
 * Rows of the bypass section: per workload, plain and with TLS, the paired ratio of `subject`
 * (waggle, or merbridge) against each baseline of the workload's figure, then of CPU per
 * request against each CPU baseline. Cells without runs read "–".
 */
export function bypassGainRows(
  runs: BenchResults["runs"],
  level: string,
  subject: ModeName = "waggle",
  baselines: ModeName[] = ["iptables", "explicit", "waggle-redirect"],
  cpuBaselines: ModeName[] = ["iptables", "waggle-redirect"],
): string[][] {
  const rows: string[][] = [];
  for (const base of BYPASS_WORKLOADS) {
    for (const tls of [false, true]) {
      const workload = `${base}${tls ? TLS_SUFFIX : ""}`;
      if (!runs.some((r) => r.workload === workload && r.level === level)) continue;
      const metric = BYPASS_METRIC[base];
      const vs = (m: Metric, baseline: ModeName) => {
        const r = ratio(runs, { level, workload }, m, subject, baseline);
        return r ? fixed(r.summary.median) : "–";
      };
      const cpu = (baseline: ModeName) => (base === "pingpong" ? "–" : vs("cpu", baseline));
      rows.push([
        workload,
        METRICS[metric].label,
        ...baselines.map((b) => vs(metric, b)),
        ...cpuBaselines.map(cpu),
      ]);
    }
  }
  return rows;
}

/**
 * Merbridge's sockhash bypass beside waggle's: merbridge's ratios against iptables and
 * explicit (issue 13's targets were set from such ratios), and waggle's against merbridge.
 */
function merbridgeBypassLines(results: BenchResults, level: string): string[] {
  const m = results.merbridge;
  const runs = results.runs;
  const rows = bypassGainRows(runs, level, "merbridge", ["iptables", "explicit"], ["iptables"]);
  if (rows.length === 0 || !runs.some((r) => r.mode === "merbridge")) return [];
  const waggle = bypassGainRows(runs, level, "waggle", ["merbridge"], ["merbridge"]);
  return [
    "## Merbridge's bypass beside waggle's",
    "",
    `Mode merbridge: Merbridge's own programs, built at commit ${m?.commit ? `\`${m.commit}\`` : "unknown (not a git checkout)"}${m?.dirty ? " with uncommitted changes under bpf/" : ""} (docs/benchmarks.md, "The modes, exactly"). Medians of per-round ratios at rules ${level}; issue 13's targets for waggle: keep-alive >= 1.7 x iptables and >= 1.5 x explicit, CPU per request <= 0.53 x iptables, ping-pong p50 <= 0.66 x iptables.`,
    "",
    table(
      [
        "workload",
        "figure",
        "merbridge / iptables",
        "merbridge / explicit",
        "CPU per request, merbridge / iptables",
        "waggle / merbridge",
        "CPU per request, waggle / merbridge",
      ],
      rows.map((r) => {
        const w = waggle.find((x) => x[0] === r[0]);
        return [...r, w?.[2] ?? "–", w?.[3] ?? "–"];
      }),
    ),
    "",
  ];
}

/** The socket bypass's section: its gain with and without TLS, and its memory per connection. */
export function bypassSection(results: BenchResults): string[] {
  const md: string[] = [];
  const level = results.runs.some((r) => r.level === "0") ? "0" : results.runs[0]?.level;
  const rows = level ? bypassGainRows(results.runs, level) : [];
  if (rows.length > 0 && results.runs.some((r) => r.mode === "waggle"))
    md.push(
      "## Socket bypass: the gain with and without TLS",
      "",
      `waggle (bypass on) against the other modes at rules ${level}: medians of per-round ratios (throughput: higher is better; p50 and CPU per request: lower is better). \`-tls\`: mutual TLS between the sidecars (HAProxy \`ssl\` on the inbound listener and the outbound server line).`,
      "",
      table(
        [
          "workload",
          "figure",
          "waggle / iptables",
          "waggle / explicit",
          "waggle / waggle-redirect",
          "CPU per request / iptables",
          "CPU per request / waggle-redirect",
        ],
        rows,
      ),
      "",
    );
  const memory = summarizeMemory(results.memory ?? []);
  if (memory) {
    const kib = (b: number) => fixed(b / 1024, 2);
    md.push(
      "## Kernel memory per connection",
      "",
      `${memory.connections} idle connections (each through the whole path: client app -> client sidecar -> server sidecar -> nginx, 3 hops, 6 sockets; one request made on each, then left open), the machine's Slab from /proc/meminfo just before they opened and once all were open; ${memory.rounds} sample(s) per mode, waggle and waggle-redirect alternating. The bypass's own allocations (psock, sockhash entry, socket storage per joined socket) are kmalloc'd and charged to no memory cgroup, so only the machine-wide Slab shows them, and other work on the machine moves it too: read the spread.`,
      "",
      table(
        ["mode", "samples", "KiB slab per connection (median)", "min", "max"],
        Object.entries(memory.perConnection).map(([mode, s]) => [
          mode,
          String(s.n),
          kib(s.median),
          kib(s.min),
          kib(s.max),
        ]),
      ),
      "",
      memory.bypassExtra
        ? `What the bypass adds per connection (waggle minus waggle-redirect, paired by round): median ${kib(memory.bypassExtra.median)} KiB (${kib(memory.bypassExtra.min)}..${kib(memory.bypassExtra.max)}), i.e. ${kib(memory.bypassExtra.median / 6)} KiB per bypassed socket; waggle / waggle-redirect ${fixed(memory.bypassRatio?.median ?? Number.NaN)}.`
        : "No paired waggle and waggle-redirect samples.",
      "",
    );
  }
  if (level) md.push(...merbridgeBypassLines(results, level));
  return md;
}

/** The title, when and where the bench ran, a warning when the machine was busy, placement. */
function headerSection(results: BenchResults): string[] {
  const h = results.host;
  const outside = outsideLoad(results.runs);
  const busy = outside
    ? outside.median > BUSY_OUTSIDE_CPUS
    : Math.max(h.loadavgStart[0] ?? 0, h.loadavgEnd[0] ?? 0) > BUSY_LOAD;
  const md = [
    "# waggle benchmark report",
    "",
    `Run ${results.startedAt} – ${results.finishedAt}, preset **${results.plan.preset}**, ${
      results.plan.modes.length > 0
        ? `${results.plan.rounds} round(s) per cell, modes ${results.plan.modes.join(", ")}`
        : "no traffic: the plugin's cost on the node only"
    }.`,
    "",
    `Host: Linux ${h.kernel}, ${h.cpus} CPUs (${h.cpuModel}); load average ${h.loadavgStart.map((x) => x.toFixed(2)).join(" ")} at the start, ${h.loadavgEnd.map((x) => x.toFixed(2)).join(" ")} at the end (the bench's own build and report included).${
      outside
        ? ` User time outside the bench's pods while the runs ran: ${fixed(outside.median, 3)} CPUs (median over runs), at most ${fixed(outside.max, 3)}.`
        : ""
    }`,
    "",
  ];
  if (busy)
    md.push(
      outside
        ? `> **The machine was busy**: processes outside the bench's pods used ${fixed(outside.median, 2)} CPUs of user time (median over runs, above ${BUSY_OUTSIDE_CPUS}) while they ran, so absolute figures and ratios are indicative only. Run on a quiet machine for numbers to record.`
        : `> **The machine was busy** (1-minute load average above ${BUSY_LOAD}): other work shared the CPUs, so absolute figures and ratios are indicative only. Run on a quiet machine for numbers to record.`,
      "",
    );
  const mb = results.merbridge;
  if (mb)
    md.push(
      `Mode merbridge: Merbridge ${mb.commit ? `commit \`${mb.commit}\`` : "of unknown commit (not a git checkout)"}${mb.dirty ? " with uncommitted changes under bpf/" : ""} from ${mb.source}, compiled by its Makefile (\`${mb.compile[0] ?? "?"}\`, and likewise for each object), attached to the two pods' cgroups: ${mb.programs.map((p) => `${p.section} (${p.attach})`).join(", ")}.`,
      "",
    );
  md.push(
    `Placement: load generator on CPU ${results.placement.load ?? "any"}, sidecars and apps on CPU ${results.placement.mesh ?? "any"}. Pod sysctls (every mode): ${Object.entries(
      results.podSysctls,
    )
      .map(([k, v]) => `\`${k}=${v}\``)
      .join(
        ", ",
      )}. Response body ${results.plan.bodyBytes} bytes. How to read this: docs/benchmarks.md.`,
    "",
  );
  return md;
}

function targetsSection(targets: TargetResult[]): string[] {
  return section(
    "Targets",
    table(["target", "threshold", "measured", "verdict", "how"], targets.map(targetRow)),
  );
}

/** One table per rule level and workload: a row per mode, with its ratios to the baselines. */
function resultsSection(results: BenchResults, cells: CellSummary[]): string[] {
  const levels = [...new Set(cells.map((c) => c.level))];
  const tables = levels.flatMap((level) =>
    [...new Set(cells.filter((c) => c.level === level).map((c) => c.workload))].map((workload) =>
      cellTable(results, cellsOf(cells, level, workload), level, workload),
    ),
  );
  return section(
    "Results by rule level and workload",
    "Medians over rounds; `±` is the coefficient of variation over rounds; ratios are medians of per-round ratios against `explicit` (the floor) and `iptables`. Latency of fixed-rate runs counts from each request's intended start (open loop); wrk's (max) from when it wrote the request; ping-pong is sockperf's round trip.",
    ...tables,
  );
}

/** The heading and table of one rule level and workload. */
function cellTable(
  results: BenchResults,
  cells: CellSummary[],
  level: string,
  workload: string,
): string {
  const rows = cells.map((c) => {
    const vs = (metric: Metric, baseline: "explicit" | "iptables") => {
      if (c.mode === baseline) return "1";
      const r = ratio(results.runs, { level, workload }, metric, c.mode, baseline);
      return r ? fixed(r.summary.median) : "–";
    };
    const f = c.figures;
    return [
      c.mode,
      String(c.runs),
      `${fixed(f.throughput.median, 0)} ±${pct(f.throughput.cv)}`,
      `${ms(f.p50.median)} ±${pct(f.p50.cv)}`,
      ms(f.p90.median),
      ms(f.p99.median),
      ms(f.max.max),
      fixed(f.cpu.median, 4),
      `${vs("throughput", "explicit")} / ${vs("p99", "explicit")} / ${vs("cpu", "explicit")}`,
      `${vs("throughput", "iptables")} / ${vs("p99", "iptables")} / ${vs("cpu", "iptables")}`,
      c.errors > 0 || c.exhaustedRuns > 0
        ? `⚠ ${c.errors} errors${c.exhaustedRuns ? `, ${c.exhaustedRuns} runs out of ports` : ""}`
        : "0",
    ];
  });
  return [
    `### rules ${level}: ${workload} — ${describeWorkload(parseWorkload(workload))}`,
    "",
    table(
      [
        "mode",
        "runs",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "CPU s/1000 req",
        "vs explicit: thr / p99 / CPU",
        "vs iptables: thr / p99 / CPU",
        "errors",
      ],
      rows,
    ),
  ].join("\n");
}

/** CPU seconds per 1000 requests split by who paid them. */
function cpuByRoleSection(results: BenchResults, cells: CellSummary[]): string[] {
  return section(
    "CPU per 1000 requests by role",
    "Seconds of CPU per 1000 requests (medians). Each role runs in its own cgroup; kernel work done in a process's context (loopback and veth delivery happen in the sender's softirq) is charged to that process, so `system` is the kernel share of all roles together. `node` = all pod cgroups + ksoftirqd; `machine` = every CPU of the host from /proc/stat (meaningful on a quiet machine only).",
    table(
      [
        "rules",
        "workload",
        "mode",
        "load generator",
        "sidecars",
        "app",
        "of which system",
        "node",
        "machine",
      ],
      cells
        .filter((c) => c.workload !== "pingpong")
        .map((c) => {
          const machine = results.runs
            .filter((r) => r.level === c.level && r.workload === c.workload && r.mode === c.mode)
            .map((r) => r.cpuPer1000.machine);
          return [
            c.level,
            c.workload,
            c.mode,
            fixed(c.cpuByRole.loadgen, 4),
            fixed(c.cpuByRole.sidecars, 4),
            fixed(c.cpuByRole.app, 4),
            fixed(c.cpuByRole.system, 4),
            fixed(c.figures.cpu.median, 4),
            fixed(machine.sort((a, b) => a - b)[Math.floor(machine.length / 2)] ?? Number.NaN, 4),
          ];
        }),
    ),
  );
}

/** Whether any run ran out of ephemeral ports or retransmitted. */
function portsSection(results: BenchResults): string[] {
  const exhausted = results.runs.filter((r) => r.portPressure.exhausted);
  const maxTw = Math.max(0, ...results.runs.map((r) => r.portPressure.maxEphemeralTimeWait));
  const maxTwAll = Math.max(
    0,
    ...results.runs.map((r) => Math.max(r.timeWait.client, r.timeWait.server)),
  );
  const retrans = results.runs.filter(
    (r) => r.net.client["Tcp.RetransSegs"] + r.net.server["Tcp.RetransSegs"] > 0,
  );
  return section(
    "Ephemeral ports and TCP health",
    exhausted.length === 0
      ? `No run hit ephemeral-port exhaustion: no connect failed with EADDRNOTAVAIL, and at the end of a run at most ${maxTw} ephemeral ports of ${results.runs[0]?.portPressure.portRange ?? "?"} were held in TIME_WAIT in any pod (tcp_tw_reuse=1; ${maxTwAll} TIME_WAIT sockets in all, mostly on the accepting side, which holds no ephemeral port).`
      : `**${exhausted.length} run(s) hit ephemeral-port exhaustion:** ${exhausted
          .map(
            (r) =>
              `${r.mode} ${r.workload} rules ${r.level} round ${r.round + 1}: ${r.portPressure.reason}`,
          )
          .join("; ")}`,
    retrans.length === 0
      ? "No run retransmitted a TCP segment."
      : `Runs with TCP retransmissions (a stalled connection costs a 1 s SYN or RTO timeout): ${retrans
          .map(
            (r) =>
              `${r.mode} ${r.workload} rules ${r.level} round ${r.round + 1}: ${r.net.client["Tcp.RetransSegs"] + r.net.server["Tcp.RetransSegs"]} segments, ${r.net.client["Tcp.EstabResets"] + r.net.server["Tcp.EstabResets"]} resets`,
          )
          .join("; ")}.`,
  );
}

/** The kube-proxy-shaped host rules of each level; none when the run had no flood. */
function floodSection(results: BenchResults): string[] {
  if (results.floods.length === 0) return [];
  return section(
    "Host rule flood",
    "kube-proxy-shaped rules (services x endpoints, KUBE-SERVICES / KUBE-SVC-* / KUBE-SEP-* with random-probability endpoint selection) loaded with iptables-restore into the bench's node netns, removed after each level.",
    table(
      [
        "level",
        "services x endpoints",
        "rules",
        "chains",
        "iptables-save lines",
        "load ms",
        "remove ms",
      ],
      results.floods.map((f) => [
        f.label,
        `${f.services} x ${f.endpointsPerService}`,
        String(f.rules),
        String(f.chains),
        String(f.saveLines),
        fixed(f.applyMs, 0),
        fixed(f.removeMs ?? Number.NaN, 0),
      ]),
    ),
  );
}

/** Per-pod setup cost of each mode; none when it was not measured. */
function setupSection(results: BenchResults): string[] {
  const s = results.setup;
  if (!s) return [];
  return section(
    "Per-pod setup",
    table(
      ["what", "pods", "median ms", "min ms", "max ms"],
      (
        [
          ["iptables-restore of the istio rules (istio-cni's way)", s.iptables],
          ["waggle attachPod (what waggle's ADD does)", s.waggleAttach],
          ["waggle's whole CNI ADD (plugin process)", s.waggleCniAdd],
        ] as [string, Spread][]
      ).map(([what, sp]) => [
        what,
        String(sp.n),
        fixed(sp.median, 2),
        fixed(sp.min, 2),
        fixed(sp.max, 2),
      ]),
    ),
  );
}

/** What one pod adds to the shared maps; none when it was not measured. */
function mapMemorySection(results: BenchResults): string[] {
  const m = results.mapMemory;
  if (!m) return [];
  return section(
    "Map memory per pod",
    `One pod adds ${m.memlockBytesPerPod} bytes to the shared maps (kernel memlock accounting, before/after attaching one pod); the shared maps hold ${(m.sharedMemlockBytes / 1024 / 1024).toFixed(1)} MiB whatever the pod count (mostly preallocated).`,
    table(
      [
        "map",
        "type",
        "key/value bytes",
        "max entries",
        "memlock bytes",
        "entries per pod",
        "bytes per pod",
      ],
      m.maps.map((x) => [
        x.name,
        x.type,
        `${x.keySize}/${x.valueSize}`,
        String(x.maxEntries),
        String(x.memlockBytes),
        x.entriesPerPod === null ? "per socket" : String(x.entriesPerPod),
        String(x.memlockBytesPerPod),
      ]),
    ),
  );
}

/** The BPF run time of waggle's programs per request; none when it was not measured. */
function bpfStatsSection(results: BenchResults): string[] {
  const b = results.bpfStats;
  if (!b) return [];
  return section(
    "waggle's programs: run time",
    `kernel.bpf_stats_enabled for one extra ${b.workload} run in the waggle mode (${b.requests} requests): ${fixed(b.nsPerRequest, 0)} ns of BPF per request in total.`,
    table(
      ["program", "runs", "avg ns/run", "runs/request", "ns/request"],
      b.programs
        .filter((p) => p.runs > 0)
        .map((p) => [
          p.name,
          String(p.runs),
          fixed(p.avgNs, 0),
          fixed(p.runsPerRequest, 2),
          fixed(p.nsPerRequest, 0),
        ]),
    ),
  );
}

function plotsSection(charts: Chart[], imageExt: "png" | "svg"): string[] {
  return section("Plots", ...charts.map((c) => `![${c.title}](plots/${c.name}.${imageExt})`));
}

/**
 * The report, section by section. imageExt: "png" when PNGs were made next to the SVGs, else
 * "svg".
 */
export function renderReport(results: BenchResults, imageExt: "png" | "svg"): RenderedReport {
  const cells = summarizeCells(results.runs);
  const nodeCost = results.nodeCost;
  const targets = [
    // a node-cost run alone (--setup) has no traffic targets to judge
    ...(results.runs.length > 0 || !nodeCost
      ? evaluateTargets(
          results.runs,
          results.setup
            ? {
                iptablesRestoreMs: results.setup.iptablesRestoreMs,
                waggleAttachMs: results.setup.waggleAttachMs,
              }
            : null,
          cells,
        )
      : []),
    ...(nodeCost ? nodeCostTargets(nodeCost, results.setup?.waggleAttachMs ?? []) : []),
  ];
  const charts = [...renderCharts(results, cells), ...(nodeCost ? [nodeScaleChart(nodeCost)] : [])];
  const md = [
    ...headerSection(results),
    ...targetsSection(targets),
    ...bypassSection(results),
    ...resultsSection(results, cells),
    ...cpuByRoleSection(results, cells),
    ...machineStabilitySection(results, cells),
    ...portsSection(results),
    ...floodSection(results),
    ...setupSection(results),
    ...mapMemorySection(results),
    ...nodeCostSection(nodeCost),
    ...bpfStatsSection(results),
    ...plotsSection(charts, imageExt),
  ];
  return { markdown: `${md.join("\n")}\n`, charts, cells, targets };
}
