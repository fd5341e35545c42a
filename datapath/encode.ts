// PodPolicy -> the exact map keys and values the programs read (layouts from layout.ts).
import { ipBytes, ipv4Text, ipv6Text, isV4Mapped } from "../base/ip";
import {
  AF,
  CIDR_KEY_FIXED_BITS,
  CIDR_KIND,
  type CidrKind,
  COUNTER_NAMES,
  type CounterName,
  MAP_NAMES,
  PORT_KIND,
  type PortKind,
  STRUCTS,
  type StructLayout,
} from "./layout";
import type { PodPolicy, PolicyCidr } from "./policy";

/** 16 bytes, network order; IPv4 as ::ffff:a.b.c.d. */
export function addrBytes(ip: string): Buffer {
  const bytes = ipBytes(ip);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** The text form of 16 key bytes (v4-mapped -> dotted quad). */
export function bytesAddr(b: Buffer): string {
  return isV4Mapped(b) ? ipv4Text(b) : ipv6Text(b);
}

function u64(netns: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(netns);
  return b;
}

/** Key of waggle_policy and waggle_counters. */
export function netnsKey(netns: bigint): Buffer {
  return u64(netns);
}

export function encodePolicy(p: PodPolicy): Buffer {
  const L = STRUCTS.pod_policy.fields;
  const b = Buffer.alloc(STRUCTS.pod_policy.size);
  b.writeUInt32LE(p.flags >>> 0, L.flags.offset);
  b.writeUInt32LE(p.proxyUid, L.proxy_uid.offset);
  b.writeUInt32LE(p.proxyGid, L.proxy_gid.offset);
  b.writeUInt16LE(p.outboundPort, L.outbound_port.offset);
  b.writeUInt16LE(p.inboundPort, L.inbound_port.offset);
  b.writeUInt16LE(p.dnsPort, L.dns_port.offset);
  b.writeUInt16LE(p.tunnelPort, L.tunnel_port.offset);
  if (p.sourceV4) addrBytes(p.sourceV4).copy(b, L.source_v4.offset, 12, 16);
  if (p.sourceV6) addrBytes(p.sourceV6).copy(b, L.source_v6.offset);
  return b;
}

export function decodePolicyFlags(value: Buffer): number {
  return value.readUInt32LE(STRUCTS.pod_policy.fields.flags.offset);
}

export function encodePortKey(netns: bigint, kind: PortKind): Buffer {
  const L = STRUCTS.port_key.fields;
  const b = Buffer.alloc(STRUCTS.port_key.size);
  b.writeBigUInt64LE(netns, L.netns.offset);
  b.writeUInt8(PORT_KIND[kind], L.kind.offset);
  return b;
}

/** A port set as the bitmap waggle_ports holds (bit p of byte p >> 3 set for port p). */
export function encodePortSet(ports: Iterable<number>): Buffer {
  const b = Buffer.alloc(STRUCTS.port_set.size);
  for (const p of ports) b[p >> 3] |= 1 << (p & 7);
  return b;
}

/** The ports of a waggle_ports bitmap, ascending. */
export function decodePortSet(b: Buffer): number[] {
  const out: number[] = [];
  for (let byte = 0; byte < b.length; byte++) {
    if (b[byte] === 0) continue;
    for (let bit = 0; bit < 8; bit++) if (b[byte] & (1 << bit)) out.push(byte * 8 + bit);
  }
  return out;
}

/** Ports as compact text ("15020-15021,15090"), ascending, for the pod record. */
export function portRanges(ports: Iterable<number>): string {
  const sorted = [...new Set(ports)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** The inverse of portRanges. */
export function expandPortRanges(text: string): number[] {
  if (text === "") return [];
  return text.split(",").flatMap((part) => {
    const [from, to = from] = part.split("-").map(Number);
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}

export function encodeCidrKey(netns: bigint, cidr: PolicyCidr, kind: CidrKind): Buffer {
  const L = STRUCTS.cidr_key.fields;
  const b = Buffer.alloc(STRUCTS.cidr_key.size);
  const addrBits = cidr.family === 4 ? 96 + cidr.prefixLength : cidr.prefixLength;
  b.writeUInt32LE(CIDR_KEY_FIXED_BITS + addrBits, L.prefixlen.offset);
  b.writeUInt32LE(CIDR_KIND[kind], L.kind.offset);
  b.writeBigUInt64LE(netns, L.netns.offset);
  addrBytes(cidr.network).copy(b, L.addr.offset);
  return b;
}

/** A waggle_ports key back to its parts. */
export function decodePortKey(b: Buffer): { netns: bigint; kind: PortKind } {
  const L = STRUCTS.port_key.fields;
  const code = b.readUInt8(L.kind.offset);
  const kind = (Object.keys(PORT_KIND) as PortKind[]).find((k) => PORT_KIND[k] === code);
  if (kind === undefined) throw new Error(`port key kind ${code} is unknown`);
  return { netns: b.readBigUInt64LE(L.netns.offset), kind };
}

/** A pod's ports grouped by set kind (each kind is one waggle_ports entry). */
export function portSets(ports: PodPolicy["ports"]): Map<PortKind, number[]> {
  const sets = new Map<PortKind, number[]>();
  for (const { kind, port } of ports) {
    const set = sets.get(kind);
    if (set) set.push(port);
    else sets.set(kind, [port]);
  }
  return sets;
}

/** A waggle_cidrs key back to its parts (for status output). */
export function decodeCidrKey(b: Buffer): { netns: bigint; cidr: PolicyCidr; kind: CidrKind } {
  const L = STRUCTS.cidr_key.fields;
  const code = b.readUInt32LE(L.kind.offset);
  const kind = (Object.keys(CIDR_KIND) as CidrKind[]).find((k) => CIDR_KIND[k] === code);
  if (kind === undefined) throw new Error(`CIDR key kind ${code} is unknown`);
  const family = kind.endsWith("4") ? 4 : 6;
  const addrBits = b.readUInt32LE(L.prefixlen.offset) - CIDR_KEY_FIXED_BITS;
  const network = bytesAddr(b.subarray(L.addr.offset, L.addr.offset + L.addr.size));
  return {
    netns: b.readBigUInt64LE(L.netns.offset),
    cidr: { family, network, prefixLength: family === 4 ? addrBits - 96 : addrBits },
    kind,
  };
}

/** Key of waggle_ifaces: an interface of a pod with inbound capture. */
export function encodeIfaceKey(netns: bigint, ifindex: number): Buffer {
  const L = STRUCTS.iface_key.fields;
  const b = Buffer.alloc(STRUCTS.iface_key.size);
  b.writeBigUInt64LE(netns, L.netns.offset);
  b.writeUInt32LE(ifindex, L.ifindex.offset);
  return b;
}

/** Key of waggle_listeners: a pod's inbound listener of one socket family. */
export function encodeListenerKey(netns: bigint, family: 4 | 6): Buffer {
  const L = STRUCTS.listener_key.fields;
  const b = Buffer.alloc(STRUCTS.listener_key.size);
  b.writeBigUInt64LE(netns, L.netns.offset);
  b.writeUInt32LE(family === 4 ? AF.inet : AF.inet6, L.family.offset);
  return b;
}

/** Size of the Ethernet header waggle_listener's test-run input starts with. */
const ETH_HLEN = 14;

/**
 * The test-run input of waggle_listener: an Ethernet header (zero addresses, the local
 * experimental ethertype: the kernel reads nothing into it) and a struct listener_query asking
 * for the listener on `port` for `ip` of the pod.
 */
export function encodeListenerQuery(netns: bigint, ip: string, port: number): Buffer {
  const L = STRUCTS.listener_query.fields;
  const b = Buffer.alloc(ETH_HLEN + STRUCTS.listener_query.size);
  b.writeUInt16BE(0x88b5, 12);
  b.writeBigUInt64LE(netns, ETH_HLEN + L.netns.offset);
  addrBytes(ip).copy(b, ETH_HLEN + L.addr.offset);
  b.writeUInt16LE(port, ETH_HLEN + L.port.offset);
  return b;
}

export function encodeIpKey(ip: string): Buffer {
  return addrBytes(ip);
}

/** Value of waggle_pod_ips: the owning pod's netns cookie. */
export function encodeNetnsValue(netns: bigint): Buffer {
  return u64(netns);
}

export function decodeNetns(b: Buffer): bigint {
  return b.readBigUInt64LE(0);
}

/** A zeroed per-CPU value of a counters struct (pod_counters by default) for `cpus` CPUs. */
export function zeroCounters(cpus: number, struct: StructLayout = STRUCTS.pod_counters): Buffer {
  return Buffer.alloc(cpus * struct.size);
}

/** The 8-byte counters of a per-CPU value of `struct`, summed over CPUs (null: zeros). */
function sumPerCpu(value: Buffer | null, struct: StructLayout): Record<string, bigint> {
  const out = Object.fromEntries(Object.keys(struct.fields).map((n) => [n, 0n]));
  for (let base = 0; value && base + struct.size <= value.length; base += struct.size) {
    for (const [name, f] of Object.entries(struct.fields))
      out[name] += value.readBigUInt64LE(base + f.offset);
  }
  return out;
}

/**
 * A pod's counters summed over CPUs: waggle_counters' value, and waggle_bypass_counters' and
 * waggle_bypass_flow_counters' (zeros when the pod has no entry there, e.g. attached by a
 * version without the bypass or its flow control).
 */
export function sumCounters(
  value: Buffer,
  bypass: Buffer | null = null,
  flow: Buffer | null = null,
): Record<CounterName, bigint> {
  const all = {
    ...sumPerCpu(value, STRUCTS.pod_counters),
    ...sumPerCpu(bypass, STRUCTS.bypass_counters),
    ...sumPerCpu(flow, STRUCTS.bypass_flow_counters),
  };
  return Object.fromEntries(COUNTER_NAMES.map((n) => [n, all[n]])) as Record<CounterName, bigint>;
}

/** One map entry to write for a pod. */
export interface MapEntry {
  map: (typeof MAP_NAMES)[keyof typeof MAP_NAMES];
  key: Buffer;
  value: Buffer;
}

/**
 * Every entry a pod's policy needs, counters excluded (their value size depends on the CPU
 * count). The policy entry comes LAST so programs never see a policy whose sets are not
 * complete yet (they do nothing for a netns without a policy).
 */
export function policyEntries(netns: bigint, p: PodPolicy): MapEntry[] {
  const one = Buffer.from([1]);
  return [
    ...[...portSets(p.ports)].map(([kind, ports]) => ({
      map: MAP_NAMES.ports,
      key: encodePortKey(netns, kind),
      value: encodePortSet(ports),
    })),
    ...p.cidrs.map((e) => ({
      map: MAP_NAMES.cidrs,
      key: encodeCidrKey(netns, e.cidr, e.kind),
      value: one,
    })),
    ...p.localAddresses.map((ip) => ({
      map: MAP_NAMES.podIps,
      key: encodeIpKey(ip),
      value: encodeNetnsValue(netns),
    })),
    ...p.inboundIfindexes.map((ifindex) => ({
      map: MAP_NAMES.ifaces,
      key: encodeIfaceKey(netns, ifindex),
      value: one,
    })),
    { map: MAP_NAMES.policy, key: netnsKey(netns), value: encodePolicy(p) },
  ];
}
