// The iptables baseline: the rules istio-iptables writes into a pod's netns in REDIRECT
// mode (as istio-cni runs it: DNS capture means "capture all DNS"), rendered from waggle's
// RedirectSettings and applied with iptables-restore. The differential tests and the
// benchmark use this as the reference implementation of the capture contract.
//
// Rule order and shapes follow istio-iptables (tools/istio-iptables/pkg/capture, as of
// Istio 1.27/master) so that behaviour, not just intent, matches:
//   nat PREROUTING  -i <excluded if> RETURN; -p tcp -> ISTIO_INBOUND (when inbound capture is on)
//   nat OUTPUT      -o <excluded if> RETURN; -> ISTIO_OUTPUT
//   ISTIO_INBOUND   15008 RETURN; excluded ports RETURN + rest -> ISTIO_IN_REDIRECT ("*"),
//                   or listed ports -> ISTIO_IN_REDIRECT
//   ISTIO_OUTPUT    excluded ports RETURN (tcp and udp); -o lo -s 127.0.0.6 RETURN;
//                   per proxy uid then gid: to a local address other than 127.0.0.1 ->
//                   ISTIO_IN_REDIRECT (uid: not to 53/15008 with DNS, gid: not to 15008),
//                   other owners' loopback traffic RETURN (unless a loopback range is
//                   included), the proxy's own traffic RETURN;
//                   [DNS] -> ISTIO_OUTPUT_DNS; -d 127.0.0.1 RETURN; excluded CIDRs RETURN;
//                   included ports -> ISTIO_REDIRECT; included CIDRs (or all) -> ISTIO_REDIRECT
//   ISTIO_REDIRECT / ISTIO_IN_REDIRECT / ISTIO_OUTPUT_DNS: REDIRECT to 15001 / 15006 / 15053
//   raw (DNS only): conntrack zones that keep the app<->agent and agent<->upstream UDP flows
//                   apart (zone 2 / zone 1), so each DNS reply is un-NATed by the right entry.
//
// IPv6 rules exist only when istio-iptables would enable IPv6 for the pod: the pod has an
// IPv6 address and either it has no IPv4 address or dual stack is on (istio-iptables looks
// at the pod's first address unless ISTIO_DUAL_STACK is set). IPv6 also puts ::6/128 on lo,
// the inbound passthrough source.
//
// Backend: iptables-nft (nf_tables), the host's default iptables 1.8.9 and what istio-cni
// picks on a host without legacy rules. Both families always use the nft binaries.

import { isIPv4, isIPv6 } from "node:net";
import { ISTIO_PORTS, type RedirectSettings } from "../../mesh/redirect-settings";
import type { CaptureMode } from "./capture-lab";
import { runChecked } from "./command";
import type { Pod } from "./pod";

export const IPTABLES_RESTORE = { 4: "iptables-nft-restore", 6: "ip6tables-nft-restore" } as const;
export const IPTABLES_SAVE = { 4: "iptables-nft-save", 6: "ip6tables-nft-save" } as const;

/** The pod addresses istio-iptables looks at. */
export interface PodAddresses {
  ipv4?: string;
  ipv6?: string;
}

export interface RenderedIptables {
  /** iptables-restore input (always present: istio-iptables always writes IPv4 rules). */
  v4: string;
  /** ip6tables-restore input, or null when IPv6 is not enabled for this pod. */
  v6: string | null;
}

type Family = 4 | 6;
type Table = "nat" | "raw";

interface Rule {
  families: readonly Family[];
  table: Table;
  chain: string;
  args: string[];
}

