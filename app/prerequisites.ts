// What a host must offer waggle, each item with the kernel that brought it, what waggle uses it
// for, and what to do when it is missing. `waggle doctor` checks every item; the kernel floor is
// the newest `since` in these lists, so it can never disagree with them.
import { compareDotted } from "../base/dotted-version";

export type {
  AttachTypeNeed,
  HelperNeed,
  KernelFeature,
  MapTypeNeed,
  ProgTypeNeed,
  VersionOnlyFeature,
} from "../datapath";

import {
  type AttachTypeNeed,
  DATAPATH_REQUIREMENTS,
  type HelperNeed,
  type MapTypeNeed,
  type ProgTypeNeed,
  type VersionOnlyFeature,
} from "../datapath";

// Every kernel feature waggle needs is the datapath's (datapath/requirements.ts keeps
// them next to the programs); doctor checks exactly those.
export const progTypeNeeds: readonly ProgTypeNeed[] = DATAPATH_REQUIREMENTS.progTypes;
export const attachTypeNeeds: readonly AttachTypeNeed[] = DATAPATH_REQUIREMENTS.attachTypes;
export const mapTypeNeeds: readonly MapTypeNeed[] = DATAPATH_REQUIREMENTS.mapTypes;
/**
 * Helpers each program type calls, beyond the map helpers every program type has had since
 * they exist (map_lookup_elem, map_update_elem, map_delete_elem).
 */
export const helperNeeds: readonly HelperNeed[] = DATAPATH_REQUIREMENTS.helpers;
export const versionOnlyFeatures: readonly VersionOnlyFeature[] = DATAPATH_REQUIREMENTS.versionOnly;

/** Every feature with its kernel minimum, named for messages. */
export function allKernelFeatures(): { name: string; since: string }[] {
  return [
    ...progTypeNeeds.map((n) => ({ name: `${n.progType} programs`, since: n.since })),
    ...attachTypeNeeds.map((n) => ({ name: `${n.attachType} attach`, since: n.since })),
    ...mapTypeNeeds.map((n) => ({ name: `${n.mapType} maps`, since: n.since })),
    ...helperNeeds.map((n) => ({ name: `bpf_${n.helper} in ${n.progType}`, since: n.since })),
    ...versionOnlyFeatures.map((n) => ({ name: n.feature, since: n.since })),
  ];
}

/** The oldest kernel with every feature, and the features that set it. */
export function kernelFloor(): { version: string; setBy: string[] } {
  const features = allKernelFeatures();
  let version = "0";
  for (const f of features) if (compareDotted(f.since, version) > 0) version = f.since;
  const setBy = [...new Set(features.filter((f) => f.since === version).map((f) => f.name))];
  return { version, setBy };
}

/** Filesystem magic of bpffs (statfs f_type). */
export { BPF_FS_MAGIC } from "../datapath/pins";

/** Default bpffs directory waggle pins under. */
export const DEFAULT_BPF_ROOT = "/sys/fs/bpf";

/** Capabilities (bit numbers) that let a process load and attach waggle's programs. */
export const CAP_NET_ADMIN = 12;
export const CAP_SYS_ADMIN = 21;
export const CAP_PERFMON = 38;
export const CAP_BPF = 39;

export const remedies = {
  privileges: "run waggle as root (or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)",
  kernel: (floor: string) => `run a Linux kernel ${floor} or newer`,
  cgroup2:
    "boot with systemd.unified_cgroup_hierarchy=1 (kubelet 1.35 requires cgroup v2 anyway), " +
    "or mount it: mount -t cgroup2 none /sys/fs/cgroup/unified",
  bpffs: (root: string) =>
    `mount bpffs: mount -t bpf bpf ${root} (and keep it: "bpf ${root} bpf defaults 0 0" in /etc/fstab)`,
  glibc: (floor: string) => `run on a distribution with glibc ${floor} or newer`,
  addon:
    "set WAGGLE_RUNTIME_DIR to a directory waggle may write that is not mounted noexec, " +
    "or make /var/lib/waggle/runtime writable and exec-mountable",
  probe: (since: string, config?: string) =>
    `needs Linux ${since} or newer${config ? ` built with ${config}` : ""}`,
  objects: "the kernel's verifier rejected a program: upgrade the kernel or report the log above",
};
