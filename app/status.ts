// `waggle status`: the meshed pods on this node as waggle's pins describe them (records,
// links, shared maps), each with its policy, attachments, health and counters. Gathering
// (gatherStatus: bpffs, the datapath's listPods and checkPod) is separate from summarising
// (podStatus, pure) and rendering (formatStatus, JSON), so the last two are unit-tested
// with fixture records and the first on real pods. Loads the addon and the datapath only;
// never winston or the Kubernetes client.
import { existsSync, readdirSync, statfsSync, statSync } from "node:fs";
import type { CliArgs, CliIo } from "../base/cli-io";
import {
  ALL_PROGRAMS,
  type AttachedPod,
  attachedContainerIds,
  COUNTER_NAMES,
  type CounterName,
  checkPod,
  decodeCidrKey,
  expandPortRanges,
  listPods,
  MAP_NAMES,
  mapEntryCounts,
  NETNS_PROGRAM,
  nodeBypassSettings,
  paths,
  policyCidr,
  readAllRecords,
} from "../datapath";
import { BPF_FS_MAGIC } from "./prerequisites";

/** What the pod's policy does, decoded from the map keys attachPod recorded. */
export interface PolicySummary {
  proxyUid: number;
  proxyGid: number;
  outbound: {
    /** "*": every destination; []: outbound capture off; else these CIDRs. */
    includeCidrs: "*" | string[];
    /** From the pod's settings (the excluded interfaces' routes are listed apart). */
    excludeCidrs: string[];
    includePorts: number[];
    excludePorts: number[];
  };
  inbound: {
    /** "*": every port but excludePorts; []: inbound capture off; else exactly these. */
    includePorts: "*" | number[];
    excludePorts: number[];
  };
  /** Interfaces never captured (null: a record written before they were kept). */
  excludeInterfaces: string[] | null;
  /** Destinations routed through the excluded interfaces, excluded from outbound capture. */
  excludedInterfaceCidrs: string[];
  dnsCapture: boolean;
  /** IPv6 connections are captured (dual stack on, or an IPv6-only pod). */
  ipv6Captured: boolean;
  /** The datapath's policy flags by name. */
  flags: string[];
}

/** One meshed pod. Every field is always present; null when the pins cannot tell. */
export interface PodStatus {
  containerId: string;
  pod: { namespace: string; name: string; uid?: string } | null;
  podIPs: string[];
  /** Every global address of the pod (pod IPs and its other interfaces' addresses). */
  localAddresses: string[];
  /** The pod's interface (CNI_IFNAME). */
  interface: string | null;
  netns: { path: string; cookie: string; exists: boolean } | null;
  cgroup: { path: string; exists: boolean } | null;
  attachedAt: string | null;
  policy: PolicySummary | null;
  attachments: {
    /** The cgroup programs linked (one pinned bpf_link each). */
    cgroupLinks: string[];
    /** The programs linked to the pod's netns (inbound capture, sk_lookup). */
    netnsLinks: string[];
    /** The interfaces whose arriving connections are captured inbound (X1 leaves some out). */
    inboundInterfaces: { ifname: string; ifindex: number }[];
  } | null;
  /** checkPod: ok when nothing is missing, else the problems it names. */
  health: { ok: boolean; problems: string[] };
  /** Summed over CPUs; null when the counters entry is missing. */
  counters: Record<CounterName, number> | null;
}

export interface StatusReport {
  bpfRoot: string;
  datapath: {
    /** Every shared program and map is pinned under <bpfRoot>/datapath. */
    loaded: boolean;
    /** Pins missing, relative to <bpfRoot>/datapath ("progs/waggle_connect4", "maps/..."). */
    missing: string[];
    /** Entries per shared map (null when the maps are not all pinned). */
    mapEntries: Record<string, number> | null;
    /** The node's socket bypass switch as the programs read it (absent: maps not pinned). */
    socketBypass?: boolean;
    /** Its bound on a receiver's unread bytes, as the programs read it (absent: as above). */
    socketBypassBacklog?: number;
  };
  pods: PodStatus[];
}

/** State that cannot be read at all (no bpffs root, no permission): exit 1. */
export class StatusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StatusError";
  }
}

const sortedPorts = (ports: number[]) => [...new Set(ports)].sort((a, b) => a - b);

