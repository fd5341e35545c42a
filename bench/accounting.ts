// What a run cost and what happened underneath it: CPU time from cgroup cpu.stat (per role:
// load generator, sidecars, app) and /proc/stat (the machine: softirq, irq, everything not in
// our cgroups), and TCP counters of each pod's netns (/proc/net/snmp, /proc/net/netstat),
// whose deltas show retransmits, accept-queue overflows and TIME_WAIT pressure.
//
// This kernel has no IRQ time accounting (CONFIG_IRQ_TIME_ACCOUNTING off is the common
// distribution setting): softirq work done in a task's context (loopback and veth delivery
// run in the sender's softirq) is charged to that task, so a role's system time includes the
// network stack work it triggers; /proc/stat's softirq column counts only ticks that landed
// in softirq. "kernel" below is therefore system time, split by the role that caused it.

import { readFileSync } from "node:fs";
import { join } from "node:path";

/** cpu.stat of a cgroup v2 directory, microseconds. */
export interface CgroupCpu {
  usageUs: number;
  userUs: number;
  systemUs: number;
}

export function parseCgroupCpuStat(text: string): CgroupCpu {
  const fields = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) fields.set(k, Number(v));
  }
  const get = (k: string) => {
    const v = fields.get(k);
    if (v === undefined || !Number.isFinite(v)) throw new Error(`cpu.stat has no ${k}`);
    return v;
  };
  return { usageUs: get("usage_usec"), userUs: get("user_usec"), systemUs: get("system_usec") };
}

export function readCgroupCpu(dir: string): CgroupCpu {
  return parseCgroupCpuStat(readFileSync(join(dir, "cpu.stat"), "utf8"));
}

export function subtractCpu(after: CgroupCpu, before: CgroupCpu): CgroupCpu {
  return {
    usageUs: after.usageUs - before.usageUs,
    userUs: after.userUs - before.userUs,
    systemUs: after.systemUs - before.systemUs,
  };
}

/** The aggregate "cpu" line of /proc/stat, in clock ticks. */
export interface MachineCpu {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
}

const PROC_STAT_FIELDS = [
  "user",
  "nice",
  "system",
  "idle",
  "iowait",
  "irq",
  "softirq",
  "steal",
] as const;

export function parseProcStat(text: string): MachineCpu {
  const line = text.split("\n").find((l) => /^cpu\s/.test(l));
  if (!line) throw new Error("/proc/stat has no aggregate cpu line");
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  if (values.length < PROC_STAT_FIELDS.length || values.some((v) => !Number.isFinite(v)))
    throw new Error(`malformed /proc/stat cpu line: ${line}`);
  return Object.fromEntries(
    PROC_STAT_FIELDS.map((f, i) => [f, values[i]]),
  ) as unknown as MachineCpu;
}

export function readMachineCpu(): MachineCpu {
  return parseProcStat(readFileSync("/proc/stat", "utf8"));
}

/** Seconds of machine CPU between two /proc/stat samples (USER_HZ ticks, 100 per second). */
export interface MachineCpuDelta {
  busyS: number;
  userS: number;
  systemS: number;
  softirqS: number;
  irqS: number;
  idleS: number;
}

export const USER_HZ = 100;

export function machineCpuDelta(after: MachineCpu, before: MachineCpu): MachineCpuDelta {
  const d = (k: keyof MachineCpu) => (after[k] - before[k]) / USER_HZ;
  const userS = d("user") + d("nice");
  const systemS = d("system");
  const softirqS = d("softirq");
  const irqS = d("irq");
  return {
    busyS: userS + systemS + softirqS + irqS + d("steal"),
    userS,
    systemS,
    softirqS,
    irqS,
    idleS: d("idle") + d("iowait"),
  };
}

/** Counters of /proc/net/snmp and /proc/net/netstat, keyed "Tcp.ActiveOpens", "TcpExt.TW"... */
export type NetCounters = Record<string, number>;

/** Parses the header/value line pairs of /proc/net/snmp and /proc/net/netstat. */
export function parseNetCounters(text: string): NetCounters {
  const out: NetCounters = {};
  const lines = text.split("\n").filter((l) => l.includes(":"));
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [prefix, names] = splitOnce(lines[i]);
    const [prefix2, values] = splitOnce(lines[i + 1]);
    if (prefix !== prefix2) throw new Error(`unpaired counter lines ${prefix} / ${prefix2}`);
    const ns = names.trim().split(/\s+/);
    const vs = values.trim().split(/\s+/).map(Number);
    if (ns.length !== vs.length)
      throw new Error(`${prefix}: ${ns.length} names, ${vs.length} values`);
    ns.forEach((n, j) => {
      out[`${prefix}.${n}`] = vs[j];
    });
  }
  return out;
}

