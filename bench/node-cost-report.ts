// The node-cost part of the report (issue 16): the plugin's ADD/DEL next to the machine's
// floor, ADD and DEL against meshed pods attached (and its plot), kernel memory per pod, the
// shared maps' sizing, and the burst.

import { table } from "./markdown";
import {
  busyFraction,
  flatness,
  kernelBytesPerPod,
  msOf,
  type NodeCostResults,
  type ProcessCost,
  peakRssMiB,
  percentiles,
  slope,
} from "./node-cost";
import { lineChartSvg } from "./svg";

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");
const kib = (bytes: number) => f(bytes / 1024, 1);

/** A row of latency percentiles, median CPU and peak RSS of a set of processes. */
function processRow(what: string, xs: readonly ProcessCost[]): string[] {
  const p = percentiles(msOf(xs));
  const cpu = percentiles(xs.flatMap((x) => (x.cpuS === null ? [] : [x.cpuS * 1000])));
  const rss = xs.flatMap((x) => (x.rssKiB === null ? [] : [x.rssKiB]));
  return [
    what,
    String(p.n),
    f(p.p50),
    f(p.p90),
    f(p.p99),
    f(cpu.p50),
    rss.length ? f(Math.max(...rss) / 1024) : "–",
  ];
}

const PROCESS_HEAD = ["process", "n", "p50 ms", "p90 ms", "p99 ms", "CPU ms p50", "peak RSS MiB"];