/** The policy as attachPod applied it (its flags and the port and CIDR keys it wrote). */
export function policySummary(rec: AttachedPod): PolicySummary {
  const flags = new Set(rec.policy.flags);
  const ports = Object.entries(rec.policy.portSets ?? {}).flatMap(([kind, ranges]) =>
    expandPortRanges(ranges as string).map((port) => ({ kind, port })),
  );
  const cidrs = rec.keys.cidrs.map((hex) => {
    const { cidr, kind } = decodeCidrKey(Buffer.from(hex, "hex"));
    return { text: `${cidr.network}/${cidr.prefixLength}`, include: kind.startsWith("outInclude") };
  });
  const portsOf = (kind: string) =>
    sortedPorts(ports.filter((p) => p.kind === kind).map((p) => p.port));
  const interfaceCidrs = new Set(
    rec.policy.excludedInterfaceCidrs.map((text) => {
      const c = policyCidr(text);
      return `${c.network}/${c.prefixLength}`;
    }),
  );
  return {
    proxyUid: rec.policy.proxyUid,
    proxyGid: rec.policy.proxyGid,
    outbound: {
      includeCidrs: flags.has("OUT_INCLUDE_ALL")
        ? "*"
        : cidrs.filter((c) => c.include).map((c) => c.text),
      excludeCidrs: cidrs
        .filter((c) => !c.include && !interfaceCidrs.has(c.text))
        .map((c) => c.text),
      includePorts: portsOf("outInclude"),
      excludePorts: portsOf("outExclude"),
    },
    inbound: {
      includePorts: flags.has("IN_ALL") ? "*" : portsOf("inInclude"),
      excludePorts: portsOf("inExclude"),
    },
    excludeInterfaces: rec.policy.excludeInterfaces ?? null,
    excludedInterfaceCidrs: [...rec.policy.excludedInterfaceCidrs],
    dnsCapture: flags.has("DNS"),
    ipv6Captured: flags.has("IPV6"),
    flags: [...rec.policy.flags],
  };
}

/** What is known of one pod on the node besides its record. */
export interface PodObservation {
  containerId: string;
  /** null: the pod's directory holds no readable record. */
  record: AttachedPod | null;
  /** From checkPod. */
  problems: string[];
  /** Whether a path exists now (the netns and cgroup of the record). */
  exists(path: string): boolean;
}

/** One pod's status from its record and facts. Pure but for facts.exists. */
export function podStatus(f: PodObservation): PodStatus {
  const r = f.record;
  const health = { ok: f.problems.length === 0, problems: [...f.problems] };
  if (r === null) {
    return {
      containerId: f.containerId,
      pod: null,
      podIPs: [],
      localAddresses: [],
      interface: null,
      netns: null,
      cgroup: null,
      attachedAt: null,
      policy: null,
      attachments: null,
      health,
      counters: null,
    };
  }
  return {
    containerId: r.containerId,
    pod: r.pod ? { ...r.pod } : null,
    podIPs: [...r.podIPs],
    localAddresses: [...r.localAddresses],
    interface: r.ifname,
    netns: { path: r.netnsPath, cookie: r.netnsCookie, exists: f.exists(r.netnsPath) },
    cgroup: { path: r.cgroupPath, exists: f.exists(r.cgroupPath) },
    attachedAt: r.attachedAt,
    policy: policySummary(r),
    attachments: {
      cgroupLinks: r.links.filter((l) => l !== NETNS_PROGRAM.name),
      netnsLinks: r.links.filter((l) => l === NETNS_PROGRAM.name),
      inboundInterfaces: r.inboundInterfaces.map((i) => ({ ...i })),
    },
    health,
    counters: r.counters === null ? null : { ...r.counters },
  };
}

/** "namespace/name", or "-" when the attach request named no pod. */
export function podName(p: Pick<PodStatus, "pod">): string {
  return p.pod ? `${p.pod.namespace}/${p.pod.name}` : "-";
}

/** Pods sorted by namespace/name, then container id (a stable order for every output). */
function byName(a: PodStatus, b: PodStatus): number {
  return podName(a).localeCompare(podName(b)) || a.containerId.localeCompare(b.containerId);
}

/**
 * Whether `query` names the pod: its container id or a prefix of it, "namespace/name", or
 * the pod name alone.
 */
