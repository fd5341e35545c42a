// What the datapath needs from the kernel, machine-readable for `waggle doctor`
// (app/prerequisites.ts). Every item names the first mainline release that has it; the
// kernel floor is the newest of them. Kept beside the programs so it changes with them.
import type { CgroupAttachType, MapType, ProgType } from "ebpf-napi";

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

export const DATAPATH_PROG_TYPES: readonly ProgTypeNeed[] = [
  {
    progType: "cgroup_sock_addr",
    since: "4.17",
    usedFor: "outbound capture (connect, sendmsg, recvmsg, getpeername)",
    config: "CONFIG_CGROUP_BPF",
  },
  {
    progType: "sock_ops",
    since: "4.13",
    usedFor:
      "carrying the original destination to the proxy's socket; the proxy's inbound listener",
    config: "CONFIG_CGROUP_BPF",
  },
  {
    progType: "cgroup_sockopt",
    since: "5.3",
    usedFor: "answering SO_ORIGINAL_DST",
    config: "CONFIG_CGROUP_BPF",
  },
  {
    progType: "sk_lookup",
    since: "5.9",
    usedFor: "inbound capture: the proxy's listener takes the connection (netns link per pod)",
    config: "CONFIG_BPF_SYSCALL and CONFIG_INET",
  },
  {
    progType: "sched_cls",
    since: "4.1",
    usedFor: "finding a proxy listener older than the pod's attachment (test run, never attached)",
    config: "CONFIG_NET",
  },
];

/** The cgroup hooks (the netns hook comes with its program type, sk_lookup). */
export const DATAPATH_ATTACH_TYPES: readonly AttachTypeNeed[] = [
  {
    attachType: "cgroup_inet4_connect",
    since: "4.17",
    usedFor: "IPv4 outbound capture (O1-O10, D1)",
  },
  { attachType: "cgroup_inet6_connect", since: "4.17", usedFor: "IPv6 outbound capture" },
  { attachType: "cgroup_udp4_sendmsg", since: "4.18", usedFor: "IPv4 DNS capture (D2)" },
  { attachType: "cgroup_udp6_sendmsg", since: "4.18", usedFor: "IPv6 DNS capture (D2)" },
  {
    attachType: "cgroup_udp4_recvmsg",
    since: "5.2",
    usedFor: "DNS replies from the original server (D2)",
  },
  {
    attachType: "cgroup_udp6_recvmsg",
    since: "5.2",
    usedFor: "DNS replies from the original server (D2)",
  },
  {
    attachType: "cgroup_inet4_getpeername",
    since: "5.8",
    usedFor: "a redirected socket's peer is the original destination",
  },
  {
    attachType: "cgroup_inet6_getpeername",
    since: "5.8",
    usedFor: "a redirected socket's peer is the original destination",
  },
  {
    attachType: "cgroup_sock_ops",
    since: "4.13",
    usedFor: "connection callbacks (connect, established, close, listen)",
  },
  { attachType: "cgroup_getsockopt", since: "5.3", usedFor: "SO_ORIGINAL_DST" },
];

export const DATAPATH_MAP_TYPES: readonly MapTypeNeed[] = [
  {
    mapType: "hash",
    since: "3.19",
    usedFor: "per-pod policy, pod addresses, port sets, interfaces",
  },
  { mapType: "lpm_trie", since: "4.11", usedFor: "per-pod include/exclude CIDRs" },
  { mapType: "percpu_hash", since: "4.6", usedFor: "per-pod counters" },
  {
    mapType: "lru_hash",
    since: "4.10",
    usedFor: "redirected connections between connect and accept",
  },
  {
    mapType: "sk_storage",
    since: "5.2",
    usedFor: "per-socket original destination, freed with the socket",
  },
  {
    mapType: "sockhash",
    since: "4.18",
    usedFor: "each pod's inbound listener, which leaves the map when it closes",
  },
  {
    mapType: "array",
    since: "3.19",
    usedFor: "per-pod records pinned with the pod's links; the objects' read-only data",
  },
];

export const DATAPATH_HELPERS: readonly HelperNeed[] = [
  {
    helper: "get_netns_cookie",
    progType: "cgroup_sock_addr",
    since: "5.7",
    usedFor: "the pod of a socket",
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
    usedFor: "recording the original destination",
  },
  {
    helper: "bind",
    progType: "cgroup_sock_addr",
    since: "4.17",
    usedFor: "redirected sockets keep the source iptables would give them",
  },
  {
    helper: "get_netns_cookie",
    progType: "sock_ops",
    since: "5.15",
    usedFor: "the pod of an accepted or listening socket",
  },
  {
    helper: "sk_storage_get",
    progType: "sock_ops",
    since: "5.3",
    usedFor: "handing the original destination to the accepted socket",
  },
  {
    helper: "sock_ops_cb_flags_set",
    progType: "sock_ops",
    since: "4.16",
    usedFor: "close callbacks that remove in-flight entries",
  },
  {
    helper: "sock_hash_update",
    progType: "sock_ops",
    since: "4.18",
    usedFor: "recording the proxy's inbound listener when it listens",
  },
  {
    helper: "get_netns_cookie",
    progType: "cgroup_sockopt",
    since: "5.15",
    usedFor: "the pod of the proxy's socket",
  },
  {
    helper: "sk_storage_get",
    progType: "cgroup_sockopt",
    since: "5.3",
    usedFor: "answering SO_ORIGINAL_DST",
  },
  {
    helper: "sk_assign",
    progType: "sk_lookup",
    since: "5.9",
    usedFor: "handing inbound connections to the proxy's listener without NAT",
  },
  { helper: "sk_release", progType: "sk_lookup", since: "5.9", usedFor: "the listener lookup" },
  {
    helper: "sk_lookup_tcp",
    progType: "sched_cls",
    since: "4.20",
    usedFor: "finding a proxy listener older than the pod's attachment",
  },
  { helper: "sk_release", progType: "sched_cls", since: "4.20", usedFor: "that lookup" },
];

export const DATAPATH_VERSION_ONLY: readonly VersionOnlyFeature[] = [
  {
    feature: "`ingress_ifindex` in sk_lookup programs",
    since: "5.17",
    usedFor: "X1: no inbound capture on excludeInterfaces (the interface a connection arrived on)",
  },
  {
    feature: "sockhash updates with a socket from sched_cls programs",
    since: "5.10",
    usedFor: "recording a proxy listener older than the pod's attachment",
  },
  {
    feature: "sk_lookup netns bpf_link",
    since: "5.9",
    usedFor: "per-pod inbound capture pinned with the pod's links",
  },
  {
    feature: "listening sockets in a sockhash, added from sock_ops at listen()",
    since: "5.7",
    usedFor: "the proxy's inbound listener per pod",
  },
  {
    feature: "cgroup bpf_link and link pinning",
    since: "5.7",
    usedFor: "per-pod attachments that outlive the plugin",
  },
  {
    feature: "read-only global data (.rodata maps)",
    since: "5.2",
    usedFor: "constants in the objects",
  },
];

/** Everything above, for doctor. */
export const DATAPATH_REQUIREMENTS = {
  progTypes: DATAPATH_PROG_TYPES,
  attachTypes: DATAPATH_ATTACH_TYPES,
  mapTypes: DATAPATH_MAP_TYPES,
  helpers: DATAPATH_HELPERS,
  versionOnly: DATAPATH_VERSION_ONLY,
} as const;