const BUILTIN_CHAINS = new Set(["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "FORWARD"]);
const BUILTIN_TARGETS = new Set([
  "RETURN",
  "ACCEPT",
  "DROP",
  "REDIRECT",
  "CT",
  "MARK",
  "TPROXY",
  "CONNMARK",
]);
const BOTH: readonly Family[] = [4, 6];

/** The loopback address istio-iptables treats as "the proxy's own listeners" per family. */
const LOOPBACK_HOST = { 4: "127.0.0.1/32", 6: "::1/128" } as const;
/** The inbound passthrough source address per family (row O2). */
const PASSTHROUGH_SOURCE = { 4: "127.0.0.6/32", 6: "::6/128" } as const;

function cidrFamily(cidr: string): Family {
  const [address, prefix, extra] = cidr.split("/");
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : undefined;
  const max = family === 4 ? 32 : 128;
  if (
    family === undefined ||
    extra !== undefined ||
    (prefix !== undefined && !/^\d+$/.test(prefix)) ||
    Number(prefix) > max
  ) {
    throw new Error(`invalid CIDR ${JSON.stringify(cidr)} in redirect settings`);
  }
  return family;
}

/** True for a range whose address is a loopback address (istio-iptables' HasLoopBackIP). */
function isLoopbackRange(cidr: string): boolean {
  const address = cidr.split("/")[0];
  return cidrFamily(cidr) === 4
    ? address.split(".")[0] === "127"
    : address === "::1" || address === "0:0:0:0:0:0:0:1";
}

function checkPorts(what: string, ports: readonly number[]): void {
  for (const p of ports) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`invalid port ${p} in ${what}`);
  }
}

function checkSettings(s: RedirectSettings): void {
  if (s.interceptionMode !== "REDIRECT") {
    throw new Error(`the iptables baseline renders REDIRECT mode only, not ${s.interceptionMode}`);
  }
  for (const [what, id] of [
    ["proxyUid", s.proxyUid],
    ["proxyGid", s.proxyGid],
  ] as const) {
    if (!Number.isInteger(id) || id < 0) throw new Error(`invalid ${what} ${id}`);
  }
  checkPorts("outbound.includePorts", s.outbound.includePorts);
  checkPorts("outbound.excludePorts", s.outbound.excludePorts);
  checkPorts("inbound.excludePorts", s.inbound.excludePorts);
  if (s.inbound.includePorts !== "*") checkPorts("inbound.includePorts", s.inbound.includePorts);
  for (const ifname of s.excludeInterfaces) {
    if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(ifname))
      throw new Error(`invalid interface name ${JSON.stringify(ifname)}`);
  }
}

/** Whether istio-iptables enables IPv6 (ip6tables rules, ::6 on lo) for a pod. */
export function ipv6Enabled(settings: RedirectSettings, pod: PodAddresses): boolean {
  return pod.ipv6 !== undefined && (settings.dualStack || pod.ipv4 === undefined);
}

