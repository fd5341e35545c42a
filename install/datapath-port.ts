// What the installer needs from the datapath (cni/datapath): the shared programs, the
// attached pods, attaching an early pod, and removing everything on uninstall. The installer
// depends on this interface only (so its loop is testable without BPF); datapath-binding.ts
// binds it.

import type { AttachRequest, PodRecord } from "../datapath";

export interface ProgramsReport {
  /** Pods whose links were looked at. */
  pods: number;
  /** Cgroup and netns links whose program was swapped (bpf_link_update, atomic per hook). */
  linksUpdated: number;
  /** Pods whose links could not be updated (cgroup or netns gone), by container id. */
  skipped: string[];
}

/** An attached pod as the datapath records it (the fields the installer reads). */
export type AttachedPod = Pick<PodRecord, "containerId" | "netnsCookie" | "pod" | "counters">;

export interface InstallDatapath {
  /** Throws, saying what to do, unless `bpfRoot` is (or would be created) on a bpffs. */
  checkBpfRoot(bpfRoot: string): void;
  /**
   * Loads and pins the shared programs under `bpfRoot`; when an earlier build's are pinned,
   * swaps this build's programs into every existing pod's links and filters, so running
   * pods keep their connections.
   */
  loadPrograms(bpfRoot: string): Promise<ProgramsReport>;
  /** The attached pods on this node. */
  listPods(bpfRoot: string): Promise<AttachedPod[]>;
  /** Attaches one pod (as the plugin's ADD does); rolls back and throws on failure. */
  attachPod(bpfRoot: string, req: AttachRequest): Promise<void>;
  /** The cookie of a network namespace (decimal), to match records. */
  netnsCookie(netnsPath: string): string;
  /** Detaches every pod (links, map entries) and removes all pins. */
  removeAll(bpfRoot: string): Promise<{ pods: number }>;
}
