// The capture contract (docs/capture-contract.md) as data: one scenario per contract row and
// variant, each probing real sockets and stating where every connection must land and what
// SO_ORIGINAL_DST must say. capture-lab.ts runs them under a capture mode (iptables baseline,
// waggle).
//
// Expected outcomes are what REAL istio-iptables rules do on this kernel (the differential
// tests' truth). Where that differs from the contract's wording, the probe carries a
// `discrepancy` note; the list is also in DISCREPANCIES below.

import { defaultRedirectSettings, type RedirectSettings } from "../../mesh/redirect-settings";
import type { Proto } from "./sockprobe";

export type Family = 4 | 6;

/** Contract rows, plus V (the istio-validation probe) and P (per-pod parameters). */
export type ContractRow =
  | "O1"
  | "O2"
  | "O3"
  | "O4"
  | "O5"
  | "O6"
  | "O7"
  | "O8"
  | "O9"
  | "O10"
  | "D1"
  | "D2"
  | "I1"
  | "I2"
  | "I3"
  | "I4"
  | "I5"
  | "I6"
  | "X1"
  | "V"
  | "P";

/** Where sockets live: the meshed pod under test, two unmeshed pods and the node. */
export type Role = "pod" | "peer" | "peer2" | "node";

/** Symbolic addresses, resolved per family by the lab (LAB_ADDRESSES). */
export type HostRef =
  | "pod" // the meshed pod's IP
  | "peer" // an unmeshed pod on the same node
  | "peer2" // a second unmeshed pod
  | "loopback" // 127.0.0.1 / ::1
  | "loopbackOther" // 127.0.0.5 (IPv4 only: IPv6 has one loopback address)
  | "passthrough" // 127.0.0.6 / ::6, the proxy's inbound passthrough source
  | "unspecified" // 0.0.0.0 / ::, which connect() takes for the local host
  | "net1Pod" // the pod's address on its second interface net1
  | "net1Node"; // the node's address on the other end of net1

export const LAB_ADDRESSES: Record<HostRef, Record<Family, string | undefined>> = {
  pod: { 4: "10.0.0.10", 6: "fd00::10" },
  peer: { 4: "10.0.0.2", 6: "fd00::2" },
  peer2: { 4: "10.0.0.3", 6: "fd00::3" },
  loopback: { 4: "127.0.0.1", 6: "::1" },
  loopbackOther: { 4: "127.0.0.5", 6: undefined },
  passthrough: { 4: "127.0.0.6", 6: "::6" },
  unspecified: { 4: "0.0.0.0", 6: "::" },
  net1Pod: { 4: "10.200.0.2", 6: "fd10::2" },
  net1Node: { 4: "10.200.0.1", 6: "fd10::1" },
};

/** Prefix lengths of net1's subnet per family. */
export const NET1_PREFIX: Record<Family, number> = { 4: 24, 6: 64 };

/**
 * Who runs a client. Resolved against the pod's settings: "proxy" is the proxy uid and gid,
 * "proxyGid" another uid (1000) with the proxy gid, "proxyGroup" uid/gid 1000 with the proxy
 * gid only as a supplementary group, "istioDefault" uid/gid 1337 whatever the settings say.
 */
export type ClientRef = "app" | "root" | "proxy" | "proxyGid" | "proxyGroup" | "istioDefault";

/** Listener names are "<role>:<kind>"; the lab binds them (see capture-lab.ts). */
export type ListenerKind = "app" | "outbound" | "inbound" | "dns" | "tunnel" | "agent";
export type ListenerRef = `${Role}:${ListenerKind}`;

export interface Endpoint {
  host: HostRef;
  port: number;
}

export interface Expectation {
  /** The listener that accepts (TCP) or answers (UDP), or the client's failure. */
  lands: ListenerRef | "refused" | "timeout";
  /**
   * TCP: what SO_ORIGINAL_DST returns on the accepted socket. An Endpoint for redirected
   * connections; "connection-dst" when it returns the accepted socket's own local address
   * (conntrack is active in a pod with iptables NAT rules, so un-NATed connections have an
   * entry); "ENOENT" when the listener's netns has no conntrack entry for it.
   */
  originalDst?: Endpoint | "connection-dst" | "ENOENT";
  /** UDP: the source address of the reply as the client sees it. */
  replyFrom?: Endpoint;
}