/** The rules istio-iptables would write for these settings, in its order. */
function istioRules(s: RedirectSettings): Rule[] {
  const rules: Rule[] = [];
  // A rule's arguments are written as iptables would print them; no argument contains a space.
  const add = (table: Table, chain: string, args: string, families: readonly Family[] = BOTH) =>
    rules.push({ families, table, chain, args: args.split(" ") });
  const perFamily = (table: Table, chain: string, args: (f: Family) => string) => {
    for (const f of BOTH) add(table, chain, args(f), [f]);
  };
  const { tunnel, outboundCapture, inboundCapture, dnsCapture } = ISTIO_PORTS;
  const owners = [
    ["--uid-owner", s.proxyUid],
    ["--gid-owner", s.proxyGid],
  ] as const;
  const dns = s.dnsCapture;
  const includeRanges = s.outbound.includeIPRanges;
  const loopbackIncluded = includeRanges !== "*" && includeRanges.some(isLoopbackRange);

  // X1: traffic through an excluded interface never enters the Istio chains.
  for (const ifname of s.excludeInterfaces) {
    add("nat", "PREROUTING", `-i ${ifname} -j RETURN`);
    add("nat", "OUTPUT", `-o ${ifname} -j RETURN`);
  }

  add("nat", "ISTIO_INBOUND", `-p tcp --dport ${tunnel} -j RETURN`); // I2
  add("nat", "ISTIO_REDIRECT", `-p tcp -j REDIRECT --to-ports ${outboundCapture}`);
  add("nat", "ISTIO_IN_REDIRECT", `-p tcp -j REDIRECT --to-ports ${inboundCapture}`);

  // Inbound: I3-I6.
  const inbound = s.inbound.includePorts;
  if (inbound === "*" || inbound.length > 0) {
    add("nat", "PREROUTING", "-p tcp -j ISTIO_INBOUND");
    if (inbound === "*") {
      for (const port of s.inbound.excludePorts)
        add("nat", "ISTIO_INBOUND", `-p tcp --dport ${port} -j RETURN`);
      add("nat", "ISTIO_INBOUND", "-p tcp -j ISTIO_IN_REDIRECT");
    } else {
      for (const port of inbound)
        add("nat", "ISTIO_INBOUND", `-p tcp --dport ${port} -j ISTIO_IN_REDIRECT`);
    }
  }

  // Outbound.
  add("nat", "OUTPUT", "-j ISTIO_OUTPUT");
  for (const port of s.outbound.excludePorts) {
    add("nat", "ISTIO_OUTPUT", `-p tcp --dport ${port} -j RETURN`); // O1
    add("nat", "ISTIO_OUTPUT", `-p udp --dport ${port} -j RETURN`);
  }
  perFamily("nat", "ISTIO_OUTPUT", (f) => `-o lo -s ${PASSTHROUGH_SOURCE[f]} -j RETURN`); // O2

  for (const [owner, id] of owners) {
    // O3: the proxy calling a local address other than 127.0.0.1 (its own pod IP) goes inbound.
    // With DNS on, istio-iptables excludes 53 and 15008 for the uid but only 15008 for the gid.
    const ports =
      dns && owner === "--uid-owner"
        ? `-m multiport ! --dports 53,${tunnel}`
        : `! --dport ${tunnel}`;
    perFamily(
      "nat",
      "ISTIO_OUTPUT",
      (f) =>
        `-o lo ! -d ${LOOPBACK_HOST[f]} -p tcp ${ports} -m owner ${owner} ${id} -j ISTIO_IN_REDIRECT`,
    );
    // O4: anybody else's local traffic stays local (with DNS on: except TCP to 53, and UDP).
    if (!loopbackIncluded) {
      const what = dns ? "-o lo -p tcp ! --dport 53" : "-o lo";
      add("nat", "ISTIO_OUTPUT", `${what} -m owner ! ${owner} ${id} -j RETURN`);
    }
    add("nat", "ISTIO_OUTPUT", `-m owner ${owner} ${id} -j RETURN`); // O5
  }

  if (dns) {
    // D1, D2: every DNS query of a non-proxy process, whatever its destination.
    add("raw", "OUTPUT", "-j ISTIO_OUTPUT_DNS");
    add("nat", "ISTIO_OUTPUT", "-j ISTIO_OUTPUT_DNS");
    add("nat", "ISTIO_OUTPUT_DNS", `-p tcp --dport 53 -j REDIRECT --to-ports ${dnsCapture}`);
    add("nat", "ISTIO_OUTPUT_DNS", `-p udp --dport 53 -j REDIRECT --to-ports ${dnsCapture}`);
    for (const [owner, id] of owners) {
      add("raw", "ISTIO_OUTPUT_DNS", `-p udp --dport 53 -m owner ${owner} ${id} -j CT --zone 1`);
      add(
        "raw",
        "ISTIO_OUTPUT_DNS",
        `-p udp --sport ${dnsCapture} -m owner ${owner} ${id} -j CT --zone 2`,
      );
    }
    add("raw", "PREROUTING", "-j ISTIO_INBOUND");
    add("raw", "ISTIO_OUTPUT_DNS", "-p udp --dport 53 -j CT --zone 2");
    add("raw", "ISTIO_INBOUND", "-p udp --sport 53 -j CT --zone 1");
  }

  perFamily("nat", "ISTIO_OUTPUT", (f) => `-d ${LOOPBACK_HOST[f]} -j RETURN`); // O6
  for (const cidr of s.outbound.excludeIPRanges)
    add("nat", "ISTIO_OUTPUT", `-d ${cidr} -j RETURN`, [cidrFamily(cidr)]); // O7
  for (const port of s.outbound.includePorts)
    add("nat", "ISTIO_OUTPUT", `-p tcp --dport ${port} -j ISTIO_REDIRECT`); // O8
  if (includeRanges === "*") {
    add("nat", "ISTIO_OUTPUT", "-j ISTIO_REDIRECT"); // O9
  } else {
    for (const cidr of includeRanges)
      add("nat", "ISTIO_OUTPUT", `-d ${cidr} -j ISTIO_REDIRECT`, [cidrFamily(cidr)]);
  }
  return rules;
}