export function podMatches(
  query: string,
  p: { containerId: string; pod?: { namespace: string; name: string } | null },
): boolean {
  if (query === "") return false;
  if (p.containerId.startsWith(query)) return true;
  return p.pod ? query === `${p.pod.namespace}/${p.pod.name}` || query === p.pod.name : false;
}

/** Refuses a root with nothing readable to report: missing, not bpffs, not listable. */
function checkRoot(root: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(root).isDirectory();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") {
      throw new StatusError(
        `${root} does not exist: nothing of waggle is pinned on this node (is the waggle-node pod running? is --bpf-root the plugin's bpf_root?)`,
      );
    }
    throw new StatusError(`cannot read ${root}: ${e.message}`);
  }
  if (!isDir) throw new StatusError(`${root} is not a directory`);
  const type = statfsSync(root).type;
  if (type !== BPF_FS_MAGIC) {
    throw new StatusError(
      `${root} is not on a bpffs (filesystem 0x${type.toString(16)}): waggle pins under a bpffs (mount -t bpf bpf /sys/fs/bpf)`,
    );
  }
  for (const dir of [root, paths.pods(root)]) {
    if (dir !== root && !existsSync(dir)) continue;
    try {
      readdirSync(dir);
    } catch (err) {
      throw new StatusError(`cannot read ${dir}: ${(err as Error).message}`);
    }
  }
}

/** Reading `what` under root failed: the error to report (with a hint when not allowed). */
export function readFailure(what: string, root: string, err: unknown): StatusError {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const hint =
    code === "EACCES" || code === "EPERM"
      ? " (opening waggle's pins needs root: they are mode 0600)"
      : "";
  const message = err instanceof Error ? err.message : String(err);
  return new StatusError(`reading ${what} under ${root} failed: ${message}${hint}`);
}

/** The node settings as status reports them. */
function nodeSettings(s: { enabled: boolean; backlogMax: number }): {
  socketBypass: boolean;
  socketBypassBacklog: number;
} {
  return { socketBypass: s.enabled, socketBypassBacklog: s.backlogMax };
}

/** The shared pins missing under <root>/datapath, relative to it. */
function missingSharedPins(root: string): string[] {
  return [
    ...ALL_PROGRAMS.filter((p) => !existsSync(paths.prog(root, p))).map((p) => `progs/${p}`),
    ...Object.values(MAP_NAMES)
      .filter((m) => !existsSync(paths.map(root, m)))
      .map((m) => `maps/${m}`),
  ];
}

/**
 * Reads the state under bpfRoot: the shared pins, every pod directory and record, each pod's
 * checkPod and counters. With `query`, only the pods it names (none: StatusError).
 * @throws StatusError when the root cannot be read.
 */
export function gatherStatus(bpfRoot: string, query?: string): StatusReport {
  checkRoot(bpfRoot);
  const opts = { bpfRoot };
  const missing = missingSharedPins(bpfRoot);
  const loaded = missing.length === 0;
  const reading = <T>(what: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw readFailure(what, bpfRoot, err);
    }
  };
  const records: AttachedPod[] = reading("the pod records", () =>
    missing.includes(`maps/${MAP_NAMES.counters}`)
      ? readAllRecords(bpfRoot).map((r) => ({ ...r, counters: null }))
      : listPods(opts),
  );
  const byId = new Map(records.map((r) => [r.containerId, r]));
  // Directories without a readable record are pods too: checkPod says what is wrong.
  let ids = [...new Set([...records.map((r) => r.containerId), ...attachedContainerIds(opts)])];
  if (query !== undefined) {
    ids = ids.filter((id) => podMatches(query, { containerId: id, pod: byId.get(id)?.pod }));
    if (ids.length === 0) {
      throw new StatusError(`no meshed pod matches ${JSON.stringify(query)} under ${bpfRoot}`);
    }
  }
  const pods = ids.map((id) => {
    let problems: string[];
    try {
      problems = checkPod(id, opts);
    } catch (err) {
      problems = [(err as Error).message];
    }
    return podStatus({
      containerId: id,
      record: byId.get(id) ?? null,
      problems,
      exists: existsSync,
    });
  });
  return {
    bpfRoot,
    datapath: {
      loaded,
      missing,
      mapEntries: loaded ? reading("the shared maps", () => mapEntryCounts(opts)) : null,
      ...(loaded
        ? nodeSettings(reading("the node settings", () => nodeBypassSettings(bpfRoot)))
        : {}),
    },
    pods: pods.sort(byName),
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** Text columns padded to their widest cell; `right` columns are right-aligned. */
export function columns(rows: string[][], right: ReadonlySet<number> = new Set()): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) =>
    r
      .map((cell, i) =>
        i === r.length - 1 && !right.has(i)
          ? cell
          : right.has(i)
            ? cell.padStart(widths[i])
            : cell.padEnd(widths[i]),
      )
      .join("  "),
  );
}

