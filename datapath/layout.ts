// The byte layouts of waggle's BPF map keys and values, and the constants programs and
// userspace share. The C side is bpf/include/waggle/abi.h; test/unit/datapath-layout.test.ts
// checks every struct here against the BTF of the compiled objects, so the two cannot drift.
// Multi-byte integers are host order (little-endian on the architectures we build for);
// addresses are 16 bytes in network order, IPv4 stored v4-mapped (::ffff:a.b.c.d).
import { endianness } from "node:os";

if (endianness() !== "LE") throw new Error("waggle's map encodings assume a little-endian host");

/** A struct as the C compiler lays it out: total size and each member's offset and size. */
export interface StructLayout {
  size: number;
  fields: Record<string, { offset: number; size: number }>;
}

function layout(size: number, fields: [string, number, number][]): StructLayout {
  return {
    size,
    fields: Object.fromEntries(fields.map(([name, offset, sz]) => [name, { offset, size: sz }])),
  };
}

/** Every shared struct, by its C name. */
export const STRUCTS = {
  pod_policy: layout(40, [
    ["flags", 0, 4],
    ["proxy_uid", 4, 4],
    ["proxy_gid", 8, 4],
    ["outbound_port", 12, 2],
    ["inbound_port", 14, 2],
    ["dns_port", 16, 2],
    ["tunnel_port", 18, 2],
    ["source_v4", 20, 4],
    ["source_v6", 24, 16],
  ]),
  port_key: layout(16, [
    ["netns", 0, 8],
    ["kind", 8, 1],
    ["pad", 9, 7],
  ]),
  port_set: layout(8192, [["bits", 0, 8192]]),
  cidr_key: layout(32, [
    ["prefixlen", 0, 4],
    ["kind", 4, 4],
    ["netns", 8, 8],
    ["addr", 16, 16],
  ]),
  ip_key: layout(16, [["addr", 0, 16]]),
  pod_counters: layout(64, [
    ["outbound_redirected", 0, 8],
    ["local_redirected", 8, 8],
    ["dns_redirected", 16, 8],
    ["inbound_captured", 24, 8],
    ["passthrough", 32, 8],
    ["inbound_no_listener", 40, 8],
    ["orig_dst_answered", 48, 8],
    ["errors", 56, 8],
  ]),
  sock_orig: layout(32, [
    ["addr", 0, 16],
    ["port", 16, 2],
    ["flags", 18, 2],
    ["via_port", 20, 2],
    ["pad", 22, 2],
    ["netns", 24, 8],
  ]),
  redirect_key: layout(48, [
    ["netns", 0, 8],
    ["client_addr", 8, 16],
    ["server_addr", 24, 16],
    ["client_port", 40, 2],
    ["server_port", 42, 2],
    ["pad", 44, 4],
  ]),
  redirect_value: layout(24, [
    ["addr", 0, 16],
    ["port", 16, 2],
    ["pad", 18, 6],
  ]),
  iface_key: layout(16, [
    ["netns", 0, 8],
    ["ifindex", 8, 4],
    ["pad", 12, 4],
  ]),
  listener_key: layout(16, [
    ["netns", 0, 8],
    ["family", 8, 4],
    ["pad", 12, 4],
  ]),
  listener_query: layout(32, [
    ["netns", 0, 8],
    ["addr", 8, 16],
    ["port", 24, 2],
    ["pad", 26, 6],
  ]),
  bypass_key: layout(48, [
    ["netns", 0, 8],
    ["local_addr", 8, 16],
    ["remote_addr", 24, 16],
    ["local_port", 40, 2],
    ["remote_port", 42, 2],
    ["pad", 44, 4],
  ]),
  bypass_sock: layout(64, [
    ["peer", 0, 48],
    ["netns", 48, 8],
    ["flags", 56, 4],
    ["untracked", 60, 4],
  ]),
  bypass_counters: layout(32, [
    ["bypass_sockets", 0, 8],
    ["bypass_msgs", 8, 8],
    ["bypass_bytes", 16, 8],
    ["bypass_fallbacks", 24, 8],
  ]),
  bypass_flow_counters: layout(16, [
    ["bypass_backpressure_fallbacks", 0, 8],
    ["bypass_backpressure_bytes", 8, 8],
  ]),
  bypass_backlog: layout(16, [
    ["unread", 0, 8],
    ["copied_seq", 8, 4],
    ["flags", 12, 4],
  ]),
  node_settings: layout(8, [
    ["flags", 0, 4],
    ["bypass_backlog_max", 4, 4],
  ]),
} as const satisfies Record<string, StructLayout>;

