// The installer's datapath port bound to cni/datapath (loaded only when install runs).

import { NetnsWatcher, netnsCookie } from "ebpf-napi";
import {
  attachedContainerIds,
  attachPod,
  listPods,
  refreshPod,
  removeDatapath,
  upgradePrograms,
} from "../cni/datapath";
import { requireBpffs } from "../cni/datapath/pins";
import { paths } from "../cni/datapath/programs";
import { readRecord } from "../cni/datapath/record";
import type { InstallDatapath } from "./datapath-port";
import type { PodFollowPort } from "./pod-follower";

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

export const followPort: PodFollowPort = {
  podsDir: (bpfRoot) => paths.pods(bpfRoot),
  podIds: (bpfRoot) => attachedContainerIds({ bpfRoot }),
  podNetns: (bpfRoot, containerId) => readRecord(bpfRoot, containerId)?.netnsPath ?? null,
  refreshPod: (bpfRoot, containerId) => refreshPod(containerId, { bpfRoot }),
  watcher: (onChange) => new NetnsWatcher(onChange),
};