export interface ScenarioProbe {
  /** Where the client runs. */
  from: Role;
  as: ClientRef;
  proto: Proto;
  /** Bind the client socket to this address first (port 0). */
  bind?: HostRef;
  to: Endpoint;
  expect: Expectation;
  /** Set when real iptables behaviour differs from the contract's text: what and why. */
  discrepancy?: string;
}

export interface CaptureScenario {
  /** Unique, starts with the row: "O3 the proxy calling its own pod IP lands on 15006 (IPv4)". */
  name: string;
  row: ContractRow;
  family: Family;
  /** The meshed pod's settings. */
  settings: RedirectSettings;
  probes: ScenarioProbe[];
}

// ---------------------------------------------------------------------------------------
// Building blocks.

type SettingsPatch = (s: RedirectSettings, f: Family) => void;

interface ScenarioTemplate {
  row: ContractRow;
  title: string;
  /** Default: both. */
  families?: readonly Family[];
  settings?: SettingsPatch;
  probes: (f: Family) => ScenarioProbe[];
}

const at = (host: HostRef, port: number): Endpoint => ({ host, port });
const cidr = (host: HostRef, f: Family) => `${LAB_ADDRESSES[host][f]}/${f === 4 ? 32 : 128}`;

/** A connection redirected to a proxy listener, SO_ORIGINAL_DST = where it was going. */
const redirectedTo = (lands: ListenerRef, host: HostRef, port: number): Expectation => ({
  lands,
  originalDst: at(host, port),
});
/** An untouched connection that lands in the meshed pod (conntrack active there). */
const localUntouched = (lands: ListenerRef): Expectation => ({
  lands,
  originalDst: "connection-dst",
});
/** An untouched connection that lands in an unmeshed sandbox (no conntrack there). */
const remoteUntouched = (lands: ListenerRef): Expectation => ({ lands, originalDst: "ENOENT" });

function tcp(
  from: Role,
  as: ClientRef,
  to: Endpoint,
  expect: Expectation,
  extra: Partial<ScenarioProbe> = {},
): ScenarioProbe {
  return { from, as, proto: "tcp", to, expect, ...extra };
}
/** A UDP probe answered by `lands`; the reply must come from `replyFrom` (default: the destination). */
function udp(
  from: Role,
  as: ClientRef,
  to: Endpoint,
  lands: ListenerRef,
  replyFrom: Endpoint = to,
): ScenarioProbe {
  return { from, as, proto: "udp", to, expect: { lands, replyFrom } };
}

const SO_ORIGINAL_DST_ON_UNTOUCHED =
  "contract: SO_ORIGINAL_DST fails with ENOENT for connections that were not redirected; " +
  "iptables: the pod's nat rules make conntrack track every connection, so it returns the " +
  "connection's own destination";
const TUNNEL_PORT_ALWAYS_EXCLUDED =
  "contract: with DNS off, O3 redirects the proxy's local calls on every port; istio-iptables " +
  "excludes the tunnel port 15008 from O3 whether DNS capture is on or off";
const GID_ONLY_PROXY_STAYS_LOCAL =
  "contract: O3 sends P's local calls (P = proxy uid OR proxy gid) to 15006; istio-iptables checks " +
  "the uid rules first, and their '-o lo -m owner ! --uid-owner RETURN' returns every local " +
  "connection of another uid, so a process with the proxy gid but another uid stays local (as in " +
  "O4), except, with DNS capture on (that RETURN then skips port 53), TCP to a local port 53, which " +
  "the gid rule sends to 15006 (the gid rule excludes only 15008, not 53)";
const SUPPLEMENTARY_GROUP_IS_NOT_PROXY =
  "contract: 'runs as the proxy gid' is unspecific; xt_owner --gid-owner (without --suppl-groups) " +
  "matches the socket's primary (fs) gid only, so a supplementary proxy group does not make a process P";