/** struct pod_policy.flags (POLICY_* in abi.h). */
export const POLICY = {
  IPV6: 1 << 0,
  OUT_INCLUDE_ALL: 1 << 1,
  OUT_INCLUDE_CIDRS: 1 << 2,
  OUT_EXCLUDE_CIDRS: 1 << 3,
  OUT_INCLUDE_PORTS: 1 << 4,
  OUT_EXCLUDE_PORTS: 1 << 5,
  IN_ALL: 1 << 6,
  IN_LIST: 1 << 7,
  DNS: 1 << 8,
  NO_LOCAL_RULE: 1 << 9,
  DNS_IPV6: 1 << 10,
  NO_BYPASS: 1 << 11,
} as const;

/**
 * The pods the shared maps are sized for (MAX_PODS in maps.h), and the CIDR entries each may
 * hold (MAX_CIDRS_PER_POD: two annotation lists at their limit, MAX_CIDRS_PER_ANNOTATION in
 * redirect-settings.ts, and the routes of excluded interfaces, EXCLUDED_INTERFACE_ROUTES).
 * Port sets need no limit: each is one bitmap entry, whatever it lists.
 */
export const MAP_CAPACITY = { pods: 16384, cidrsPerPod: 768 } as const;
export const EXCLUDED_INTERFACE_ROUTES = 256;
/** struct node_settings.flags (NODE_* in abi.h). */
export const NODE = { BYPASS: 1 << 0 } as const;

/** struct port_key.kind (PORT_* in abi.h). */
export const PORT_KIND = { outInclude: 1, outExclude: 2, inInclude: 3, inExclude: 4 } as const;
export type PortKind = keyof typeof PORT_KIND;

/** struct cidr_key.kind (CIDR_* in abi.h). */
export const CIDR_KIND = {
  outInclude4: 1,
  outExclude4: 2,
  outInclude6: 3,
  outExclude6: 4,
} as const;
export type CidrKind = keyof typeof CIDR_KIND;

/** Bits of cidr_key before the address (kind + netns): CIDR_KEY_FIXED_BITS. */
export const CIDR_KEY_FIXED_BITS = 96;

/** The maps as the objects name them (pinned under <bpfRoot>/datapath/maps/<name>). */
export const MAP_NAMES = {
  policy: "waggle_policy",
  podIps: "waggle_pod_ips",
  ports: "waggle_ports",
  cidrs: "waggle_cidrs",
  counters: "waggle_counters",
  ifaces: "waggle_ifaces",
  listeners: "waggle_listeners",
  sock: "waggle_sock",
  redirect: "waggle_redirect",
  bypass: "waggle_bypass",
  bypassSock: "waggle_bypass_sock",
  bypassBacklog: "waggle_bypass_backlog",
  bypassCounters: "waggle_bypass_counters",
  bypassFlowCounters: "waggle_bypass_flow_counters",
  node: "waggle_node",
} as const;

/** Maps with no keys userspace can walk (socket storage). */
export const STORAGE_MAPS: readonly string[] = [MAP_NAMES.sock, MAP_NAMES.bypassSock];

/** waggle_listener's return values (LISTENER_* in abi.h). */
export const LISTENER_RESULT = { stored: 0, none: 1, failed: 2, badRun: 3 } as const;

/** Socket families as the kernel numbers them (listener_key.family). */
export const AF = { inet: 2, inet6: 10 } as const;

/** The bypass counters (waggle_bypass_counters, then waggle_bypass_flow_counters), in struct order. */
export const BYPASS_COUNTER_NAMES = [
  ...Object.keys(STRUCTS.bypass_counters.fields),
  ...Object.keys(STRUCTS.bypass_flow_counters.fields),
] as BypassCounterName[];
export type BypassCounterName =
  | "bypass_sockets"
  | "bypass_msgs"
  | "bypass_bytes"
  | "bypass_fallbacks"
  | "bypass_backpressure_fallbacks"
  | "bypass_backpressure_bytes";

/** Counter names in struct order: waggle_counters', then the bypass counters. */
export const COUNTER_NAMES = [
  ...Object.keys(STRUCTS.pod_counters.fields),
  ...BYPASS_COUNTER_NAMES,
] as CounterName[];
export type CounterName =
  | BypassCounterName
  | "outbound_redirected"
  | "local_redirected"
  | "dns_redirected"
  | "inbound_captured"
  | "passthrough"
  | "inbound_no_listener"
  | "orig_dst_answered"
  | "errors";
