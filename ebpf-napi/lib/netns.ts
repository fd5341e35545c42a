// Network namespaces: BPF programs attached to a whole netns (sk_lookup, flow_dissector) as
// bpf_links, test runs of a program inside a netns, and the netns's interfaces and addresses
// over rtnetlink. Every call that needs to be inside the namespace runs on a dedicated native
// thread (never the Node or libuv threads).
import { invalidArgument } from "./errors";
import { Link } from "./link";
import { native } from "./native";
import type { Program } from "./program";

/** Attach types of programs that attach to a network namespace (libbpf names). */
export type NetnsAttachType = "sk_lookup" | "flow_dissector";

/** What the kernel says about a netns link. */
export interface NetnsLinkInfo {
  /** Inode of the network namespace (stat of /proc/<pid>/ns/net); 0 once it is gone. */
  netnsIno: number;
  attachType: NetnsAttachType;
}

export interface TestRunResult {
  /** The program's return value. */
  retval: number;
  /** The packet as the program left it. */
  dataOut: Buffer;
}

/** An address of an interface, as rtnetlink reports it. */
export interface NetnsAddress {
  family: 4 | 6;
  address: string;
  prefixLength: number;
  /** RT_SCOPE_*: 0 global (universe), 200 site, 253 link, 254 host. */
  scope: number;
}

export interface NetnsInterface {
  ifindex: number;
  ifname: string;
  up: boolean;
  addresses: NetnsAddress[];
}

/** A netns's cookie and interfaces, read in one trip into it. */
export interface NetnsSnapshot {
  /** As netnsCookie reports it. */
  cookie: bigint;
  /** As netnsInterfaces reports them. */
  interfaces: NetnsInterface[];
}

/** Address scopes by name (rtnetlink's RT_SCOPE_*). */
export const ADDRESS_SCOPE = { global: 0, site: 200, link: 253, host: 254 } as const;

interface NetnsNative {
  netnsLinkCreate(progFd: number, netnsPath: string, attachType: NetnsAttachType): number;
  netnsLinkInfo(linkFd: number): NetnsLinkInfo;
  netnsQuery(netnsPath: string, attachType: NetnsAttachType): number[];
  progTestRun(progFd: number, data: Buffer, netnsPath: string | null): TestRunResult;
  netnsInterfaces(netnsPath: string): NetnsInterface[];
  netnsSnapshot(netnsPath: string): NetnsSnapshot;
  netnsReplaceAddress(
    netnsPath: string,
    ifname: string,
    address: string,
    prefixLength: number,
  ): void;
}

function netnsNative(): NetnsNative {
  return native() as unknown as NetnsNative;
}

/**
 * Attaches prog to the network namespace at netnsPath as a bpf_link (bpf_link_create on the
 * netns fd). The program must have been loaded for that attach type (SEC("sk_lookup")).
 * Like every bpf_link: close() of an unpinned link detaches it; pin() it to keep it. The
 * link goes defunct (netnsIno 0) when the namespace is destroyed.
 */
export function attachNetns(
  prog: Program,
  netnsPath: string,
  attachType: NetnsAttachType = "sk_lookup",
): Link {
  return new Link(netnsNative().netnsLinkCreate(prog.fd, netnsPath, attachType));
}

/** The netns and attach type of a netns link (BpfError EINVAL for any other kind of link). */
export function netnsLinkInfo(link: Link): NetnsLinkInfo {
  return netnsNative().netnsLinkInfo(link.fd);
}

/** Ids of the programs a netns hook runs, in run order (bpf_prog_query on the netns fd). */
export function netnsQuery(netnsPath: string, attachType: NetnsAttachType = "sk_lookup"): number[] {
  return netnsNative().netnsQuery(netnsPath, attachType);
}

/**
 * Runs prog once on `data` (BPF_PROG_TEST_RUN), inside the network namespace at
 * opts.netns when given: socket lookups with BPF_F_CURRENT_NETNS then search that namespace.
 */
export function testRun(prog: Program, data: Buffer, opts: { netns?: string } = {}): TestRunResult {
  if (!Buffer.isBuffer(data)) throw invalidArgument("bpf_prog_test_run", "data must be a Buffer");
  return netnsNative().progTestRun(prog.fd, data, opts.netns ?? null);
}

/** Every interface of the network namespace with its addresses (rtnetlink dumps). */
export function netnsInterfaces(netnsPath: string): NetnsInterface[] {
  return netnsNative().netnsInterfaces(netnsPath);
}

/**
 * The netns cookie and every interface with its addresses, from one trip into the netns (one
 * native thread and setns instead of one for netnsCookie and one for netnsInterfaces).
 */
export function netnsSnapshot(netnsPath: string): NetnsSnapshot {
  return netnsNative().netnsSnapshot(netnsPath);
}

/**
 * Puts an address on an interface of the network namespace, as `ip addr replace` does:
 * added when absent, kept when present.
 */
export function netnsReplaceAddress(
  netnsPath: string,
  ifname: string,
  address: string,
  prefixLength: number,
): void {
  netnsNative().netnsReplaceAddress(netnsPath, ifname, address, prefixLength);
}