const DUAL_STACK_OFF_MEANS_NO_IPV6 =
  "contract: with dual stack off, 'IPv6 rules only when the pod has an IPv6 address'; " +
  "istio-iptables enables IPv6 from the pod's first address, so a dual-stack pod (IPv4 first) gets " +
  "no IPv6 rules and its IPv6 traffic is not captured at all; only IPv6-only pods get them";
const LOOPBACK_RANGE_IS_A_LOOPBACK_ADDRESS =
  "contract: O4 is skipped when includeOutboundIPRanges 'contains a loopback range'; istio-iptables " +
  "skips it only when a range's own address is a loopback address (127.x.x.x/n, ::1/n), so 0.0.0.0/0 " +
  "or ::/0 (which contain loopback) keep O4";

/** Every port in a list of probes lands on the same expectation. */
function each<T>(items: readonly T[], make: (item: T) => ScenarioProbe): ScenarioProbe[] {
  return items.map(make);
}

/**
 * The meshed pod's local addresses that O3 covers (local, not 127.0.0.1): its IP, its address
 * on net1, another loopback address (IPv4 only) and the passthrough address.
 */
function localNonLoopback(f: Family): HostRef[] {
  return ["pod", "net1Pod", ...(f === 4 ? (["loopbackOther"] as const) : []), "passthrough"];
}

const dnsOn: SettingsPatch = (s) => {
  s.dnsCapture = true;
};

// ---------------------------------------------------------------------------------------
// The contract, row by row.

