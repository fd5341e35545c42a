// Kernel type names as strings: libbpf's own spellings (libbpf_bpf_*_type_str).

/** Program types (libbpf names). */
export type ProgType =
  | "socket_filter"
  | "kprobe"
  | "sched_cls"
  | "sched_act"
  | "tracepoint"
  | "xdp"
  | "perf_event"
  | "cgroup_skb"
  | "cgroup_sock"
  | "lwt_in"
  | "lwt_out"
  | "lwt_xmit"
  | "sock_ops"
  | "sk_skb"
  | "cgroup_device"
  | "sk_msg"
  | "raw_tracepoint"
  | "cgroup_sock_addr"
  | "lwt_seg6local"
  | "lirc_mode2"
  | "sk_reuseport"
  | "flow_dissector"
  | "cgroup_sysctl"
  | "raw_tracepoint_writable"
  | "cgroup_sockopt"
  | "tracing"
  | "struct_ops"
  | "ext"
  | "lsm"
  | "sk_lookup"
  | "syscall";

/** Map types (libbpf names). */
export type MapType =
  | "hash"
  | "array"
  | "prog_array"
  | "perf_event_array"
  | "percpu_hash"
  | "percpu_array"
  | "stack_trace"
  | "cgroup_array"
  | "lru_hash"
  | "lru_percpu_hash"
  | "lpm_trie"
  | "array_of_maps"
  | "hash_of_maps"
  | "devmap"
  | "sockmap"
  | "cpumap"
  | "xskmap"
  | "sockhash"
  | "cgroup_storage"
  | "reuseport_sockarray"
  | "percpu_cgroup_storage"
  | "queue"
  | "stack"
  | "sk_storage"
  | "devmap_hash"
  | "struct_ops"
  | "ringbuf"
  | "inode_storage"
  | "task_storage"
  | "bloom_filter"
  | "user_ringbuf"
  | "cgrp_storage";

/** cgroup attach types (libbpf names of enum bpf_attach_type, e.g. BPF_CGROUP_INET4_CONNECT). */
export type CgroupAttachType =
  | "cgroup_inet_ingress"
  | "cgroup_inet_egress"
  | "cgroup_inet_sock_create"
  | "cgroup_inet_sock_release"
  | "cgroup_sock_ops"
  | "cgroup_device"
  | "cgroup_inet4_bind"
  | "cgroup_inet6_bind"
  | "cgroup_inet4_connect"
  | "cgroup_inet6_connect"
  | "cgroup_inet4_post_bind"
  | "cgroup_inet6_post_bind"
  | "cgroup_udp4_sendmsg"
  | "cgroup_udp6_sendmsg"
  | "cgroup_udp4_recvmsg"
  | "cgroup_udp6_recvmsg"
  | "cgroup_sysctl"
  | "cgroup_getsockopt"
  | "cgroup_setsockopt"
  | "cgroup_inet4_getpeername"
  | "cgroup_inet6_getpeername"
  | "cgroup_inet4_getsockname"
  | "cgroup_inet6_getsockname";

/** Attach types of programs on a sockmap or sockhash (libbpf names, e.g. BPF_SK_MSG_VERDICT). */
export type SockmapAttachType =
  | "sk_msg_verdict"
  | "sk_skb_stream_parser"
  | "sk_skb_stream_verdict"
  | "sk_skb_verdict";

/**
 * Attach types of tracing programs (libbpf names): fentry, fexit, fmod_ret, and BTF
 * tracepoints (tp_btf, BPF_TRACE_RAW_TP).
 */
export type TracingAttachType = "trace_fentry" | "trace_fexit" | "modify_return" | "trace_raw_tp";

/** What the kernel says about a loaded program (bpf_prog_info). */
export interface ProgramInfo {
  /** Kernel-wide program id. */
  id: number;
  /** Program name as loaded (the kernel truncates to 15 characters). */
  name: string;
  /** Program tag: 16 hex digits (hash of the instructions). */
  tag: string;
  type: ProgType;
}

/** What the kernel says about a map (bpf_map_info). */
export interface MapInfo {
  id: number;
  name: string;
  type: MapType;
  keySize: number;
  /** Value size of ONE element (per CPU for per-CPU maps). */
  valueSize: number;
  maxEntries: number;
  /** BPF_F_* map flags. */
  flags: number;
}

/** What the kernel says about a link (bpf_link_info). */
export interface LinkInfo {
  id: number;
  progId: number;
  /** Link type (libbpf name: "cgroup", "netns", "xdp", ..., and "sockmap"). */
  type: string;
  /** For cgroup links: the attach type and the cgroup id; for sockmap links the attach type. */
  attachType?: CgroupAttachType | SockmapAttachType;
  cgroupId?: bigint;
  /** For sockmap links: the map's id. */
  mapId?: number;
}
