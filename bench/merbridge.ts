// The merbridge mode's pure parts: which of Merbridge's programs the bench builds and where
// each one attaches, how their map declarations are made readable for libbpf, and what the
// bench writes into and reads from Merbridge's maps. Merbridge's code is never in this
// repository: the bench builds its programs at run time from a checkout the operator names
// (--merbridge-src DIR or WAGGLE_MERBRIDGE_SRC), bench/merbridge-datapath.ts does the build,
// load and attach, and docs/benchmarks.md ("The modes, exactly") says what runs.

import type { CgroupAttachType, SockmapAttachType } from "ebpf-napi";
import { INBOUND_PORT, OUTBOUND_PORT, PASSTHROUGH_SOURCE } from "./sidecars";

/**
 * The objects of Merbridge's bpf/Makefile that its `load` and `attach` targets put on cgroups
 * and on its sockhash, IPv4 only. Not built: its TC object (used by its CNI mode only) and its
 * process watcher (kprobes that only its ambient mode's process manager links).
 */
export const MERBRIDGE_OBJECTS = [
  "mb_connect",
  "mb_sockops",
  "mb_get_sockopts",
  "mb_redir",
  "mb_bind",
  "mb_sendmsg",
  "mb_recvmsg",
] as const;

/** The attach type of each program section those objects hold (libbpf's names). */
export const MERBRIDGE_ATTACH: Readonly<Record<string, CgroupAttachType | SockmapAttachType>> = {
  "cgroup/connect4": "cgroup_inet4_connect",
  sockops: "cgroup_sock_ops",
  "cgroup/getsockopt": "cgroup_getsockopt",
  sk_msg: "sk_msg_verdict",
  "cgroup/bind4": "cgroup_inet4_bind",
  "cgroup/sendmsg4": "cgroup_udp4_sendmsg",
  "cgroup/recvmsg4": "cgroup_udp4_recvmsg",
};

/**
 * The make variables of the build: Istio mode, IPv4 only, the default (not CNI) mode, no
 * debug prints, and USE_RECONNECT, which its controller sets for Istio (`--use-reconnect`,
 * on in its Istio deployment). Everything else is its Makefile's own (flags, the macros it
 * derives from the kernel version).
 */
export const MERBRIDGE_MAKE_VARS: Readonly<Record<string, string>> = {
  MESH_MODE: "istio",
  ENABLE_IPV4: "true",
  ENABLE_IPV6: "false",
  CNI_MODE: "false",
  USE_RECONNECT: "1",
  DEBUG: "",
};

/** The sockhash map (sk_msg programs attach to it) and the maps the bench fills or reads. */
export const MERBRIDGE_MAPS = {
  sockhash: "sock_pair_map",
  podIps: "local_pod_ips",
  processIps: "process_ip",
} as const;

/** What a bench run records of the Merbridge it built (results.json `merbridge`). */
export interface MerbridgeInfo {
  /** The checkout as the operator named it. */
  source: string;
  /** Its HEAD commit; null when it is not a git checkout. */
  commit: string | null;
  /** Uncommitted changes under its bpf/; null when unknown (not a git work tree). */
  dirty: boolean | null;
  /** The compiler command lines its Makefile ran. */
  compile: string[];
  /** Each program: its object, ELF section and where it is attached. */
  programs: { object: string; section: string; attach: string }[];
}

/** libbpf's BTF map attribute for each field of a legacy map definition (null: dropped). */
const LEGACY_FIELDS: Readonly<Record<string, string | null>> = {
  type: "type",
  size_key: "key_size",
  size_value: "value_size",
  max_elem: "max_entries",
  flags: "map_flags",
  // the bench pins every map itself; an id and inner-map indexes have no BTF counterpart here
  pinning: null,
  id: null,
  inner_id: null,
  inner_idx: null,
};

const LEGACY_MAP =
  /struct\s+bpf_elf_map\s+__section\(\s*"maps"\s*\)\s+(\w+)\s*=\s*\{([^}]*)\}\s*;/g;

/** Splits at commas outside parentheses. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "(") depth++;
    else if (s[i] === ")") depth--;
    else if (s[i] === "," && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

/**
 * Rewrites the legacy map definitions of a C header, `struct bpf_elf_map __section("maps")
 * NAME = { .field = value, ... };` (iproute2's layout, which libbpf no longer reads since 1.0),
 * as BTF-defined maps in ".maps" with the same type, key and value sizes, entries and flags.
 * Only the declarations change: programs reach maps through relocations against their
 * symbols, so the instructions compiled from either form are the same (the build compares
 * them). Returns the text and the names of the maps converted.
 */