/** The section's markdown; none when the node cost was not measured. */
export function nodeCostSection(r: NodeCostResults | undefined): string[] {
  if (!r) return [];
  const md = [
    "## The plugin's cost on the node (issue 16)",
    "",
    `waggle (${r.binary}, ${r.version || "no VERSION answer"}) run by the bench's CNI chain (ptp + host-local, portmap, waggle) inside the node netns, each process under GNU time (wait4 rusage: CPU and peak RSS). Wall times are the runtime's, from spawn to exit (nsenter, the chain's sh wrappers and GNU time included: the floor rows run the same way).`,
    "",
    table(PROCESS_HEAD, [
      processRow("`node -e 0` (floor)", r.floor.nodeE0),
      processRow("waggle VERSION (floor)", r.floor.waggleVersion),
      ...(r.firstAdd
        ? [processRow("waggle ADD, the node's first meshed pod (loads the programs)", [r.firstAdd])]
        : []),
      processRow("waggle ADD, meshed pod", r.meshedAdd),
      processRow("waggle DEL, meshed pod", r.meshedDel),
      processRow("waggle ADD, unmeshed pod", r.unmeshedAdd),
    ]),
    "",
    `Peak RSS of the plugin over the samples: ${f(peakRssMiB(r))} MiB.${r.firstAdd ? " The first meshed pod's ADD loads and pins the shared programs (libbpf reads the kernel's BTF for the bypass objects); its pod stays attached while every sample runs, as on a node that runs meshed pods, so the samples' ADDs and DELs find the datapath pinned and the kernel's cgroup-BPF switches on." : ""}`,
    "",
    "### ADD and DEL against meshed pods attached",
    "",
    ...(r.firstAdd
      ? ["Pods attached are counted besides the node's first (resident) meshed pod.", ""]
      : []),
    table(
      [
        "meshed pods attached",
        "probes",
        "ADD p50 ms",
        "ADD p90 ms",
        "DEL p50 ms",
        "DEL p90 ms",
        "attachPod p50 ms",
        "detachPod p50 ms",
      ],
      r.checkpoints.map((c) => {
        const a = percentiles(msOf(c.add));
        const d = percentiles(msOf(c.del));
        const inProcess = (xs: number[] | undefined) => f(percentiles(xs ?? []).p50, 2);
        return [
          String(c.pods),
          String(c.add.length),
          f(a.p50),
          f(a.p90),
          f(d.p50),
          f(d.p90),
          inProcess(c.attachMs),
          inProcess(c.detachMs),
        ];
      }),
    ),
    "",
    "attachPod/detachPod: the datapath's work alone, timed in the bench's attach worker (a process of its own that forks nothing, so no copy-on-write faults from the bench's commands) on a pod wired unmeshed (no process start, no Node start-up): where a cost that grows with the pods would show first.",
    "",
    `p50 at the most pods over p50 at the first checkpoint: ADD ${f(flatness(r, "add"), 2)}, DEL ${f(flatness(r, "del"), 2)}. Least-squares slope of all ${r.scaleAdds.length} scale ADDs against pods attached: ${f(slope(r.scaleAdds.map((a) => ({ x: a.pods, y: a.ms }))) * 100, 2)} ms per 100 pods.`,
    "",
  ];
  const km = r.kernelMemory;
  if (km) {
    md.push(
      "### Kernel memory per meshed pod",
      "",
      `Read around detaching all ${km.pods} scale pods in process (then waiting 2 s for RCU): live slab objects (/proc/slabinfo active objects x size) and per-CPU memory (/proc/meminfo Percpu) freed, per pod; and the kernel's own accounting (bytes_memlock) of the shared maps' growth, the pod's record map, the shared programs divided among the pods. Other work on the machine moves the slab reading: what it freed on its own over an equal wait just before (${kib(km.driftBytes)} KiB in all) is taken off; the accounting is exact.`,
      "",
      table(
        ["what", "per pod"],
        [
          ["shared maps' growth (bytes_memlock)", `${kib(km.sharedMapsBytesPerPod)} KiB`],
          ["the pod's record map (bytes_memlock)", `${kib(km.recordMapBytes)} KiB`],
          ["programs' share (bytes_memlock / pods)", `${kib(km.programBytesPerPod)} KiB`],
          ["bpf links pinned", String(km.linksPerPod)],
          ["slab objects freed by the detach", `${kib(km.slabBytesPerPod)} KiB`],
          ["per-CPU memory freed by the detach", `${kib(km.percpuBytesPerPod)} KiB`],
          [
            "**kernel memory per pod** (the larger reading)",
            `**${kib(kernelBytesPerPod(km))} KiB**`,
          ],
        ],
      ),
      "",
      `The shared maps with ${km.pods} pods attached (max_entries is the limit; MAX_PODS in bpf/include/waggle/maps.h):`,
      "",
      table(
        ["map", "type", "max entries", "memlock KiB"],
        km.sharedMaps.map((m) => [m.name, m.type, String(m.maxEntries), kib(m.memlockBytes)]),
      ),
      "",
    );
  }
  const b = r.burst;
  if (b) {
    const row = (what: string, phase: typeof b.add) => {
      const p = percentiles(msOf(phase.waggle));
      const cpu = phase.waggle.reduce((s, x) => s + (x.cpuS ?? 0), 0);
      return [
        what,
        `${phase.size - phase.failures.length}/${phase.size}`,
        f(p.p50, 0),
        f(p.p99, 0),
        f(phase.wallMs, 0),
        f(cpu, 2),
        f(phase.chainCpuS, 2),
        `${f(busyFraction(phase, b.cpus) * 100, 0)}%`,
      ];
    };
    md.push(
      "### Burst",
      "",
      `${b.add.size} sandboxes made first, then their chain ADDs started at once, then their DELs at once (as kubelet does in a rollout). Latency is waggle's process; CPU is waggle's processes' own (rusage) and the whole chain's (every child of the bench); "CPUs busy" is the chain's CPU over wall time x ${b.cpus} CPUs: near 100% the processes waited for a CPU, not for each other.`,
      "",
      table(
        [
          "phase",
          "succeeded",
          "waggle p50 ms",
          "waggle p99 ms",
          "wall ms",
          "waggle CPU s",
          "chain CPU s",
          "CPUs busy",
        ],
        [row("ADD", b.add), row("DEL", b.del)],
      ),
      "",
      ...[...b.add.failures, ...b.del.failures].slice(0, 5).map((x) => `- failed: ${x}`),
    );
  }
  return md;
}

/** ADD latency against meshed pods attached: every scale ADD, and p50 ADD/DEL at checkpoints. */
export function nodeScaleChart(r: NodeCostResults): { name: string; title: string; svg: string } {
  const title = "waggle ADD against meshed pods attached";
  const p50 = (which: "add" | "del") =>
    r.checkpoints.map((c) => ({ x: c.pods, y: percentiles(msOf(c[which])).p50 }));
  return {
    name: "node-scale",
    title,
    svg: lineChartSvg(
      [
        { name: "every ADD", points: r.scaleAdds.map((a) => ({ x: a.pods, y: a.ms })) },
        { name: "probe ADD p50", points: p50("add"), line: true },
        { name: "probe DEL p50", points: p50("del"), line: true },
      ],
      {
        title,
        xLabel: "meshed pods attached",
        yLabel: "milliseconds (whole plugin process)",
        note: "flat is the target: ADD and DEL cost the same with 1 pod or all of them",
      },
    ),
  };
}
