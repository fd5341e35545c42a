// What the datapath needs from the kernel, machine-readable for `waggle doctor`
// (app/prerequisites.ts). Every item names the first mainline release that has it (the commits
// and tags are in docs/architecture.md, "Kernel requirements: sources"); the kernel floor is
// the newest of them. Kept beside the programs so it changes with them.
import { existsSync } from "node:fs";
import { release as osRelease } from "node:os";
import type { CgroupAttachType, MapType, ProgType } from "ebpf-napi";
import { compareDotted, kernelVersion } from "../base/dotted-version";

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
    progType: "sk_msg",
    since: "4.17",
    usedFor:
      "socket bypass: each message of a joined socket to its peer (loaded always, used when on)",
    config: "CONFIG_BPF_STREAM_PARSER",
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
    helper: "msg_redirect_hash",
    progType: "sk_msg",
    since: "4.18",
    usedFor: "socket bypass: a message into the peer socket's receive queue",
  },
  {
    helper: "skc_to_tcp_sock",
    progType: "sk_msg",
    since: "5.10",
    usedFor: "socket bypass flow control: whether a held sender's TCP bytes were all read",
  },
  {
    helper: "sk_storage_get",
    progType: "sk_msg",
    since: "5.8",
    usedFor: "socket bypass: the peer's key and the sticky decision of the sending socket",
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

/**
 * Socket bypass: what it relies on, each with the first mainline release that has it
 * (docs/datapath.md, "Socket bypass", names the changes and their commits). The newest is the
 * floor below which the bypass cannot run at all.
 */
export const BYPASS_KERNEL_FIXES: readonly VersionOnlyFeature[] = [
  {
    feature: "sk_msg redirect to a peer's receive queue (BPF_F_INGRESS)",
    since: "4.18",
    usedFor: "handing each message to the peer socket",
  },
  {
    feature: "sk_msg readiness through sk_msg_is_readable (epoll/poll see the ingress queue)",
    since: "5.15",
    usedFor: "epoll level and edge readiness identical to TCP",
  },
  {
    feature:
      'the "bpf, sockmap" receive fixes (FIN handling, empty-queue checks, wake-up after copy)',
    since: "6.4",
    usedFor: "FIN ordering and readiness after the ingress queue drains",
  },
  {
    feature: "sockmap bpf_link for sk_msg programs (BPF_LINK_TYPE_SOCKMAP)",
    since: "6.10",
    usedFor: "one pinned, updatable link of the node's sk_msg program on waggle_bypass",
  },
  {
    feature: "the sock_recv_length tracepoint (6.3) and the bpf_rdonly_cast kfunc (6.2)",
    since: "6.3",
    usedFor: "flow control: reading a receiver's ingress queue length after each read",
  },
];

/** Where the kernel publishes its BTF, which the flow control's tracepoint program needs. */
export const KERNEL_BTF = "/sys/kernel/btf/vmlinux";

/**
 * Where the bypass still differs from TCP on every kernel tested (6.18), proven by
 * test/kernel/bypass-semantics.test.ts. None can be excluded per connection (they depend on
 * what the receiving application does later), so while any is open the bypass is off by
 * default; `socket_bypass: true` turns it on knowingly. `fixedIn` names the first release
 * that removes the difference, once one does.
 */
export const BYPASS_OPEN_DIFFERENCES: readonly {
  /** A few words for doctor's line. */
  short: string;
  difference: string;
  fixedIn: string | null;
}[] = [
  {
    short: "MSG_WAITALL short reads",
    difference:
      "recv with MSG_WAITALL returns what is queued instead of waiting for the whole length",
    fixedIn: null,
  },
  {
    short: "splice(2) reads nothing",
    difference:
      "splice(2) from a receiving socket sees none of the bypassed bytes (tcp_splice_read reads only the TCP queue)",
    fixedIn: null,
  },
  {
    short: "FIN, not RST, on close with unread data",
    difference:
      "closing with bypassed bytes unread sends a FIN, not the RST TCP sends (the peer reads EOF, not ECONNRESET)",
    fixedIn: null,
  },
];

/** Whether this kernel can run the socket bypass, whether it is on by default, and why. */
export interface BypassSupport {
  /** The kernel has everything BYPASS_KERNEL_FIXES lists: the switch can turn it on. */
  available: boolean;
  /** On when the switch is absent: available, and no open difference left on this kernel. */
  defaultOn: boolean;
  /** The running kernel's version (null when unreadable). */
  kernel: string | null;
  /** The floor: the newest `since` of BYPASS_KERNEL_FIXES. */
  floor: string;
  /** What the running kernel lacks (empty when available). */
  missing: string[];
  /** BYPASS_OPEN_DIFFERENCES this kernel still has (their short names). */
  differences: string[];
  /** One line for doctor and status. */
  reason: string;
}

/**
 * The socket bypass's kernel check for a release string (default: the running kernel) and
 * whether the kernel publishes its BTF (default: KERNEL_BTF exists). Without BTF the flow
 * control cannot load, and the bypass stays off rather than run without it.
 */
export function bypassSupport(
  release: string = osRelease(),
  btf: boolean = existsSync(KERNEL_BTF),
): BypassSupport {
  const kernel = kernelVersion(release);
  const floor = BYPASS_KERNEL_FIXES.map((f) => f.since)
    .sort(compareDotted)
    .at(-1) as string;
  const missing =
    kernel === null
      ? BYPASS_KERNEL_FIXES.map((f) => f.feature)
      : BYPASS_KERNEL_FIXES.filter((f) => compareDotted(kernel, f.since) < 0).map(
          (f) => `${f.feature} (${f.since})`,
        );
  if (!btf) missing.push(`kernel BTF (${KERNEL_BTF}, CONFIG_DEBUG_INFO_BTF) for the flow control`);
  const differences = BYPASS_OPEN_DIFFERENCES.filter(
    (d) => kernel === null || d.fixedIn === null || compareDotted(kernel, d.fixedIn) < 0,
  ).map((d) => d.short);
  const available = missing.length === 0;
  const defaultOn = available && differences.length === 0;
  let reason: string;
  if (kernel === null)
    reason = `kernel release ${JSON.stringify(release)} is unreadable: bypass unavailable`;
  else if (!available)
    reason = `kernel ${kernel} lacks ${missing.join(", ")}: bypass unavailable (needs ${floor} or later)`;
  else if (!defaultOn)
    reason = `kernel ${kernel} can run the bypass, off unless socket_bypass is true: ${differences.length} differences from TCP remain (${differences.join("; ")}; docs/datapath.md)`;
  else reason = `kernel ${kernel} has every fix the bypass needs: on by default`;
  return { available, defaultOn, kernel, floor, missing, differences, reason };
}