/** The table's counters: (header, counter). The others are in the detail and the JSON. */
export const TABLE_COUNTERS: readonly [string, CounterName][] = [
  ["OUTBOUND", "outbound_redirected"],
  ["INBOUND", "inbound_captured"],
  ["DNS", "dns_redirected"],
  ["PASSTHROUGH", "passthrough"],
  ["ERRORS", "errors"],
];

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`;

function healthText(p: PodStatus): string {
  return p.health.ok ? "ok" : plural(p.health.problems.length, "problem");
}

function datapathLine(r: StatusReport): string {
  const dir = paths.datapath(r.bpfRoot);
  if (r.datapath.loaded) return `datapath: shared programs and maps pinned under ${dir}`;
  const total = ALL_PROGRAMS.length + Object.values(MAP_NAMES).length;
  const what =
    r.datapath.missing.length === total
      ? `NOT loaded (nothing pinned under ${dir})`
      : `incomplete (missing under ${dir}: ${r.datapath.missing.join(", ")})`;
  return `datapath: shared programs ${what}; \`waggle install\` (the waggle-node pod) loads them, as does the first meshed pod's CNI ADD`;
}

/** One row per pod: name, container, IPs, health and the key counters. */
export function formatTable(pods: PodStatus[]): string[] {
  const header = ["POD", "CONTAINER", "IPS", "HEALTH", ...TABLE_COUNTERS.map(([h]) => h)];
  const rows = pods.map((p) => [
    podName(p),
    p.containerId.slice(0, 12),
    p.podIPs.join(",") || "-",
    healthText(p),
    ...TABLE_COUNTERS.map(([, c]) => (p.counters ? String(p.counters[c]) : "-")),
  ]);
  const numeric = new Set(TABLE_COUNTERS.map((_, i) => 4 + i));
  return columns([header, ...rows], numeric);
}

const list = (items: readonly (string | number)[], none = "none") =>
  items.length === 0 ? none : items.join(", ");

/** An include list: "*" is `every`, [] is capture off, else the items after `prefix`. */
function included(items: "*" | readonly (string | number)[], every: string, prefix: string) {
  if (items === "*") return every;
  return items.length === 0 ? "off (nothing included)" : `${prefix}${list(items)}`;
}

function policyLines(p: PolicySummary): [string, string][] {
  const out = p.outbound;
  const inb = p.inbound;
  const outbound = included(out.includeCidrs, "every destination", "to ");
  const inbound = included(inb.includePorts, "every port", "ports ");
  const ifaces = p.excludeInterfaces === null ? "(not recorded)" : list(p.excludeInterfaces);
  return [
    ["proxy", `uid ${p.proxyUid}, gid ${p.proxyGid}`],
    ["outbound capture", outbound],
    ["  exclude CIDRs", list(out.excludeCidrs)],
    ["  include ports", list(out.includePorts, "all")],
    ["  exclude ports", list(out.excludePorts)],
    ["inbound capture", inbound],
    ...(inb.includePorts === "*"
      ? ([["  exclude ports", list(inb.excludePorts)]] as [string, string][])
      : []),
    [
      "excluded interfaces",
      p.excludedInterfaceCidrs.length > 0
        ? `${ifaces} (routes excluded: ${list(p.excludedInterfaceCidrs)})`
        : ifaces,
    ],
    ["DNS capture", p.dnsCapture ? "on" : "off"],
    ["IPv6", p.ipv6Captured ? "captured" : "not captured"],
  ];
}

const existence = (exists: boolean) => (exists ? "exists" : "GONE");

