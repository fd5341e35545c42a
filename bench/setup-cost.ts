// Per-pod setup cost and per-pod map memory.
//
// Setup: on fresh pods wired by the CNI chain, time what each mode adds per pod, alternating
// which goes first: iptables = istio-cni's iptables-restore of the istio rules into the pod
// netns (a process, as istio-cni runs it); waggle = attachPod, what waggle's CNI ADD does once
// it runs (policy into the shared maps, cgroup links, TC ingress). waggle's whole CNI ADD as a
// process (Node start included) is reported next to it, from the bench pods' ADDs.
//
// Map memory: the entries one pod adds to each shared map and the kernel's own memory
// accounting of the maps (bpftool's bytes_memlock, from map_mem_usage since Linux 6.4: for
// maps without preallocation it grows with each element), read before and after attaching
// one pod. Preallocated maps (the LRU redirect map) cost the same whatever the pod count.

import { readdirSync } from "node:fs";
import { BpfMap } from "ebpf-napi";
import { paths } from "../datapath";
import { defaultRedirectSettings } from "../mesh/redirect-settings";
import { runChecked } from "../test/support/command";
import { uniqueName } from "../test/support/names";
import { applyIstioRules, type BenchCluster, type BenchPod, removeIstioRules } from "./cluster";
import { type Spread, spread } from "./stats";

export interface SetupCost {
  samples: number;
  iptablesRestoreMs: number[];
  waggleAttachMs: number[];
  waggleDetachMs: number[];
  /** waggle's whole CNI ADD (plugin process) of the bench's meshed pods. */
  waggleCniAddMs: number[];
  iptables: Spread;
  waggleAttach: Spread;
  waggleCniAdd: Spread;
}

export interface MapCost {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** bytes_memlock before the pod was attached. */
  memlockBytes: number;
  /** Entries one pod adds (null: the map type cannot be iterated, e.g. socket storage). */
  entriesPerPod: number | null;
  /** Growth of bytes_memlock from attaching one pod. */
  memlockBytesPerPod: number;
}

export interface MapMemory {
  maps: MapCost[];
  memlockBytesPerPod: number;
  /** Every shared map's memlock together before the pod was attached. */
  sharedMemlockBytes: number;
}

export interface BpftoolMap {
  name: string;
  type: string;
  bytes_key: number;
  bytes_value: number;
  max_entries: number;
  bytes_memlock: number;
}

function mapNames(root: string): string[] {
  return readdirSync(paths.maps(root)).sort();
}

/** Map types whose keys cannot be listed (bpf_map_get_next_key answers ENOTSUPP). */
const NOT_ITERABLE = new Set(["sk_storage", "inode_storage", "task_storage", "cgrp_storage"]);

export interface MapState {
  info: BpftoolMap;
  entries: number | null;
}

export async function readMaps(root: string): Promise<Map<string, MapState>> {
  const out = new Map<string, MapState>();
  for (const name of mapNames(root)) {
    const path = paths.map(root, name);
    const info = JSON.parse(
      await runChecked("bpftool", ["-j", "map", "show", "pinned", path]),
    ) as BpftoolMap;
    let entries: number | null = null;
    if (!NOT_ITERABLE.has(info.type)) {
      const map = BpfMap.openPinned(path);
      try {
        entries = 0;
        for (const _ of map.keys()) entries++;
      } finally {
        map.close();
      }
    }
    out.set(name, { info, entries });
  }
  return out;
}

function attachRequest(pod: BenchPod, containerId: string) {
  return {
    containerId,
    netnsPath: pod.sandbox.netnsPath,
    ifname: "eth0",
    cgroupPath: pod.sandbox.cgroupDir,
    podIPs: [pod.ip],
    settings: defaultRedirectSettings(),
  };
}

/**
 * attachPod then detachPod in the cluster's attach worker (no process start: the datapath's
 * own work, in a process that forks nothing; attach-worker.ts says why) on a pod wired by the
 * chain unmeshed, under a fresh container id; `between` runs while attached.
 */
export async function timeAttach(
  cluster: BenchCluster,
  pod: BenchPod,
  between: () => Promise<void> = async () => {},
): Promise<{ attachMs: number; detachMs: number }> {
  const opts = cluster.bpf.opts;
  const timer = cluster.attachTimer();
  const containerId = uniqueName("k");
  const attachMs = await timer.attach(attachRequest(pod, containerId), opts);
  try {
    await between();
  } catch (e) {
    await timer.detach(containerId, opts);
    throw e;
  }
  const detachMs = await timer.detach(containerId, opts);
  return { attachMs, detachMs };
}

/** Times per-pod setup of both modes on `samples` fresh pods; measures map memory on the first. */
export async function measureSetup(
  cluster: BenchCluster,
  samples: number,
  waggleCniAddMs: number[],
  log: (line: string) => void,
): Promise<{ setup: SetupCost; mapMemory: MapMemory | null }> {
  const opts = cluster.bpf.opts;
  const iptablesMs: number[] = [];
  const attachMs: number[] = [];
  const detachMs: number[] = [];
  let mapMemory: MapMemory | null = null;
  for (let k = 0; k < samples; k++) {
    const pod = await cluster.addPod({});
    try {
      const order = k % 2 === 0 ? ["iptables", "waggle"] : ["waggle", "iptables"];
      for (const mode of order) {
        if (mode === "iptables") {
          iptablesMs.push(await applyIstioRules(pod.sandbox, pod.ip));
          await removeIstioRules(pod.sandbox);
          continue;
        }
        const before = k === 0 ? await readMaps(opts.bpfRoot) : undefined;
        const t = await timeAttach(cluster, pod, async () => {
          if (before) mapMemory = priceMaps(before, await readMaps(opts.bpfRoot));
        });
        attachMs.push(t.attachMs);
        detachMs.push(t.detachMs);
      }
    } finally {
      await cluster.removePod(pod);
    }
  }
  log(`setup: ${samples} pods timed`);
  return {
    setup: {
      samples,
      iptablesRestoreMs: iptablesMs,
      waggleAttachMs: attachMs,
      waggleDetachMs: detachMs,
      waggleCniAddMs,
      iptables: spread(iptablesMs),
      waggleAttach: spread(attachMs),
      waggleCniAdd: spread(waggleCniAddMs),
    },
    mapMemory,
  };
}

/** What one pod added to each map, from readings before and after attaching it. */
export function priceMaps(
  before: ReadonlyMap<string, MapState>,
  after: ReadonlyMap<string, MapState>,
): MapMemory {
  const maps: MapCost[] = [];
  for (const [name, a] of after) {
    const b = before.get(name);
    if (!b) throw new Error(`map ${name} appeared while attaching a pod`);
    maps.push({
      name,
      type: a.info.type,
      keySize: a.info.bytes_key,
      valueSize: a.info.bytes_value,
      maxEntries: a.info.max_entries,
      memlockBytes: b.info.bytes_memlock,
      entriesPerPod: a.entries === null || b.entries === null ? null : a.entries - b.entries,
      memlockBytesPerPod: a.info.bytes_memlock - b.info.bytes_memlock,
    });
  }
  return {
    maps,
    memlockBytesPerPod: maps.reduce((s, m) => s + m.memlockBytesPerPod, 0),
    sharedMemlockBytes: maps.reduce((s, m) => s + m.memlockBytes, 0),
  };
}
