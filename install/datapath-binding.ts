// The installer's datapath port bound to cni/datapath (loaded only when install runs).

import { netnsCookie } from "ebpf-napi";
import { attachPod, listPods, removeDatapath, upgradePrograms } from "../datapath";
import { requireBpffs } from "../datapath/pins";
import type { InstallDatapath } from "./datapath-port";

export const datapath: InstallDatapath = {
  checkBpfRoot: requireBpffs,

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

  removeAll: async (bpfRoot) => removeDatapath({ bpfRoot }),
};
