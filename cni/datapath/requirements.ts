// What the datapath needs from the kernel, machine-readable for `waggle doctor`
// (cni/prerequisites.ts). Every item names the first mainline release that has it; the
// kernel floor is the newest of them. Kept beside the programs so it changes with them.
import type {
  AttachTypeNeed,
  HelperNeed,
  MapTypeNeed,
  ProgTypeNeed,
  VersionOnlyFeature,
} from "../prerequisites";

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
    usedFor: "carrying the original destination to the proxy's socket",
    config: "CONFIG_CGROUP_BPF",
  },
  {
    progType: "cgroup_sockopt",
    since: "5.3",
    usedFor: "answering SO_ORIGINAL_DST",
    config: "CONFIG_CGROUP_BPF",
  },
  {
    progType: "sched_cls",
    since: "4.1",
    usedFor: "inbound capture at TC ingress",
    config: "CONFIG_NET_CLS_BPF and CONFIG_NET_SCH_INGRESS",
  },
];

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
    usedFor: "connection callbacks (connect, passive established, close)",
  },
  { attachType: "cgroup_getsockopt", since: "5.3", usedFor: "SO_ORIGINAL_DST" },
];

export const DATAPATH_MAP_TYPES: readonly MapTypeNeed[] = [
  { mapType: "hash", since: "3.19", usedFor: "per-pod policy, pod addresses, port sets" },
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
  { mapType: "array", since: "3.19", usedFor: "per-pod records pinned with the pod's links" },
];

export const DATAPATH_HELPERS: readonly HelperNeed[] = [
  {
    helper: "get_netns_cookie",
    progType: "cgroup_sock_addr",
    since: "5.7",
    usedFor: "the pod of a socket",
  },
  {
    helper: "get_netns_cookie",
    progType: "sock_ops",
    since: "5.15",
    usedFor: "the pod of an accepted socket",
  },
  {
    helper: "get_netns_cookie",
    progType: "cgroup_sockopt",
    since: "5.8",
    usedFor: "the pod of the proxy's socket",
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
    helper: "sk_storage_get",
    progType: "sock_ops",
    since: "5.3",
    usedFor: "handing it to the accepted socket",
  },
  {
    helper: "sk_storage_get",
    progType: "cgroup_sockopt",
    since: "5.3",
    usedFor: "answering SO_ORIGINAL_DST",
  },
  {
    helper: "bind",
    progType: "cgroup_sock_addr",
    since: "4.17",
    usedFor: "redirected sockets keep the source iptables would give them",
  },
  {
    helper: "sock_ops_cb_flags_set",
    progType: "sock_ops",
    since: "4.16",
    usedFor: "close callbacks that remove in-flight entries",
  },
  {
    helper: "skc_lookup_tcp",
    progType: "sched_cls",
    since: "5.2",
    usedFor: "segments of existing connections pass untouched",
  },
  {
    helper: "sk_lookup_tcp",
    progType: "sched_cls",
    since: "4.20",
    usedFor: "finding the proxy's inbound listener",
  },
  { helper: "sk_release", progType: "sched_cls", since: "4.20", usedFor: "socket lookups" },
  {
    helper: "sk_assign",
    progType: "sched_cls",
    since: "5.7",
    usedFor: "delivering inbound connections to the proxy without NAT",
  },
];

export const DATAPATH_VERSION_ONLY: readonly VersionOnlyFeature[] = [
  {
    feature: "cgroup bpf_link and link pinning",
    since: "5.7",
    usedFor: "per-pod attachments that outlive the plugin",
  },
  {
    feature: "bpf_sk_assign to SO_REUSEPORT listeners",
    since: "6.5",
    usedFor:
      "inbound capture when the proxy's 15006 listener uses SO_REUSEPORT (Envoy's default); older kernels count sk_assign errors and drop",
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