export function convertLegacyMaps(header: string): { text: string; maps: string[] } {
  const maps: string[] = [];
  let text = header.replace(LEGACY_MAP, (_whole, name: string, body: string) => {
    const attrs: string[] = [];
    const fields = body.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
    for (const field of splitTopLevel(fields)) {
      const m = /^\.(\w+)\s*=\s*([\s\S]+)$/.exec(field);
      if (!m) throw new Error(`map ${name}: cannot read the field ${JSON.stringify(field)}`);
      if (!(m[1] in LEGACY_FIELDS)) throw new Error(`map ${name}: unknown field .${m[1]}`);
      const attr = LEGACY_FIELDS[m[1]];
      if (attr) attrs.push(`__uint(${attr}, ${m[2].trim()});`);
    }
    maps.push(name);
    return `struct { ${attrs.join(" ")} } ${name} __attribute__((section(".maps"), used));`;
  });
  if (maps.length === 0) throw new Error("no legacy map definitions found");
  if (/__section\(\s*"maps"\s*\)/.test(text))
    throw new Error("a legacy map definition was left unconverted");
  // libbpf's __uint (bpf_helpers.h), for headers that do not include it
  const uint = "#ifndef __uint\n#define __uint(name, val) int (*name)[val]\n#endif\n";
  const first = text.indexOf(`struct { `);
  text = `${text.slice(0, first)}${uint}${text.slice(first)}`;
  return { text, maps };
}

/** Istio's own ports, which Merbridge's controller excludes from every pod's inbound capture. */
export const ISTIO_EXCLUDED_INBOUND_PORTS = [15006, 15001, 15008, 15090, 15021, 15020, 15000];

/** Istio's default status port (`status.sidecar.istio.io/port`). */
export const ISTIO_STATUS_PORT = 15021;

/** Entries of each list in Merbridge's per-pod settings. */
const LIST_ENTRIES = 20;
const CIDR_BYTES = 8;
/** Offsets of its per-pod settings value: status port, 2 CIDR lists, 4 port lists. */
const POD_CONFIG = {
  statusPort: 0,
  excludeOutRanges: 4,
  includeOutRanges: 4 + LIST_ENTRIES * CIDR_BYTES,
  includeInPorts: 4 + 2 * LIST_ENTRIES * CIDR_BYTES,
  includeOutPorts: 4 + 2 * LIST_ENTRIES * CIDR_BYTES + 2 * LIST_ENTRIES,
  excludeInPorts: 4 + 2 * LIST_ENTRIES * CIDR_BYTES + 4 * LIST_ENTRIES,
  excludeOutPorts: 4 + 2 * LIST_ENTRIES * CIDR_BYTES + 6 * LIST_ENTRIES,
} as const;
export const POD_CONFIG_BYTES = POD_CONFIG.excludeOutPorts + 2 * LIST_ENTRIES;

/**
 * The value Merbridge's controller writes into local_pod_ips for an injected pod without
 * traffic.sidecar.istio.io annotations (the bench's pods have none): the status port and
 * Istio's excluded inbound ports, every other list empty (capture everything). Ports are in
 * host byte order, as its controller writes them.
 */
export function podConfigValue(
  excludeInboundPorts: readonly number[] = ISTIO_EXCLUDED_INBOUND_PORTS,
): Buffer {
  if (excludeInboundPorts.length > LIST_ENTRIES)
    throw new Error(`at most ${LIST_ENTRIES} excluded inbound ports`);
  const value = Buffer.alloc(POD_CONFIG_BYTES);
  value.writeUInt16LE(ISTIO_STATUS_PORT, POD_CONFIG.statusPort);
  excludeInboundPorts.forEach((p, i) => {
    value.writeUInt16LE(p, POD_CONFIG.excludeInPorts + 2 * i);
  });
  return value;
}

function ipv4Bytes(ip: string): number[] {
  const octets = ip.split(".").map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255))
    throw new Error(`not an IPv4 address: ${ip}`);
  return octets;
}

/** An IPv4 address as Merbridge keys pods and sockets: IPv4-mapped IPv6, 16 bytes. */
export function ipv4MappedKey(ip: string): Buffer {
  return Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ipv4Bytes(ip)]);
}

const dotted = (b: Buffer, at: number) => [...b.subarray(at, at + 4)].join(".");

/** One process_ip entry: the address Merbridge learned for a process (its pod's). */
export function decodeProcessIp(key: Buffer, value: Buffer): { pid: number; ip: string } {
  return { pid: key.readUInt32LE(0), ip: dotted(value, 0) };
}

