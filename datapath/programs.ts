// Which program lives in which object and where it attaches, and where everything is pinned.
import { join } from "node:path";
import type {
  CgroupAttachType,
  NetnsAttachType,
  SockmapAttachType,
  TracingAttachType,
} from "ebpf-napi";

/** The BPF objects (bpf/<name>.bpf.c), in load order. */
export const OBJECTS = ["outbound", "origdst", "inbound", "bypass", "bypass_recv"] as const;
export type ObjectName = (typeof OBJECTS)[number];

export interface CgroupProgram {
  name: string;
  object: ObjectName;
  attachType: CgroupAttachType;
}

/** Programs attached to each meshed pod's cgroup, one bpf_link each. */
export const CGROUP_PROGRAMS: readonly CgroupProgram[] = [
  { name: "waggle_connect4", object: "outbound", attachType: "cgroup_inet4_connect" },
  { name: "waggle_connect6", object: "outbound", attachType: "cgroup_inet6_connect" },
  { name: "waggle_sendmsg4", object: "outbound", attachType: "cgroup_udp4_sendmsg" },
  { name: "waggle_sendmsg6", object: "outbound", attachType: "cgroup_udp6_sendmsg" },
  { name: "waggle_recvmsg4", object: "outbound", attachType: "cgroup_udp4_recvmsg" },
  { name: "waggle_recvmsg6", object: "outbound", attachType: "cgroup_udp6_recvmsg" },
  { name: "waggle_getpeername4", object: "outbound", attachType: "cgroup_inet4_getpeername" },
  { name: "waggle_getpeername6", object: "outbound", attachType: "cgroup_inet6_getpeername" },
  { name: "waggle_sockops", object: "origdst", attachType: "cgroup_sock_ops" },
  { name: "waggle_getsockopt", object: "origdst", attachType: "cgroup_getsockopt" },
];

/** Inbound capture: attached to each meshed pod's netns (sk_lookup), one bpf_link each. */
export const NETNS_PROGRAM = {
  name: "waggle_inbound",
  object: "inbound" as ObjectName,
  attachType: "sk_lookup" as NetnsAttachType,
};

/**
 * Run, never attached: finds the proxy's inbound listener of a pod that listened before the
 * pod was attached (BPF_PROG_TEST_RUN inside the pod's netns).
 */
export const LISTENER_FINDER = { name: "waggle_listener", object: "inbound" as ObjectName };

/**
 * Socket bypass: attached once per node to the waggle_bypass sockhash, as a pinned sockmap
 * link (<bpfRoot>/datapath/links/<name>) that upgradePrograms updates in place.
 */
export const BYPASS_PROGRAM = {
  name: "waggle_bypass_msg",
  object: "bypass" as ObjectName,
  attachType: "sk_msg_verdict" as SockmapAttachType,
  map: "waggle_bypass",
};

/**
 * The socket bypass's flow control, the receiving half: a BTF tracepoint program (tp_btf,
 * which needs the kernel's BTF) attached once per node as a pinned raw tracepoint link
 * (<bpfRoot>/datapath/links/<name>). Such links cannot be updated: upgradePrograms pins a
 * new link over the old one. Loaded only where the kernel has BTF (OPTIONAL_OBJECTS).
 */
export const BYPASS_RECV_PROGRAM = {
  name: "waggle_bypass_recv",
  object: "bypass_recv" as ObjectName,
  attachType: "trace_raw_tp" as TracingAttachType,
};

/** Objects loaded only where the kernel can (requirements.ts bypassSupport names the needs). */
export const OPTIONAL_OBJECTS: readonly ObjectName[] = [BYPASS_RECV_PROGRAM.object];

/** The programs every datapath pins (BYPASS_RECV_PROGRAM only where its object loads). */
export const ALL_PROGRAMS = [
  ...CGROUP_PROGRAMS.map((p) => p.name),
  NETNS_PROGRAM.name,
  LISTENER_FINDER.name,
  BYPASS_PROGRAM.name,
];

/** The links pinned in each pod's directory, by program name. */
export const POD_LINKS = [...CGROUP_PROGRAMS.map((p) => p.name), NETNS_PROGRAM.name];

/**
 * A container id as a bpffs directory name. bpffs refuses names with a dot (EPERM), and CNI
 * container ids may hold dots: every character outside [A-Za-z0-9-] becomes "_" + 2 hex digits.
 */
export function containerDirName(containerId: string): string {
  return containerId.replace(
    /[^A-Za-z0-9-]/g,
    (c) => `_${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** The inverse of containerDirName. */
export function containerIdOfDir(dir: string): string {
  return dir.replace(/_([0-9a-f]{2})/g, (_, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

/** Pin layout under bpfRoot (no dots anywhere: bpffs refuses them). */
export const paths = {
  datapath: (root: string) => join(root, "datapath"),
  maps: (root: string) => join(root, "datapath", "maps"),
  map: (root: string, name: string) => join(root, "datapath", "maps", name),
  progs: (root: string) => join(root, "datapath", "progs"),
  prog: (root: string, name: string) => join(root, "datapath", "progs", name),
  links: (root: string) => join(root, "datapath", "links"),
  link: (root: string, name: string) => join(root, "datapath", "links", name),
  pods: (root: string) => join(root, "pods"),
  pod: (root: string, containerId: string) => join(root, "pods", containerDirName(containerId)),
  podRecord: (root: string, containerId: string) =>
    join(root, "pods", containerDirName(containerId), "record"),
  podLink: (root: string, containerId: string, prog: string) =>
    join(root, "pods", containerDirName(containerId), prog),
};
