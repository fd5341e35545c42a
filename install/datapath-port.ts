// What the installer needs from the datapath (cni/datapath): the shared programs, the meshed
// pods' counters, and removing everything on uninstall. The installer depends on this
// interface only (so its loop is testable without BPF); datapath-binding.ts binds it.

import type { PodCounters } from "./metrics";

export interface ProgramsReport {
  /** Pods whose links and filters were looked at. */
  pods: number;
  /** Cgroup links whose program was swapped (bpf_link_update, atomic per hook). */
  linksUpdated: number;
  /** TC filters replaced in place. */
  tcUpdated: number;
  /** Pods whose filter could not be replaced (netns gone), by container id. */
  skipped: string[];
}

export interface InstallDatapath {
  /**
   * Loads and pins the shared programs under `bpfRoot`; when an earlier build's are pinned,
   * swaps this build's programs into every existing pod's links and filters, so running
   * pods keep their connections.
   */
  loadPrograms(bpfRoot: string): Promise<ProgramsReport>;
  /** The meshed pods on this node with their counters. */
  listPods(bpfRoot: string): Promise<PodCounters[]>;
  /** Detaches every pod (links, TC filters, map entries) and removes all pins. */
  removeAll(bpfRoot: string): Promise<{ pods: number }>;
}
