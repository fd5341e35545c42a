// Leak checks: a snapshot of everything a kernel test could leave behind, and an assertion
// that nothing new is left after a test.
//
// Other test runs share this machine, so the global lists only count what this run made
// (names carrying RUN_TAG, processes descending from this one or inside this run's cgroups);
// bpffs roots and network namespaces passed in the options are listed in full.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { runSync } from "./command";
import { isThisRunsName, RUN_TAG } from "./names";
import { cgroupOfPid, commandOfPid, descendantsOf, listPids } from "./procs";
import { liveResources } from "./resources";
import { testCgroupParent } from "./sandbox";

export interface LeakSnapshot {
  /** `ip netns` names made by this run. */
  netns: string[];
  /** Interfaces of the host netns named by this run. */
  hostLinks: string[];
  /** Cgroup directories of this run under <cgroup2 root>/waggle-test (relative paths). */
  cgroups: string[];
  /** Every entry below the bpffs roots given in the options. */
  bpffs: string[];
  /** clsact/ingress qdiscs and their tc filters in the host netns and the given netns. */
  tc: string[];
  /** iptables/ip6tables rules and chains: host netns lines naming this run or an ISTIO_ chain; all of the given netns. */
  iptables: string[];
  /** "pid command" of processes descending from this one or inside this run's cgroups. */
  processes: string[];
  /** Resources still registered for teardown (test/support/resources.ts). */
  registered: string[];
}

export interface LeakOptions {
  /** bpffs directories to list recursively (e.g. a test's pin dir); a missing one lists nothing. */
  bpffsRoots?: string[];
  /** Network namespaces (ip netns names) whose tc and iptables state is listed in full. */
  netns?: string[];
}

function listTree(root: string): string[] {
  if (!existsSync(root)) return [];
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      found.push(path);
      if (entry.isDirectory()) walk(path);
    }
  };
  if (statSync(root).isDirectory()) walk(root);
  return found;
}

function thisRunsCgroups(): string[] {
  const parent = testCgroupParent();
  if (!existsSync(parent)) return [];
  return readdirSync(parent)
    .filter(isThisRunsName)
    .flatMap((name) => {
      const dir = join(parent, name);
      return [
        name,
        ...listTree(dir)
          .filter((p) => statSync(p).isDirectory())
          .map((p) => p.slice(parent.length + 1)),
      ];
    });
}

/** Runs a command in a netns (host when undefined); "" when it fails (e.g. the netns is gone). */
function inNetns(netns: string | undefined, cmd: string, args: string[]): string {
  try {
    return netns
      ? runSync("nsenter", [`--net=/run/netns/${netns}`, cmd, ...args])
      : runSync(cmd, args);
  } catch {
    return "";
  }
}

/** clsact/ingress qdiscs and the filters under them, labelled with the netns. */
function tcState(netns: string | undefined): string[] {
  const where = netns ?? "host";
  const lines: string[] = [];
  for (const qdisc of inNetns(netns, "tc", ["qdisc", "show"]).split("\n")) {
    const m = /^qdisc (clsact|ingress) \S+ dev (\S+)/.exec(qdisc);
    if (!m) continue;
    lines.push(`${where}: ${qdisc.trim()}`);
    for (const direction of m[1] === "clsact" ? ["ingress", "egress"] : ["ingress"]) {
      for (const filter of inNetns(netns, "tc", ["filter", "show", "dev", m[2], direction]).split(
        "\n",
      )) {
        if (filter.trim()) lines.push(`${where}: dev ${m[2]} ${direction} ${filter.trim()}`);
      }
    }
  }
  return lines;
}

/** iptables-save lines (both families), without comments and counters. */
function iptablesState(netns: string | undefined, keep: (line: string) => boolean): string[] {
  const where = netns ?? "host";
  return (
    [
      "iptables-nft-save",
      "ip6tables-nft-save",
      "iptables-legacy-save",
      "ip6tables-legacy-save",
    ] as const
  ).flatMap((cmd) =>
    inNetns(netns, cmd, [])
      .split("\n")
      .filter(
        (l) =>
          l.startsWith("-A") ||
          (l.startsWith(":") && !/^:(PREROUTING|INPUT|OUTPUT|POSTROUTING|FORWARD) /.test(l)),
      )
      .map((l) => l.replace(/ \[\d+:\d+\]$/, ""))
      .filter(keep)
      .map((l) => `${where} ${cmd}: ${l}`),
  );
}

function thisRunsProcesses(): string[] {
  const pids = new Set(descendantsOf(process.pid));
  const cgroupPrefix = `/${testCgroupParent().split("/").pop()}/${RUN_TAG}`;
  for (const pid of listPids()) {
    if (cgroupOfPid(pid)?.includes(cgroupPrefix)) pids.add(pid);
  }
  return [...pids].map((pid) => `${pid} ${commandOfPid(pid)}`).filter((p) => !p.endsWith(" "));
}

/** Takes a snapshot of everything this run could leak. */
export function snapshotLeaks(opts: LeakOptions = {}): LeakSnapshot {
  const netnsNames = runSync("ip", ["netns", "list"])
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter((n) => n && isThisRunsName(n));
  const hostLinks = runSync("ip", ["-o", "link", "show"])
    .split("\n")
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined && isThisRunsName(n));
  return {
    netns: netnsNames,
    hostLinks,
    cgroups: thisRunsCgroups(),
    bpffs: (opts.bpffsRoots ?? []).flatMap(listTree),
    tc: [undefined, ...(opts.netns ?? [])].flatMap(tcState),
    iptables: [
      ...iptablesState(undefined, (l) => l.includes(RUN_TAG) || l.includes("ISTIO_")),
      ...(opts.netns ?? []).flatMap((ns) => iptablesState(ns, () => true)),
    ],
    processes: thisRunsProcesses(),
    registered: liveResources(),
  };
}

/** What `after` holds that `before` did not, per category (empty categories omitted). */
export function diffLeaks(before: LeakSnapshot, after: LeakSnapshot): Partial<LeakSnapshot> {
  const diff: Partial<LeakSnapshot> = {};
  for (const key of Object.keys(after) as (keyof LeakSnapshot)[]) {
    const known = new Set(before[key]);
    const added = after[key].filter((item) => !known.has(item));
    if (added.length > 0) diff[key] = added;
  }
  return diff;
}

/** Throws an Error listing every leak since `before` (same options as the snapshot). */
export function assertNoLeaks(before: LeakSnapshot, opts: LeakOptions = {}): void {
  const leaks = diffLeaks(before, snapshotLeaks(opts));
  const lines = Object.entries(leaks).flatMap(([kind, items]) =>
    items.map((item) => `  ${kind}: ${item}`),
  );
  if (lines.length > 0) throw new Error(`resources leaked:\n${lines.join("\n")}`);
}