/** Everything about one pod, as indented "key  value" lines. */
export function formatDetail(p: PodStatus): string[] {
  const kv = (pairs: [string, string][], indent: string) =>
    columns(pairs.map(([k, v]) => [`${indent}${k}`, v]));
  const lines = [`${podName(p)} (container ${p.containerId})`];
  const facts: [string, string][] = [];
  if (p.pod?.uid) facts.push(["pod uid", p.pod.uid]);
  facts.push(["pod IPs", list(p.podIPs)]);
  if (p.localAddresses.join() !== p.podIPs.join())
    facts.push(["local addresses", list(p.localAddresses)]);
  if (p.interface !== null) facts.push(["interface", p.interface]);
  if (p.netns)
    facts.push([
      "netns",
      `${p.netns.path} (${existence(p.netns.exists)}, cookie ${p.netns.cookie})`,
    ]);
  if (p.cgroup) facts.push(["cgroup", `${p.cgroup.path} (${existence(p.cgroup.exists)})`]);
  if (p.attachedAt !== null) facts.push(["attached at", p.attachedAt]);
  facts.push(["health", p.health.ok ? "ok" : plural(p.health.problems.length, "problem")]);
  lines.push(...kv(facts, "  "));
  for (const problem of p.health.problems) lines.push(`    - ${problem}`);
  if (p.policy) {
    lines.push("  policy");
    lines.push(...kv(policyLines(p.policy), "    "));
  }
  if (p.attachments) {
    lines.push("  attachments");
    lines.push(
      ...kv(
        [
          [
            "cgroup links",
            `${p.attachments.cgroupLinks.length}: ${list(p.attachments.cgroupLinks)}`,
          ],
          ["netns link", list(p.attachments.netnsLinks)],
          [
            "inbound on",
            list(p.attachments.inboundInterfaces.map((i) => `${i.ifname} (ifindex ${i.ifindex})`)),
          ],
        ],
        "    ",
      ),
    );
  }
  lines.push("  counters");
  if (p.counters) {
    const counters = p.counters;
    lines.push(
      ...columns(
        COUNTER_NAMES.map((c) => [`    ${c}`, String(counters[c])]),
        new Set([1]),
      ),
    );
  } else {
    lines.push("    (no counters entry)");
  }
  return lines;
}

/**
 * The human output: the datapath line, then the table (or "no meshed pods under <root>"),
 * then the problems of unhealthy pods; with `verbose`, the shared maps and every pod's detail.
 */
export function formatStatus(r: StatusReport, opts: { verbose?: boolean } = {}): string {
  const lines = [datapathLine(r)];
  if (opts.verbose && r.datapath.mapEntries) {
    const entries = Object.entries(r.datapath.mapEntries).map(([m, n]) => `${m} ${n}`);
    lines.push(`map entries: ${entries.join(", ")}`);
  }
  if (opts.verbose && r.datapath.socketBypass !== undefined)
    lines.push(`socket bypass: ${r.datapath.socketBypass ? "on" : "off"} (node switch)`);
  if (opts.verbose && r.datapath.socketBypassBacklog !== undefined)
    lines.push(
      `socket bypass backlog bound: ${r.datapath.socketBypassBacklog} bytes unread per receiver`,
    );
  if (r.pods.length === 0) {
    lines.push(`no meshed pods under ${r.bpfRoot}`);
    return `${lines.join("\n")}\n`;
  }
  lines.push("", ...formatTable(r.pods));
  if (opts.verbose) {
    for (const p of r.pods) lines.push("", ...formatDetail(p));
  } else {
    const unhealthy = r.pods.filter((p) => !p.health.ok);
    if (unhealthy.length > 0) lines.push("", "problems:");
    for (const p of unhealthy) {
      for (const problem of p.health.problems) {
        lines.push(`  ${podName(p)} (${p.containerId.slice(0, 12)}): ${problem}`);
      }
    }
  }
  return `${lines.join("\n")}\n`;
}

/** The --json document: the report as it is (counters as numbers). */
export function formatJson(r: StatusReport): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

export async function runStatus(args: CliArgs, io: CliIo): Promise<number> {
  const bpfRoot = String(args.bpfRoot);
  const query = typeof args.pod === "string" ? args.pod : undefined;
  let report: StatusReport;
  try {
    report = gatherStatus(bpfRoot, query);
  } catch (err) {
    if (!(err instanceof StatusError)) throw err;
    io.err(`waggle status: ${err.message}\n`);
    return 1;
  }
  io.out(
    args.json
      ? formatJson(report)
      : formatStatus(report, { verbose: args.verbose === true || query !== undefined }),
  );
  return 0;
}
