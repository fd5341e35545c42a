// The installer's datapath port bound to cni/datapath (loaded only when install runs).

import { existsSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { netnsCookie } from "ebpf-napi";
import {
  attachedContainerIds,
  attachPod,
  detachPod,
  listPods,
  upgradePrograms,
} from "../cni/datapath";
import { paths } from "../cni/datapath/programs";
import type { InstallDatapath } from "./datapath-port";

export const datapath: InstallDatapath = {
  loadPrograms: async (bpfRoot) => upgradePrograms({ bpfRoot }),

  listPods: async (bpfRoot) =>
    listPods({ bpfRoot }).map((p) => ({
      containerId: p.containerId,
      netnsCookie: p.netnsCookie,
      pod: p.pod,
      counters: p.counters,
    })),

  attachPod: async (bpfRoot, req) => {
    attachPod(req, { bpfRoot });
  },

  netnsCookie: (path) => netnsCookie(path).toString(),

  removeAll: async (bpfRoot) => {
    const ids = attachedContainerIds({ bpfRoot });
    const failures: string[] = [];
    for (const id of ids) {
      try {
        detachPod(id, { bpfRoot });
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    if (failures.length > 0) {
      throw new Error(`could not detach every pod (shared pins kept): ${failures.join("; ")}`);
    }
    // Pods gone, the shared programs and maps can go; then the (now empty) directories.
    rmSync(paths.datapath(bpfRoot), { recursive: true, force: true });
    for (const dir of [paths.pods(bpfRoot), bpfRoot]) {
      if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
    }
    return { pods: ids.length };
  },
};