const TEMPLATES: ScenarioTemplate[] = [
  // Outbound.
  {
    row: "O1",
    title:
      "an excluded outbound port (default 15020) is untouched for every process, the proxy included",
    probes: () =>
      each(["app", "root", "proxy"] as const, (as) =>
        tcp("pod", as, at("peer", 15020), remoteUntouched("peer:app")),
      ),
  },
  {
    row: "O1",
    title: "with DNS capture on, an excluded port is untouched for TCP and UDP, before DNS capture",
    settings: (s) => {
      s.dnsCapture = true;
      s.outbound.excludePorts = [15020, 53];
    },
    probes: () => [
      tcp("pod", "app", at("peer", 53), remoteUntouched("peer:app")),
      udp("pod", "app", at("peer", 53), "peer:app"),
    ],
  },
  {
    row: "O2",
    title: "a socket bound to the passthrough address calling a local address is untouched",
    probes: (f) => [
      tcp("pod", "proxy", at("pod", 8080), localUntouched("pod:app"), { bind: "passthrough" }),
      tcp("pod", "app", at("pod", 8080), localUntouched("pod:app"), { bind: "passthrough" }),
      tcp("pod", "proxy", at("loopback", 8080), localUntouched("pod:app"), { bind: "passthrough" }),
      // unbound to ::6: the kernel picks ::6 as the source (127.0.0.6 gets 127.0.0.1: O3)
      tcp(
        "pod",
        "proxy",
        at("passthrough", 8080),
        f === 6 ? localUntouched("pod:app") : redirectedTo("pod:inbound", "passthrough", 8080),
      ),
    ],
  },
  {
    row: "O3",
    title: "the proxy calling a local address other than 127.0.0.1 lands on the inbound port 15006",
    probes: (f) => [
      tcp("pod", "proxy", at("pod", 8080), redirectedTo("pod:inbound", "pod", 8080)),
      tcp("pod", "proxyGid", at("pod", 8080), localUntouched("pod:app"), {
        discrepancy: GID_ONLY_PROXY_STAYS_LOCAL,
      }),
      tcp("pod", "proxy", at("pod", 53), redirectedTo("pod:inbound", "pod", 53)),
      ...(f === 4
        ? [
            tcp(
              "pod",
              "proxy",
              at("loopbackOther", 8080),
              redirectedTo("pod:inbound", "loopbackOther", 8080),
            ),
          ]
        : []),
      tcp("pod", "proxy", at("pod", 15008), localUntouched("pod:tunnel"), {
        discrepancy: TUNNEL_PORT_ALWAYS_EXCLUDED,
      }),
    ],
  },
  {
    row: "O3",
    title: "with DNS capture on, the proxy's local calls to 53 and 15008 stay local (uid rule)",
    settings: dnsOn,
    probes: () => [
      tcp("pod", "proxy", at("pod", 8080), redirectedTo("pod:inbound", "pod", 8080)),
      tcp("pod", "proxy", at("pod", 53), localUntouched("pod:app")),
      tcp("pod", "proxy", at("pod", 15008), localUntouched("pod:tunnel")),
      tcp("pod", "proxyGid", at("pod", 15008), localUntouched("pod:tunnel")),
      tcp("pod", "proxyGid", at("pod", 53), redirectedTo("pod:inbound", "pod", 53), {
        discrepancy: GID_ONLY_PROXY_STAYS_LOCAL,
      }),
    ],
  },
  ...([false, true] as const).map(
    (dns): ScenarioTemplate => ({
      row: "O3",
      title: `the proxy's own calls to every local address on the HBONE port 15008 are never sent to 15006 (DNS capture ${dns ? "on" : "off"})`,
      settings: (s) => {
        s.dnsCapture = dns;
      },
      probes: (f) => [
        ...localNonLoopback(f).flatMap((host) => [
          tcp("pod", "proxy", at(host, 15008), localUntouched("pod:tunnel"), {
            discrepancy: dns ? undefined : TUNNEL_PORT_ALWAYS_EXCLUDED,
          }),
          tcp("pod", "proxyGid", at(host, 15008), localUntouched("pod:tunnel")),
        ]),
        // control: the same addresses on another port do go to 15006, but for ::6, which
        // the kernel makes the source of an unbound socket's connection to it (O2)
        ...localNonLoopback(f)
          .filter((host) => f === 4 || host !== "passthrough")
          .map((host) =>
            tcp("pod", "proxy", at(host, 8080), redirectedTo("pod:inbound", host, 8080)),
          ),
      ],
    }),
  ),
  {
    row: "O4",
    title: "other processes calling local addresses stay local",
    probes: (f) => [
      tcp("pod", "app", at("pod", 8080), localUntouched("pod:app"), {
        discrepancy: SO_ORIGINAL_DST_ON_UNTOUCHED,
      }),
      tcp("pod", "root", at("pod", 8080), localUntouched("pod:app")),
      tcp("pod", "proxyGroup", at("pod", 8080), localUntouched("pod:app"), {
        discrepancy: SUPPLEMENTARY_GROUP_IS_NOT_PROXY,
      }),
      ...(f === 4 ? [tcp("pod", "app", at("loopbackOther", 8080), localUntouched("pod:app"))] : []),
      // the kernel routes a connect() to 0.0.0.0 / :: to localhost before the nat rules see it
      tcp("pod", "app", at("unspecified", 8080), localUntouched("pod:app")),
      udp("pod", "app", at("pod", 9999), "pod:app"),
    ],
  },
  {
    row: "O4",
    title:
      "with DNS capture on, other processes' local TCP (not to 53) and UDP (not to 53) stay local",
    settings: dnsOn,
    probes: () => [
      tcp("pod", "app", at("pod", 8080), localUntouched("pod:app")),
      udp("pod", "app", at("pod", 9999), "pod:app"),
    ],
  },
  {
    row: "O4",
    title: "skipped when includeOutboundIPRanges holds a loopback range",
    settings: (s, f) => {
      s.outbound.includeIPRanges =
        f === 4 ? ["127.0.0.0/8", cidr("peer", 4)] : ["::1/128", cidr("peer", 6)];
    },
    probes: (f) => [
      ...(f === 4
        ? [
            tcp(
              "pod",
              "app",
              at("loopbackOther", 8080),
              redirectedTo("pod:outbound", "loopbackOther", 8080),
            ),
          ]
        : []),
      tcp("pod", "app", at("pod", 8080), localUntouched("pod:app")),
      tcp("pod", "app", at("loopback", 8080), localUntouched("pod:app")),
      tcp("pod", "app", at("peer", 80), redirectedTo("pod:outbound", "peer", 80)),
      tcp("pod", "app", at("peer2", 80), remoteUntouched("peer2:app")),
    ],
  },
  {
    row: "O4",
    title: "not skipped for a catch-all range that merely contains loopback",
    settings: (s, f) => {
      s.outbound.includeIPRanges = [f === 4 ? "0.0.0.0/0" : "::/0"];
    },
    probes: () => [
      tcp("pod", "app", at("pod", 8080), localUntouched("pod:app"), {
        discrepancy: LOOPBACK_RANGE_IS_A_LOOPBACK_ADDRESS,
      }),
      tcp("pod", "app", at("peer", 80), redirectedTo("pod:outbound", "peer", 80)),
    ],
  },
  {
    row: "O5",
    title: "the proxy's own outbound traffic is untouched (by uid or by gid)",
    probes: () => [
      tcp("pod", "proxy", at("peer", 80), remoteUntouched("peer:app")),
      tcp("pod", "proxyGid", at("peer", 80), remoteUntouched("peer:app")),
      udp("pod", "proxy", at("peer", 9999), "peer:app"),
      tcp("pod", "proxyGroup", at("peer", 80), redirectedTo("pod:outbound", "peer", 80), {
        discrepancy: SUPPLEMENTARY_GROUP_IS_NOT_PROXY,
      }),
    ],
  },
  {
    row: "O6",
    title: "connections to 127.0.0.1 (::1) are untouched, the proxy's included",
    probes: () =>
      each(["app", "root", "proxy"] as const, (as) =>
        tcp("pod", as, at("loopback", 8080), localUntouched("pod:app")),
      ),
  },
  {
    row: "O7",
    title: "destinations in excludeOutboundIPRanges are untouched",
    settings: (s, f) => {
      s.outbound.excludeIPRanges = [cidr("peer", f)];
    },
    probes: () => [
      tcp("pod", "app", at("peer", 80), remoteUntouched("peer:app")),
      tcp("pod", "app", at("peer2", 80), redirectedTo("pod:outbound", "peer2", 80)),
    ],
  },
  {
    row: "O8",
    title: "TCP to a port in includeOutboundPorts lands on 15001 even with no IP range captured",
    settings: (s) => {
      s.outbound.includeIPRanges = [];
      s.outbound.includePorts = [80];
    },
    probes: () => [
      tcp("pod", "app", at("peer", 80), redirectedTo("pod:outbound", "peer", 80)),
      tcp("pod", "app", at("peer", 8080), remoteUntouched("peer:app")),
    ],
  },
  {
    row: "O9",
    title: "TCP to any destination lands on 15001 with includeOutboundIPRanges '*'",
    probes: () =>
      each(["app", "root", "istioDefault"] as const, (as) =>
        tcp(
          "pod",
          as,
          at("peer", 80),
          as === "istioDefault"
            ? remoteUntouched("peer:app")
            : redirectedTo("pod:outbound", "peer", 80),
        ),
      ),
  },
  {
    row: "O9",
    title: "TCP to a destination in includeOutboundIPRanges lands on 15001, others are untouched",
    settings: (s, f) => {
      s.outbound.includeIPRanges = [cidr("peer2", f)];
    },
    probes: () => [
      tcp("pod", "app", at("peer2", 80), redirectedTo("pod:outbound", "peer2", 80)),
      tcp("pod", "app", at("peer", 80), remoteUntouched("peer:app")),
    ],
  },
  {
    row: "O10",
    title: "UDP is untouched when DNS capture is off, port 53 included",
    probes: () => [
      udp("pod", "app", at("peer", 9999), "peer:app"),
      udp("pod", "app", at("peer", 53), "peer:app"),
    ],
  },
  {
    row: "O10",
    title: "with DNS capture on, UDP to other ports is untouched",
    settings: dnsOn,
    probes: () => [
      udp("pod", "app", at("peer", 9999), "peer:app"),
      udp("pod", "root", at("peer", 9999), "peer:app"),
    ],
  },
  // DNS.
  {
    row: "D1",
    title:
      "with DNS capture on, TCP to port 53 from non-proxy processes lands on 15053, any destination",
    settings: (s, f) => {
      s.dnsCapture = true;
      s.outbound.excludeIPRanges = [cidr("peer2", f)];
    },
    probes: () => [
      tcp("pod", "app", at("peer", 53), redirectedTo("pod:dns", "peer", 53)),
      tcp("pod", "root", at("peer", 53), redirectedTo("pod:dns", "peer", 53)),
      tcp("pod", "app", at("loopback", 53), redirectedTo("pod:dns", "loopback", 53)),
      tcp("pod", "app", at("pod", 53), redirectedTo("pod:dns", "pod", 53)),
      tcp("pod", "app", at("peer2", 53), redirectedTo("pod:dns", "peer2", 53)),
      tcp("pod", "proxy", at("peer", 53), remoteUntouched("peer:app")),
      tcp("pod", "proxyGid", at("peer", 53), remoteUntouched("peer:app")),
    ],
  },
  {
    row: "D2",
    title:
      "with DNS capture on, UDP to port 53 from non-proxy processes lands on 15053, replies from the original server",
    settings: (s, f) => {
      s.dnsCapture = true;
      s.outbound.excludeIPRanges = [cidr("peer2", f)];
    },
    probes: () => [
      udp("pod", "app", at("peer", 53), "pod:dns"),
      udp("pod", "root", at("peer", 53), "pod:dns"),
      udp("pod", "app", at("loopback", 53), "pod:dns"),
      udp("pod", "app", at("pod", 53), "pod:dns"),
      udp("pod", "app", at("peer2", 53), "pod:dns"),
      udp("pod", "proxy", at("peer", 53), "peer:app"),
      udp("pod", "proxyGid", at("peer", 53), "peer:app"),
    ],
  },
  // Inbound (clients in the peer pod or on the node).
  {
    row: "I1",
    title: "inbound UDP is untouched",
    probes: () => [
      udp("peer", "app", at("pod", 9999), "pod:app"),
      udp("peer", "app", at("pod", 53), "pod:app"),
    ],
  },
  {
    row: "I2",
    title: "inbound TCP to the tunnel port 15008 is untouched",
    probes: () => [tcp("peer", "app", at("pod", 15008), localUntouched("pod:tunnel"))],
  },
  {
    row: "I3",
    title:
      "inbound TCP to excluded ports (always 15020, 15021, 15090, plus the annotation's) is untouched",
    settings: (s) => {
      s.inbound.excludePorts = [9090, 15020, 15021, 15090];
    },
    probes: () => [
      ...each([15020, 15021, 15090], (port) =>
        tcp("peer", "app", at("pod", port), localUntouched("pod:agent")),
      ),
      tcp("peer", "app", at("pod", 9090), localUntouched("pod:app")),
      tcp("peer", "app", at("pod", 8080), redirectedTo("pod:inbound", "pod", 8080)),
    ],
  },
  {
    row: "I4",
    title: "inbound TCP to any other port lands on 15006 with the original destination",
    probes: () =>
      each([8080, 9090, 53], (port) =>
        tcp("peer", "app", at("pod", port), redirectedTo("pod:inbound", "pod", port)),
      ),
  },
  {
    row: "I4",
    title: "inbound TCP from the node lands on 15006 too",
    probes: () => [tcp("node", "root", at("pod", 8080), redirectedTo("pod:inbound", "pod", 8080))],
  },
  {
    row: "I5",
    title:
      "an explicit includeInboundPorts list captures exactly those ports; excludes are ignored",
    settings: (s) => {
      s.inbound.includePorts = [8080];
      s.inbound.excludePorts = [8080, 15020, 15021, 15090];
    },
    probes: () => [
      tcp("peer", "app", at("pod", 8080), redirectedTo("pod:inbound", "pod", 8080)),
      tcp("peer", "app", at("pod", 9090), localUntouched("pod:app")),
      tcp("peer", "app", at("pod", 15008), localUntouched("pod:tunnel")),
    ],
  },
  {
    row: "I6",
    title: "an empty includeInboundPorts captures nothing inbound",
    settings: (s) => {
      s.inbound.includePorts = [];
    },
    probes: () => [
      tcp("peer", "app", at("pod", 8080), localUntouched("pod:app")),
      tcp("peer", "app", at("pod", 9090), localUntouched("pod:app")),
      tcp("pod", "app", at("peer", 80), redirectedTo("pod:outbound", "peer", 80)),
    ],
  },
  {
    row: "X1",
    title: "traffic through an excluded interface is untouched both ways; eth0 is still captured",
    settings: (s) => {
      s.excludeInterfaces = ["net1"];
    },
    probes: () => [
      tcp("node", "root", at("net1Pod", 8080), localUntouched("pod:app")),
      tcp("pod", "app", at("net1Node", 80), remoteUntouched("node:app")),
      tcp("peer", "app", at("pod", 8080), redirectedTo("pod:inbound", "pod", 8080)),
      tcp("pod", "app", at("peer", 80), redirectedTo("pod:outbound", "peer", 80)),
    ],
  },
  {
    row: "X1",
    title: "(control) without excludeInterfaces, traffic through net1 is captured",
    probes: () => [
      tcp("node", "root", at("net1Pod", 8080), redirectedTo("pod:inbound", "net1Pod", 8080)),
      tcp("pod", "app", at("net1Node", 80), redirectedTo("pod:outbound", "net1Node", 80)),
    ],
  },
  // The istio-validation init container, run as the proxy before the proxy exists.
  {
    row: "V",
    title:
      "the validation probe (proxy, from loopback to the passthrough address port 15002) lands on 15006",
    probes: () => [
      tcp(
        "pod",
        "proxy",
        at("passthrough", 15002),
        redirectedTo("pod:inbound", "passthrough", 15002),
        { bind: "loopback" },
      ),
    ],
  },
  // Per-pod parameters.
  {
    row: "P",
    title: "the proxy uid and gid are per-pod settings, each identifying the proxy on its own",
    settings: (s) => {
      s.proxyUid = 2000;
      s.proxyGid = 3000;
    },
    probes: () => [
      tcp("pod", "proxy", at("peer", 80), remoteUntouched("peer:app")),
      tcp("pod", "proxyGid", at("peer", 80), remoteUntouched("peer:app")),
      tcp("pod", "istioDefault", at("peer", 80), redirectedTo("pod:outbound", "peer", 80)),
      tcp("pod", "proxy", at("pod", 8080), redirectedTo("pod:inbound", "pod", 8080)),
    ],
  },
  {
    row: "P",
    title: "an empty includeOutboundIPRanges disables outbound capture but not inbound",
    settings: (s) => {
      s.outbound.includeIPRanges = [];
    },
    probes: () => [
      tcp("pod", "app", at("peer", 80), remoteUntouched("peer:app")),
      tcp("peer", "app", at("pod", 8080), redirectedTo("pod:inbound", "pod", 8080)),
    ],
  },
  {
    row: "P",
    title: "with dual stack off, a dual-stack pod's IPv6 traffic is not captured",
    families: [6],
    settings: (s) => {
      s.dualStack = false;
    },
    probes: () => [
      tcp("pod", "app", at("peer", 80), remoteUntouched("peer:app"), {
        discrepancy: DUAL_STACK_OFF_MEANS_NO_IPV6,
      }),
      // No ip6tables rules, so no IPv6 conntrack in the pod either: ENOENT.
      tcp("peer", "app", at("pod", 8080), { lands: "pod:app", originalDst: "ENOENT" }),
    ],
  },
];

