// What attachPod reads from and puts into the pod's netns: its interfaces and addresses
// (rtnetlink, in-process), ::6 on lo for IPv6 passthrough, and for X1 outbound the
// destinations routed through each excluded interface: the cgroup hooks run before routing,
// so those routes are read and excluded like excludeOutboundIPRanges: at attach, and again
// whenever the installer sees the pod's netns change (follow.ts, docs/datapath.md).
import {
  ADDRESS_SCOPE,
  type NetnsInterface,
  netnsInterfaces,
  netnsReplaceAddress,
  netnsSnapshot,
} from "ebpf-napi";

interface IpRoute {
  dst: string;
  type?: string;
}

/** Unicast destinations routed via `ifname` in the netns, as CIDRs of both families. */
export function routedCidrs(netnsPath: string, ifname: string): string[] {
  const out: string[] = [];
  for (const family of ["-4", "-6"] as const) {
    let text: string;
    try {
      // required here: loading child_process costs every attach 6-8 ms, and most pods
      // exclude no interface
      const { execFileSync } = require("node:child_process") as typeof import("node:child_process");
      text = execFileSync(
        "nsenter",
        [`--net=${netnsPath}`, "ip", "-j", family, "route", "show", "table", "all", "dev", ifname],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
      );
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? "");
      if (/Cannot find device|does not exist/i.test(stderr)) return []; // no such interface
      throw new Error(`reading routes via ${ifname} in ${netnsPath} failed: ${stderr.trim()}`);
    }
    const routes = JSON.parse(text || "[]") as IpRoute[];
    for (const r of routes) {
      if (r.type !== undefined && r.type !== "unicast") continue; // local, broadcast, multicast...
      out.push(routeCidr(r.dst, family === "-4" ? 4 : 6));
    }
  }
  return [...new Set(out)];
}

/** An `ip route` destination ("default", "10.0.0.0/24", "10.0.0.5") as a CIDR. */
export function routeCidr(dst: string, family: 4 | 6): string {
  if (dst === "default") return family === 4 ? "0.0.0.0/0" : "::/0";
  if (dst.includes("/")) return dst;
  return `${dst}/${family === 4 ? 32 : 128}`;
}

/**
 * Puts ::6/128 on the pod's lo, as istio-iptables does when it enables IPv6: the proxy binds
 * it as the source of inbound passthrough (O2). Idempotent.
 */
export function addPassthroughV6(netnsPath: string): void {
  try {
    netnsReplaceAddress(netnsPath, "lo", "::6", 128);
  } catch (err) {
    throw new Error(`adding ::6/128 to lo in ${netnsPath} failed: ${(err as Error).message}`);
  }
}

export interface PodInterface {
  ifname: string;
  ifindex: number;
  /** Global-scope addresses (no prefix length). */
  addresses: string[];
}

/**
 * The interfaces of the pod's netns and their global addresses (loopback included), read
 * over rtnetlink inside the netns (no process per attach).
 */
export function podInterfaces(netnsPath: string): PodInterface[] {
  return readNetns(netnsPath, () => netnsInterfaces(netnsPath)).map(podInterface);
}

/** The netns cookie and podInterfaces' answer, from one trip into the netns. */
export function podSnapshot(netnsPath: string): { cookie: bigint; interfaces: PodInterface[] } {
  const { cookie, interfaces } = readNetns(netnsPath, () => netnsSnapshot(netnsPath));
  return { cookie, interfaces: interfaces.map(podInterface) };
}

function readNetns<T>(netnsPath: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw new Error(`listing interfaces in ${netnsPath} failed: ${(err as Error).message}`);
  }
}

function podInterface(i: NetnsInterface): PodInterface {
  return {
    ifname: i.ifname,
    ifindex: i.ifindex,
    addresses: i.addresses.filter((a) => a.scope === ADDRESS_SCOPE.global).map((a) => a.address),
  };
}
