// The node's cost of waggle's plugin (issue 16), measured: on a node of its own (no traffic
// pods), through the bench's CNI chain (ptp + host-local, portmap, waggle), with every waggle
// process run under GNU time for its peak RSS and CPU (BenchCluster's rusageDir):
//   floor    `node -e 0` and the plugin's VERSION, run the same way the chain runs waggle
//   samples  ADD and DEL of a meshed pod, ADD of an unmeshed pod, each alone on the node
//   scale    meshed pods attached one by one; at each checkpoint probe pods ADDed and DELed
//   memory   with every scale pod attached: the kernel memory their detach frees (slab
//            objects, per-CPU), the maps' own accounting, links and programs
//   burst    N sandboxes made, then N chain ADDs started at once, then N DELs at once
//   setup    the bench's per-pod setup (in-process attach vs iptables-restore, map memory)
// Everything is removed at the end, also on failure (the cluster tracks its pods).

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { ALL_PROGRAMS, detachPod, paths } from "../datapath";
import { MESHED_ANNOTATIONS } from "../test/support/cni-node";
import { runChecked } from "../test/support/command";
import { track } from "../test/support/resources";
import { BenchCluster, type BenchPod } from "./cluster";
import {
  type BurstPhase,
  type Checkpoint,
  childrenCpuS,
  type KernelMemory,
  meminfoBytes,
  type NodeCostPlan,
  type NodeCostResults,
  type ProcessCost,
  parseSlabBytes,
} from "./node-cost";
import { type MapMemory, measureSetup, readMaps, type SetupCost, timeAttach } from "./setup-cost";

export interface NodeCostRun {
  nodeCost: NodeCostResults;
  setup: SetupCost | null;
  mapMemory: MapMemory | null;
}

/** waggle's process of a pod's last ADD or DEL (the chain must have run waggle). */
function waggleOf(
  cluster: BenchCluster,
  command: string,
  pod: BenchPod,
  ms: Record<string, number>,
) {
  const t = ms.waggle;
  if (t === undefined) throw new Error(`waggle's ${command} did not run for ${pod.sandbox.name}`);
  return cluster.waggleCost(command, pod.rt.containerId, t);
}

/** ADD then DEL of one fresh pod through the chain. */
async function addDel(
  cluster: BenchCluster,
  annotations: Record<string, string>,
): Promise<{ add: ProcessCost; del: ProcessCost }> {
  const pod = await cluster.addPod(annotations);
  const add = waggleOf(cluster, "ADD", pod, pod.addMs);
  const del = waggleOf(cluster, "DEL", pod, await cluster.removePod(pod));
  return { add, del };
}

function kernelReading(): { slab: number; percpu: number } {
  return {
    slab: parseSlabBytes(readFileSync("/proc/slabinfo", "utf8")),
    percpu: meminfoBytes(readFileSync("/proc/meminfo", "utf8"), "Percpu"),
  };
}

async function memlock(kind: "map" | "prog", pin: string): Promise<number> {
  const info = JSON.parse(await runChecked("bpftool", ["-j", kind, "show", "pinned", pin])) as {
    bytes_memlock: number;
  };
  return info.bytes_memlock;
}

/** Kernel memory of the attached pods, read around detaching all of them in this process. */
async function measureKernelMemory(cluster: BenchCluster, pods: BenchPod[]): Promise<KernelMemory> {
  const opts = cluster.bpf.opts;
  const root = opts.bpfRoot;
  const first = pods[0].rt.containerId;
  const recordMapBytes = await memlock("map", paths.podRecord(root, first));
  const linksPerPod = readdirSync(paths.pod(root, first)).filter((n) => n !== "record").length;
  let programBytes = 0;
  for (const p of ALL_PROGRAMS) programBytes += await memlock("prog", paths.prog(root, p));
  const mapsAttached = await readMaps(root);
  // The machine's own drift over the same wait, read first, is taken off the detach's reading.
  const idle = kernelReading();
  await sleep(SETTLE_MS);
  const before = kernelReading();
  for (const pod of pods) detachPod(pod.rt.containerId, opts);
  await sleep(SETTLE_MS); // RCU frees links and map elements later
  const after = kernelReading();
  const freed = (k: "slab" | "percpu") => before[k] - after[k] - (idle[k] - before[k]);
  const mapsDetached = await readMaps(root);
  let sharedGrowth = 0;
  for (const [name, m] of mapsAttached)
    sharedGrowth += m.info.bytes_memlock - (mapsDetached.get(name)?.info.bytes_memlock ?? 0);
  const n = pods.length;
  return {
    pods: n,
    sharedMapsBytesPerPod: sharedGrowth / n,
    recordMapBytes,
    linksPerPod,
    programBytesPerPod: programBytes / n,
    slabBytesPerPod: freed("slab") / n,
    percpuBytesPerPod: freed("percpu") / n,
    driftBytes: idle.slab - before.slab + idle.percpu - before.percpu,
    sharedMaps: [...mapsAttached].map(([name, m]) => ({
      name,
      type: m.info.type,
      maxEntries: m.info.max_entries,
      memlockBytes: m.info.bytes_memlock,
    })),
  };
}

const SETTLE_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const selfCpuS = () => childrenCpuS(readFileSync("/proc/self/stat", "utf8"));

/** Runs `work` on every item at once; times the whole, counts failures, sums children's CPU. */
async function burstPhase<T, R>(
  items: T[],
  work: (item: T) => Promise<R>,
  cost: (item: T, r: R) => ProcessCost,
): Promise<BurstPhase & { done: R[] }> {
  const cpu0 = selfCpuS();
  const start = process.hrtime.bigint();
  const settled = await Promise.allSettled(items.map(work));
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  const chainCpuS = selfCpuS() - cpu0;
  const failures: string[] = [];
  const waggle: ProcessCost[] = [];
  const done: R[] = [];
  settled.forEach((s, i) => {
    if (s.status === "rejected") failures.push(String((s.reason as Error).message ?? s.reason));
    else {
      done.push(s.value);
      waggle.push(cost(items[i], s.value));
    }
  });
  return { size: items.length, failures, wallMs, waggle, chainCpuS, done };
}