/** A socket as its sockhash key names it: its own address and port, then its peer's. */
export interface SockPair {
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/** Bytes of a sockhash key: two IPv4-mapped addresses, then the two ports (network order). */
export const SOCK_PAIR_BYTES = 36;

export function decodeSockPair(key: Buffer): SockPair {
  if (key.length !== SOCK_PAIR_BYTES)
    throw new Error(`a sockhash key has ${SOCK_PAIR_BYTES} bytes, got ${key.length}`);
  return {
    src: dotted(key, 12),
    dst: dotted(key, 28),
    sport: key.readUInt16BE(32),
    dport: key.readUInt16BE(34),
  };
}

/** The hops of the meshed path, as the sockets of a connection show them. */
export const MERBRIDGE_HOPS = ["app-to-sidecar", "sidecar-to-sidecar", "sidecar-to-app"] as const;
export type MerbridgeHop = (typeof MERBRIDGE_HOPS)[number];

function hopOf(p: SockPair): MerbridgeHop | null {
  if (p.sport === OUTBOUND_PORT || p.dport === OUTBOUND_PORT) return "app-to-sidecar";
  if (p.sport === INBOUND_PORT || p.dport === INBOUND_PORT) return "sidecar-to-sidecar";
  if (p.src === PASSTHROUGH_SOURCE || p.dst === PASSTHROUGH_SOURCE) return "sidecar-to-app";
  return null;
}

/**
 * Connections whose two sockets are both in the sockhash (so each end's messages can be
 * handed to the other), by hop: app to its sidecar's 15001, sidecar to sidecar (15006),
 * sidecar to app from 127.0.0.6. Sockets of other connections, or with one end only, count
 * nowhere.
 */
export function sockhashConnections(pairs: readonly SockPair[]): Record<MerbridgeHop, number> {
  const id = (p: SockPair) => `${p.src}:${p.sport}>${p.dst}:${p.dport}`;
  const present = new Set(pairs.map(id));
  const counts = Object.fromEntries(MERBRIDGE_HOPS.map((h) => [h, 0])) as Record<
    MerbridgeHop,
    number
  >;
  for (const p of new Map(pairs.map((x) => [id(x), x])).values()) {
    const hop = hopOf(p);
    const mirror = id({ src: p.dst, sport: p.dport, dst: p.src, dport: p.sport });
    // each connection once: from the end whose id sorts first
    if (hop && present.has(mirror) && id(p) < mirror) counts[hop]++;
  }
  return counts;
}

/** What the path check of a merbridge deployment found (results.json `merbridge.paths`). */
export interface MerbridgePathCheck {
  /** "merbridge" or "merbridge+tls". */
  deployment: string;
  /** The first request after attaching (the one Merbridge learns the sidecars' addresses from). */
  priming: {
    succeeded: boolean;
    /** Connections the server sidecar's inbound listener refused meanwhile (to its own 15006). */
    loopsRefused: number;
  };
  /** Each sidecar's pid and the address Merbridge learned for it. */
  learned: { side: "client" | "server"; pid: number; ip: string | null }[];
  /** Connections held open through the path while the sockhash was read. */
  connections: number;
  /** Of those, the connections with both sockets in the sockhash, by hop. */
  hops: Record<MerbridgeHop, number>;
  /** TCP segments the two pods sent for one more request on each held connection. */
  segments: number;
}

/**
 * What is wrong with a merbridge deployment's path beyond its sidecar counters (null:
 * nothing): each sidecar must have its own pod's address learned (else Merbridge sends its
 * next connections to the wrong place); every held connection must have both sockets of each
 * hop in the sockhash; and one more request on each must cross no TCP: fewer segments than
 * requests (through TCP each request is several segments on each of the three hops).
 */
export function merbridgePathProblem(
  check: MerbridgePathCheck,
  pods: { client: string; server: string },
): string | null {
  const unlearned = check.learned.filter((l) => l.ip !== pods[l.side]);
  if (unlearned.length > 0)
    return `Merbridge did not learn the sidecars' pod addresses: ${unlearned.map((l) => `${l.side} sidecar (pid ${l.pid}) has ${l.ip ?? "none"}, its pod is ${pods[l.side]}`).join("; ")}`;
  const short = MERBRIDGE_HOPS.filter((h) => check.hops[h] < check.connections);
  if (short.length > 0)
    return `Merbridge's sockhash does not hold both ends of the ${check.connections} kept-alive connections: ${short.map((h) => `${h} ${check.hops[h]}`).join(", ")}`;
  if (check.segments >= check.connections)
    return `one more request on each of ${check.connections} kept-alive connections sent ${check.segments} TCP segments: the messages were not handed from socket to socket`;
  return null;
}