/** iptables-restore input for one family: per table, the chains to create, rules, COMMIT. */
function restoreInput(rules: readonly Rule[], family: Family): string {
  const lines: string[] = [];
  for (const table of ["nat", "raw"] as const) {
    const tableRules = rules.filter((r) => r.table === table && r.families.includes(family));
    if (tableRules.length === 0) continue;
    const chains = new Set<string>();
    for (const r of tableRules) {
      const target = r.args[r.args.indexOf("-j") + 1];
      for (const chain of [r.chain, target]) {
        if (!BUILTIN_CHAINS.has(chain) && !BUILTIN_TARGETS.has(chain)) chains.add(chain);
      }
    }
    lines.push(`*${table}`, ...[...chains].map((c) => `-N ${c}`));
    lines.push(...tableRules.map((r) => ["-A", r.chain, ...r.args].join(" ")), "COMMIT");
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Renders the iptables-restore / ip6tables-restore inputs istio-iptables would apply for a
 * pod. Throws on settings it cannot render (bad CIDR, port or interface; TPROXY mode).
 */
export function renderIstioIptables(
  settings: RedirectSettings,
  pod: PodAddresses,
): RenderedIptables {
  checkSettings(settings);
  const rules = istioRules(settings);
  return {
    v4: restoreInput(rules, 4),
    v6: ipv6Enabled(settings, pod) ? restoreInput(rules, 6) : null,
  };
}

export interface AppliedIptables extends RenderedIptables {
  /** Wall time of the whole apply (::6 address plus both restores), in milliseconds. */
  applyMs: number;
}

async function restore(pod: Pod, family: Family, input: string, noflush: boolean): Promise<void> {
  await runChecked(
    "nsenter",
    [`--net=${pod.netnsPath}`, IPTABLES_RESTORE[family], ...(noflush ? ["--noflush"] : [])],
    {
      input,
    },
  );
}

/**
 * Applies the baseline inside the pod's netns the way istio-cni does (enter the netns, run
 * iptables-restore --noflush; IPv6 also adds ::6/128 to lo) and times it. Invalid settings
 * throw before anything is applied. When a step fails, nothing half-done stays: the pod's nat
 * and raw tables are flushed again (a test pod's tables hold only these rules).
 */
export async function applyIstioIptables(
  pod: Pod,
  settings: RedirectSettings,
): Promise<AppliedIptables> {
  const rendered = renderIstioIptables(settings, pod);
  const start = process.hrtime.bigint();
  try {
    await restore(pod, 4, rendered.v4, true);
    if (rendered.v6 !== null) {
      await pod.ip(["addr", "replace", "::6/128", "dev", "lo"]);
      await restore(pod, 6, rendered.v6, true);
    }
  } catch (e) {
    await removeIstioIptables(pod);
    throw e;
  }
  const applyMs = Number(process.hrtime.bigint() - start) / 1e6;
  return { ...rendered, applyMs };
}

/** Removes every nat and raw rule and chain from the pod's netns (only the pod's own tables). */
export async function removeIstioIptables(pod: Pod): Promise<void> {
  const empty = "*nat\nCOMMIT\n*raw\nCOMMIT\n";
  await restore(pod, 4, empty, false);
  await restore(pod, 6, empty, false);
  await pod.ip(["addr", "del", "::6/128", "dev", "lo"]).catch(() => {});
}

/** iptables-save of the pod's netns for one family (for diagnostics and tests). */
export function saveIptables(pod: Pod, family: Family): Promise<string> {
  return runChecked("nsenter", [`--net=${pod.netnsPath}`, IPTABLES_SAVE[family]]);
}

/**
 * The iptables baseline as a capture mode (capture-lab.ts): setup applies the rules to the
 * pod's netns and records the apply time; teardown removes them. One pod at a time.
 */
export class IptablesCaptureMode implements CaptureMode {
  readonly name = "iptables";
  /** Every setup's apply time in ms, in order (the per-pod setup cost). */
  readonly applyMs: number[] = [];
  private pod: Pod | undefined;

  async setup(pod: Pod, settings: RedirectSettings): Promise<void> {
    if (this.pod) throw new Error(`iptables mode is still set up on ${this.pod.name}`);
    const applied = await applyIstioIptables(pod, settings);
    this.pod = pod;
    this.applyMs.push(applied.applyMs);
  }

  async teardown(): Promise<void> {
    const pod = this.pod;
    this.pod = undefined;
    if (pod) await removeIstioIptables(pod);
  }
}