export async function measureNodeCost(
  plan: NodeCostPlan,
  setupSamples: number,
  log: (line: string) => void,
): Promise<NodeCostRun> {
  const dir = mkdtempSync(join(tmpdir(), "waggle-node-cost-"));
  const tracked = track(`node-cost dir ${dir}`, () =>
    rmSync(dir, { recursive: true, force: true }),
  );
  const cluster = await BenchCluster.create({
    modes: [],
    tls: false,
    placement: {},
    bodyBytes: 1,
    log,
    rusageDir: dir,
  });
  try {
    const floor: NodeCostResults["floor"] = { nodeE0: [], waggleVersion: [] };
    let version = "";
    for (let k = 0; k < plan.samples; k++) {
      floor.nodeE0.push(await cluster.runWrapped("node-e0", "FLOOR", `f${k}`));
      const v = await cluster.runWrapped("waggle", "VERSION", `v${k}`);
      version = v.stdout.trim();
      floor.waggleVersion.push(v);
    }
    log(`node cost: floor measured (${plan.samples} x node -e 0 and waggle VERSION)`);
    // The node's first meshed pod: its ADD loads the shared programs; it stays attached
    const resident = await cluster.addPod(MESHED_ANNOTATIONS);
    const firstAdd = waggleOf(cluster, "ADD", resident, resident.addMs);
    const meshedAdd: ProcessCost[] = [];
    const meshedDel: ProcessCost[] = [];
    const unmeshedAdd: ProcessCost[] = [];
    for (let k = 0; k < plan.samples; k++) {
      const m = await addDel(cluster, MESHED_ANNOTATIONS);
      meshedAdd.push(m.add);
      meshedDel.push(m.del);
      unmeshedAdd.push((await addDel(cluster, {})).add);
    }
    log(`node cost: ${plan.samples} meshed ADD/DEL and unmeshed ADD timed`);

    const scaleAdds: NodeCostResults["scaleAdds"] = [];
    const checkpoints: Checkpoint[] = [];
    const attached: BenchPod[] = [];
    for (let n = 1; n <= plan.scalePods; n++) {
      const pod = await cluster.addPod(MESHED_ANNOTATIONS);
      attached.push(pod);
      scaleAdds.push({ pods: n - 1, ms: waggleOf(cluster, "ADD", pod, pod.addMs).ms });
      if (!plan.checkpoints.includes(n)) continue;
      const cp: Checkpoint = { pods: n, add: [], del: [] };
      for (let j = 0; j < plan.probes; j++) {
        const { add, del } = await addDel(cluster, MESHED_ANNOTATIONS);
        cp.add.push(add);
        cp.del.push(del);
      }
      // the datapath's own work at this scale, without a process start: attach/detach in
      // process on one pod wired unmeshed
      const host = await cluster.addPod({});
      try {
        cp.attachMs = [];
        cp.detachMs = [];
        for (let j = 0; j < plan.probes; j++) {
          const t = await timeAttach(cluster, host);
          cp.attachMs.push(t.attachMs);
          cp.detachMs.push(t.detachMs);
        }
      } finally {
        await cluster.removePod(host);
      }
      checkpoints.push(cp);
      log(`node cost: ${n} meshed pods attached, ${plan.probes} probe ADD/DEL timed`);
    }
    const kernelMemory = attached.length > 0 ? await measureKernelMemory(cluster, attached) : null;
    // the scale pods go 4 at a time (not timed)
    const leaving = attached.splice(0);
    while (leaving.length > 0)
      await Promise.all(leaving.splice(0, 4).map((pod) => cluster.removePod(pod)));

    let burst: NodeCostResults["burst"] = null;
    if (plan.burst > 0) {
      const prepared = [];
      for (let i = 0; i < plan.burst; i++)
        prepared.push(await cluster.preparePod(MESHED_ANNOTATIONS));
      const add = await burstPhase(
        prepared,
        (p) => cluster.wirePod(p),
        (_p, pod) => waggleOf(cluster, "ADD", pod, pod.addMs),
      );
      const del = await burstPhase(
        add.done,
        (pod) => cluster.removePod(pod),
        (pod, ms) => waggleOf(cluster, "DEL", pod, ms),
      );
      const { done: _a, ...addPhase } = add;
      const { done: _d, ...delPhase } = del;
      burst = { add: addPhase, del: delPhase, cpus: cpus().length };
      log(
        `node cost: burst of ${plan.burst}: ADDs ${add.failures.length} failed in ${Math.round(add.wallMs)} ms, DELs ${del.failures.length} failed in ${Math.round(del.wallMs)} ms`,
      );
    }
    let setup: SetupCost | null = null;
    let mapMemory: MapMemory | null = null;
    if (setupSamples > 0)
      ({ setup, mapMemory } = await measureSetup(
        cluster,
        setupSamples,
        meshedAdd.map((a) => a.ms),
        log,
      ));
    return {
      nodeCost: {
        plan,
        binary: `${cluster.cni.plugins.waggle.kind}: ${cluster.cni.plugins.waggle.path}`,
        version,
        floor,
        meshedAdd,
        meshedDel,
        unmeshedAdd,
        firstAdd,
        scaleAdds,
        checkpoints,
        kernelMemory,
        burst,
      },
      setup,
      mapMemory,
    };
  } finally {
    await cluster.destroy();
    tracked.release();
  }
}
