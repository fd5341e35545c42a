// A pod's redirect settings as the datapath's policy: the flags, port sets and CIDR sets the
// programs look up (bpf/include/waggle/policy.h walks the contract rows over them). Every
// decision that does not depend on a single connection is made here, in TypeScript.
import { canonicalIp, cidrNetwork, parseCidr } from "../base/ip";
import { ISTIO_PORTS, type RedirectSettings } from "../mesh/redirect-settings";
import { type CidrKind, EXCLUDED_INTERFACE_ROUTES, POLICY, type PortKind } from "./layout";

/** A CIDR split into family, network address and prefix length. */
export interface PolicyCidr {
  family: 4 | 6;
  /** The network address (host bits cleared), canonical text. */
  network: string;
  prefixLength: number;
}

/** What the programs need to know about one pod. */
export interface PodPolicy {
  flags: number;
  proxyUid: number;
  proxyGid: number;
  outboundPort: number;
  inboundPort: number;
  dnsPort: number;
  tunnelPort: number;
  /** The pod's first IPv4 / IPv6 address ("" when none): source for redirected sockets. */
  sourceV4: string;
  sourceV6: string;
  ports: { kind: PortKind; port: number }[];
  cidrs: { kind: CidrKind; cidr: PolicyCidr }[];
  /**
   * X1 inbound: the interfaces (ifindex) whose arriving traffic is captured: every interface
   * of the pod but lo and excludeInterfaces, as istio-iptables' PREROUTING rules see them.
   */
  inboundIfindexes: number[];
  /** The pod's addresses from CNI (no prefix length). */
  podIPs: string[];
  /**
   * Every address keyed in waggle_pod_ips: podIPs plus the other global addresses of the
   * pod's interfaces (inbound lookup, "local destination").
   */
  localAddresses: string[];
}

/** Pod IPs as CNI reports them ("10.1.2.3/24" or "10.1.2.3") -> bare addresses, validated. */
export function bareIPs(podIPs: readonly string[]): string[] {
  const out: string[] = [];
  for (const text of podIPs) {
    const slash = text.indexOf("/");
    const ip = slash < 0 ? text : text.slice(0, slash);
    const canonical = canonicalIp(ip); // throws naming the bad value
    if (!out.includes(canonical)) out.push(canonical);
  }
  return out;
}

/** "10.1.2.3/8" -> { family 4, network "10.0.0.0", prefixLength 8 }. */
export function policyCidr(text: string): PolicyCidr {
  const cidr = parseCidr(text);
  return { family: cidr.family, network: cidrNetwork(cidr), prefixLength: cidr.prefixLength };
}

/**
 * istio-iptables' HasLoopBackIP: the range's address AS WRITTEN is a loopback address
 * (127.x.x.x, ::1). Only such a range skips O4; a catch-all that merely contains loopback
 * (0.0.0.0/0, ::/0) does not.
 */
export function isLoopbackRange(text: string): boolean {
  const { address, family } = parseCidr(text);
  return family === 4 ? address.startsWith("127.") : canonicalIp(address) === "::1";
}

/**
 * Whether IPv6 is captured for the pod: istio-iptables writes ip6tables rules only when the
 * pod has an IPv6 address and either ISTIO_DUAL_STACK is on or the pod has no IPv4 address
 * (without dual stack it looks at the pod's first address only).
 */
export function ipv6Enabled(s: RedirectSettings, podIPs: readonly string[]): boolean {
  const hasV4 = podIPs.some((ip) => !ip.includes(":"));
  const hasV6 = podIPs.some((ip) => ip.includes(":"));
  return hasV6 && (s.dualStack || !hasV4);
}

/** Addresses every pod has (never keyed by address): 127/8, ::1, ::6, link-local. */
export function isLoopbackLike(ip: string): boolean {
  if (!ip.includes(":")) return ip.startsWith("127.");
  const text = canonicalIp(ip);
  // link-local, fe80::/10: a first group of fe80 to febf (canonical text: four hex digits)
  return text === "::1" || text === "::6" || /^fe[89ab][0-9a-f]:/.test(text);
}

export interface PolicyInput {
  settings: RedirectSettings;
  podIPs: readonly string[];
  /** The pod's interfaces at attach time (inbound capture per interface, X1). */
  interfaces?: readonly { ifname: string; ifindex: number }[];
  /** Other global addresses of the pod's interfaces. */
  localAddresses?: readonly string[];
  /**
   * Extra outbound exclusions, e.g. the destinations routed through excludeInterfaces
   * (resolved at attach time, see interfaces.ts).
   */
  extraExcludeCidrs?: readonly string[];
}