function splitOnce(line: string): [string, string] {
  const i = line.indexOf(":");
  return [line.slice(0, i), line.slice(i + 1)];
}

/** The counters the bench reports for each pod, with what each one says. */
export const WATCHED_COUNTERS = {
  "Tcp.ActiveOpens": "connections opened",
  "Tcp.PassiveOpens": "connections accepted",
  "Tcp.AttemptFails": "connect attempts that failed",
  "Tcp.EstabResets": "established connections reset",
  "Tcp.RetransSegs": "segments retransmitted",
  "TcpExt.ListenOverflows": "accept queue overflows (SYNs dropped)",
  "TcpExt.ListenDrops": "SYNs dropped at a listener",
  "TcpExt.TW": "sockets that entered TIME_WAIT",
  "TcpExt.TWRecycled": "TIME_WAIT sockets reused for a new connect (tcp_tw_reuse)",
  "TcpExt.TCPTimeWaitOverflow": "TIME_WAIT sockets dropped: tcp_max_tw_buckets reached",
} as const;

export function counterDelta(after: NetCounters, before: NetCounters): NetCounters {
  const out: NetCounters = {};
  for (const k of Object.keys(WATCHED_COUNTERS)) out[k] = (after[k] ?? 0) - (before[k] ?? 0);
  return out;
}

/** The evidence that a run did not run out of ephemeral ports, and the verdict. */
export interface PortPressure {
  /** Size of the pods' ip_local_port_range. */
  portRange: number;
  /**
   * Most TIME_WAIT sockets holding an ephemeral port (local port not a listener's: the side
   * that connected and closed first) in any pod netns at the end of the run.
   */
  maxEphemeralTimeWait: number;
  /** Connect failures for want of a free port (EADDRNOTAVAIL) the load generator saw. */
  addrNotAvail: number;
  /** TIME_WAIT sockets dropped for want of buckets (TcpExt.TCPTimeWaitOverflow). */
  timeWaitOverflow: number;
  /** Failed connects in the pods (Tcp.AttemptFails): a sidecar failing to connect shows here. */
  attemptFails: number;
  exhausted: boolean;
  reason: string;
}

/**
 * Exhaustion happened when a connect failed with EADDRNOTAVAIL, or connects failed while
 * TIME_WAIT filled more than half of the port range (port search got slow and failing).
 */
export function judgePortPressure(p: Omit<PortPressure, "exhausted" | "reason">): PortPressure {
  const reasons: string[] = [];
  if (p.addrNotAvail > 0) reasons.push(`${p.addrNotAvail} connects failed with EADDRNOTAVAIL`);
  if (p.maxEphemeralTimeWait > p.portRange / 2 && p.attemptFails > 0)
    reasons.push(
      `${p.maxEphemeralTimeWait} ephemeral ports held in TIME_WAIT (over half of ${p.portRange}) with ${p.attemptFails} failed connects`,
    );
  return {
    ...p,
    exhausted: reasons.length > 0,
    reason:
      reasons.length > 0
        ? reasons.join("; ")
        : "no EADDRNOTAVAIL, TIME_WAIT below half the port range",
  };
}

/**
 * `ss` arguments listing the TIME_WAIT sockets that hold an ephemeral port: every TCP socket
 * in TIME_WAIT whose local port is none of the listeners' (those are the accepting side's).
 */
export function ephemeralTimeWaitArgs(listenerPorts: readonly number[]): string[] {
  if (listenerPorts.length === 0) return ["-Htan", "state", "time-wait"];
  const clauses = listenerPorts.flatMap((p, i) => [
    ...(i > 0 ? ["or"] : []),
    "sport",
    "=",
    `:${p}`,
  ]);
  return ["-Htan", "state", "time-wait", "not", "(", ...clauses, ")"];
}

/** Sockets in `ss -H` output (one line per socket). */
export function countSsLines(text: string): number {
  return text.split("\n").filter((l) => l.trim() !== "").length;
}

/** Sockets in TIME_WAIT from /proc/net/sockstat ("TCP: inuse 3 orphan 0 tw 12 alloc 3 mem 1"). */
export function parseSockstatTimeWait(text: string): number {
  const m = /^TCP:.*\btw (\d+)/m.exec(text);
  if (!m) throw new Error(`/proc/net/sockstat has no TCP tw count: ${text.slice(0, 200)}`);
  return Number(m[1]);
}
