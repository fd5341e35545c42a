// What a host must offer waggle, each item with the kernel that brought it, what waggle uses it
// for, and what to do when it is missing. `waggle doctor` checks every item; the kernel floor is
// the newest `since` in these lists, so it can never disagree with them.
import type { CgroupAttachType, MapType, ProgType } from "ebpf-napi";
import { compareDotted } from "./dotted-version";

/** A kernel feature waggle uses: the first mainline release that has it, and why waggle needs it. */
export interface KernelFeature {
  since: string;
  usedFor: string;
}

export interface ProgTypeNeed extends KernelFeature {
  progType: ProgType;
  /** Kernel configuration that provides the type. */
  config: string;
}

export interface AttachTypeNeed extends KernelFeature {
  attachType: CgroupAttachType;
}

export interface MapTypeNeed extends KernelFeature {
  mapType: MapType;
}

export interface HelperNeed extends KernelFeature {
  /** UAPI helper name without the bpf_ prefix. */
  helper: string;
  /** The program type that calls it (helpers are allowed per program type). */
  progType: ProgType;
}

/** Features that no probe can isolate cheaply; the kernel version check covers them. */
export interface VersionOnlyFeature extends KernelFeature {
  feature: string;
}

export const progTypeNeeds: readonly ProgTypeNeed[] = [
  {
    progType: "cgroup_sock_addr",
    since: "4.17",
    usedFor: "outbound capture (connect, sendmsg, recvmsg hooks)",
    config: "CONFIG_CGROUP_BPF",
  },
  {
    progType: "sock_ops",
    since: "4.13",
    usedFor: "recording each captured connection's original destination",
    config: "CONFIG_CGROUP_BPF",
  },
  {
    progType: "cgroup_sockopt",
    since: "5.3",
    usedFor: "answering SO_ORIGINAL_DST for the proxy",
    config: "CONFIG_CGROUP_BPF",
  },
  {
    progType: "sched_cls",
    since: "4.1",
    usedFor: "inbound capture at TC ingress",
    config: "CONFIG_NET_CLS_BPF and CONFIG_NET_SCH_INGRESS",
  },
];

export const attachTypeNeeds: readonly AttachTypeNeed[] = [
  { attachType: "cgroup_inet4_connect", since: "4.17", usedFor: "IPv4 outbound capture" },
  { attachType: "cgroup_inet6_connect", since: "4.17", usedFor: "IPv6 outbound capture" },
  { attachType: "cgroup_udp4_sendmsg", since: "4.18", usedFor: "IPv4 DNS capture" },
  { attachType: "cgroup_udp6_sendmsg", since: "4.18", usedFor: "IPv6 DNS capture" },
  { attachType: "cgroup_udp4_recvmsg", since: "5.2", usedFor: "IPv4 DNS reply source rewrite" },
  { attachType: "cgroup_udp6_recvmsg", since: "5.2", usedFor: "IPv6 DNS reply source rewrite" },
  {
    attachType: "cgroup_inet4_getpeername",
    since: "5.8",
    usedFor: "getpeername() naming the original IPv4 destination",
  },
  {
    attachType: "cgroup_inet6_getpeername",
    since: "5.8",
    usedFor: "getpeername() naming the original IPv6 destination",
  },
  { attachType: "cgroup_sock_ops", since: "4.13", usedFor: "connection state at establishment" },
  { attachType: "cgroup_getsockopt", since: "5.3", usedFor: "SO_ORIGINAL_DST" },
];

export const mapTypeNeeds: readonly MapTypeNeed[] = [
  { mapType: "hash", since: "3.19", usedFor: "per-pod policy and redirect records" },
  { mapType: "array", since: "3.19", usedFor: "read-only settings (.rodata)" },
  { mapType: "lru_hash", since: "4.10", usedFor: "bounded per-flow state" },
  { mapType: "lpm_trie", since: "4.11", usedFor: "per-pod include/exclude CIDRs" },
  { mapType: "percpu_hash", since: "4.6", usedFor: "per-pod counters" },
  {
    mapType: "sk_storage",
    since: "5.2",
    usedFor: "per-connection state that dies with its socket",
  },
];

/**
 * Helpers each program type calls, beyond the map helpers every program type has had since
 * they exist (map_lookup_elem, map_update_elem, map_delete_elem).
 */
export const helperNeeds: readonly HelperNeed[] = [
  {
    helper: "get_netns_cookie",
    progType: "cgroup_sock_addr",
    since: "5.7",
    usedFor: "finding the pod of a socket",
  },
  {
    helper: "get_current_uid_gid",
    progType: "cgroup_sock_addr",
    since: "4.17",
    usedFor: "telling the proxy (uid/gid) from the app",
  },
  {
    helper: "sk_storage_get",
    progType: "cgroup_sock_addr",
    since: "5.3",
    usedFor: "remembering the original destination",
  },
  {
    helper: "bind",
    progType: "cgroup_sock_addr",
    since: "4.17",
    usedFor: "the source address of redirected connections",
  },
  {
    helper: "sk_storage_get",
    progType: "sock_ops",
    since: "5.3",
    usedFor: "connection state",
  },
  {
    helper: "get_netns_cookie",
    progType: "sock_ops",
    since: "5.15",
    usedFor: "matching accepted connections to their pod",
  },
  {
    helper: "sock_ops_cb_flags_set",
    progType: "sock_ops",
    since: "4.16",
    usedFor: "a callback when a captured connection closes",
  },
  {
    helper: "sk_storage_get",
    progType: "cgroup_sockopt",
    since: "5.3",
    usedFor: "SO_ORIGINAL_DST answers",
  },
  {
    helper: "get_netns_cookie",
    progType: "cgroup_sockopt",
    since: "5.15",
    usedFor: "SO_ORIGINAL_DST answers per pod",
  },
  {
    helper: "sk_assign",
    progType: "sched_cls",
    since: "5.7",
    usedFor: "delivering inbound connections to the proxy without NAT",
  },
  {
    helper: "skc_lookup_tcp",
    progType: "sched_cls",
    since: "5.2",
    usedFor: "finding the proxy's inbound listener",
  },
  {
    helper: "sk_lookup_tcp",
    progType: "sched_cls",
    since: "4.20",
    usedFor: "finding established inbound connections",
  },
  { helper: "sk_release", progType: "sched_cls", since: "4.20", usedFor: "socket lookups" },
];

export const versionOnlyFeatures: readonly VersionOnlyFeature[] = [
  {
    feature: "cgroup bpf_link and link pinning",
    since: "5.7",
    usedFor: "per-pod attachments that outlive the plugin process",
  },
  {
    feature: "read-only global data (.rodata maps)",
    since: "5.2",
    usedFor: "settings compiled into the programs",
  },
];

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
export const BPF_FS_MAGIC = 0xcafe4a11;

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