/** The settings of a scenario: defaults, dual stack on for IPv6 scenarios, then the patch. */
function scenarioSettings(template: ScenarioTemplate, family: Family): RedirectSettings {
  const settings = defaultRedirectSettings();
  settings.dualStack = family === 6;
  template.settings?.(settings, family);
  return settings;
}

/** Every scenario, IPv4 then IPv6 for each template. */
export const CAPTURE_SCENARIOS: readonly CaptureScenario[] = TEMPLATES.flatMap((t) =>
  (t.families ?? ([4, 6] as const)).map((family) => ({
    name: `${t.row} ${t.title} (IPv${family})`,
    row: t.row,
    family,
    settings: scenarioSettings(t, family),
    probes: t.probes(family),
  })),
);

/** Every distinct discrepancy note (contract text vs real iptables). */
export const DISCREPANCIES: readonly string[] = [
  SO_ORIGINAL_DST_ON_UNTOUCHED,
  TUNNEL_PORT_ALWAYS_EXCLUDED,
  GID_ONLY_PROXY_STAYS_LOCAL,
  SUPPLEMENTARY_GROUP_IS_NOT_PROXY,
  DUAL_STACK_OFF_MEANS_NO_IPV6,
  LOOPBACK_RANGE_IS_A_LOOPBACK_ADDRESS,
];