/** The pod's policy. Throws an Error naming the offending value on invalid input. */
export function podPolicy({
  settings: s,
  podIPs,
  interfaces = [],
  localAddresses = [],
  extraExcludeCidrs = [],
}: PolicyInput): PodPolicy {
  const ips = bareIPs(podIPs);
  const locals = bareIPs([...ips, ...localAddresses]).filter((ip) => !isLoopbackLike(ip));
  const v4 = ips.filter((ip) => !ip.includes(":"));
  const v6 = ips.filter((ip) => ip.includes(":"));
  let flags = 0;
  const ports: PodPolicy["ports"] = [];
  const cidrs: PodPolicy["cidrs"] = [];

  for (const [name, value] of [
    ["proxyUid", s.proxyUid],
    ["proxyGid", s.proxyGid],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new Error(`${name} ${value} is not a uid/gid`);
    }
  }
  if (extraExcludeCidrs.length > EXCLUDED_INTERFACE_ROUTES) {
    throw new Error(
      `${extraExcludeCidrs.length} destinations are routed through the excluded interfaces (${s.excludeInterfaces.join(", ")}); at most ${EXCLUDED_INTERFACE_ROUTES}`,
    );
  }
  const ipv6 = ipv6Enabled(s, ips);
  if (ipv6) flags |= POLICY.IPV6;

  const addPorts = (list: readonly number[], kind: PortKind, flag: number) => {
    for (const port of new Set(list)) {
      if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
        throw new Error(`port ${port} is not in 0-65535`);
      }
      ports.push({ kind, port });
    }
    if (list.length > 0) flags |= flag;
  };
  const addCidrs = (list: readonly string[], include: boolean) => {
    const seen = new Set<string>();
    for (const text of list) {
      const cidr = policyCidr(text);
      const id = `${cidr.network}/${cidr.prefixLength}`;
      if (seen.has(id)) continue;
      seen.add(id);
      const kind: CidrKind = include
        ? cidr.family === 4
          ? "outInclude4"
          : "outInclude6"
        : cidr.family === 4
          ? "outExclude4"
          : "outExclude6";
      cidrs.push({ kind, cidr });
      flags |= include ? POLICY.OUT_INCLUDE_CIDRS : POLICY.OUT_EXCLUDE_CIDRS;
      if (include && isLoopbackRange(text)) flags |= POLICY.NO_LOCAL_RULE;
    }
  };

  // outbound
  if (s.outbound.includeIPRanges === "*") flags |= POLICY.OUT_INCLUDE_ALL;
  else addCidrs(s.outbound.includeIPRanges, true);
  addCidrs([...s.outbound.excludeIPRanges, ...extraExcludeCidrs], false);
  addPorts(s.outbound.includePorts, "outInclude", POLICY.OUT_INCLUDE_PORTS);
  addPorts(s.outbound.excludePorts, "outExclude", POLICY.OUT_EXCLUDE_PORTS);

  // inbound
  if (s.inbound.includePorts === "*") {
    flags |= POLICY.IN_ALL;
    addPorts(s.inbound.excludePorts, "inExclude", 0);
  } else if (s.inbound.includePorts.length > 0) {
    flags |= POLICY.IN_LIST;
    addPorts(s.inbound.includePorts, "inInclude", 0);
  }

  // DNS
  if (s.dnsCapture) {
    flags |= POLICY.DNS;
    if (ipv6) flags |= POLICY.DNS_IPV6;
  }

  // socket bypass opt-out (waggle.io/socket-bypass: "false")
  if (s.socketBypass === false) flags |= POLICY.NO_BYPASS;

  return {
    flags,
    proxyUid: s.proxyUid,
    proxyGid: s.proxyGid,
    outboundPort: ISTIO_PORTS.outboundCapture,
    inboundPort: ISTIO_PORTS.inboundCapture,
    dnsPort: ISTIO_PORTS.dnsCapture,
    tunnelPort: ISTIO_PORTS.tunnel,
    sourceV4: v4[0] ?? "",
    sourceV6: v6[0] ?? "",
    ports,
    cidrs,
    inboundIfindexes: interfaces
      .filter((i) => i.ifname !== LOOPBACK_IFNAME && !s.excludeInterfaces.includes(i.ifname))
      .map((i) => i.ifindex),
    podIPs: ips,
    localAddresses: locals,
  };
}

/** Loopback traffic is the pod's own: never inbound capture (PREROUTING never sees it). */
const LOOPBACK_IFNAME = "lo";

/** The flags as names, for status output. */
export function flagNames(flags: number): string[] {
  return Object.entries(POLICY)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name);
}
