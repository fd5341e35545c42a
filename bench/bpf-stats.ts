// Run time of waggle's programs: kernel.bpf_stats_enabled on for one diagnostic run (the
// setting is host-wide and costs a little on every BPF program, so it is never on during the
// measured runs, and it is put back as it was even on failure), then bpftool's run_cnt and
// run_time_ns of each pinned program, before and after.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { ALL_PROGRAMS, BYPASS_RECV_PROGRAM, paths } from "../datapath";
import { runChecked } from "../test/support/command";
import { track } from "../test/support/resources";

const SYSCTL = "/proc/sys/kernel/bpf_stats_enabled";

export interface ProgramRunTime {
  name: string;
  runs: number;
  totalNs: number;
  avgNs: number;
  /** Runs and nanoseconds per measured request. */
  runsPerRequest: number;
  nsPerRequest: number;
}

export interface BpfStats {
  workload: string;
  requests: number;
  programs: ProgramRunTime[];
  /** All programs together, per request. */
  nsPerRequest: number;
}

interface Counters {
  runs: number;
  ns: number;
}

/**
 * Every pinned program's counters: the datapath's, and the flow control's socket-read
 * tracepoint where its object loaded (it runs on every socket read of the node while the
 * bypass is on, so its runs per request count the whole node's reads).
 */
async function programCounters(bpfRoot: string): Promise<Map<string, Counters>> {
  const out = new Map<string, Counters>();
  const recv = paths.prog(bpfRoot, BYPASS_RECV_PROGRAM.name);
  for (const name of [...ALL_PROGRAMS, ...(existsSync(recv) ? [BYPASS_RECV_PROGRAM.name] : [])]) {
    const info = JSON.parse(
      await runChecked("bpftool", ["-j", "prog", "show", "pinned", paths.prog(bpfRoot, name)]),
    ) as { run_cnt?: number; run_time_ns?: number };
    out.set(name, { runs: info.run_cnt ?? 0, ns: info.run_time_ns ?? 0 });
  }
  return out;
}

/** Per-program run time over the requests of `run` (which returns its request count). */
export async function withBpfStats(
  bpfRoot: string,
  workload: string,
  run: () => Promise<number>,
): Promise<BpfStats> {
  const previous = readFileSync(SYSCTL, "utf8").trim();
  const restore = track(`kernel.bpf_stats_enabled=${previous}`, () =>
    writeFileSync(SYSCTL, previous),
  );
  try {
    writeFileSync(SYSCTL, "1");
    const before = await programCounters(bpfRoot);
    const requests = await run();
    const after = await programCounters(bpfRoot);
    return summarizeProgramRunTime(workload, requests, before, after);
  } finally {
    restore.release();
  }
}

export function summarizeProgramRunTime(
  workload: string,
  requests: number,
  before: ReadonlyMap<string, Counters>,
  after: ReadonlyMap<string, Counters>,
): BpfStats {
  const programs: ProgramRunTime[] = [];
  for (const [name, a] of after) {
    const b = before.get(name) ?? { runs: 0, ns: 0 };
    const runs = a.runs - b.runs;
    const totalNs = a.ns - b.ns;
    programs.push({
      name,
      runs,
      totalNs,
      avgNs: runs > 0 ? totalNs / runs : 0,
      runsPerRequest: requests > 0 ? runs / requests : 0,
      nsPerRequest: requests > 0 ? totalNs / requests : 0,
    });
  }
  return {
    workload,
    requests,
    programs,
    nsPerRequest: programs.reduce((s, p) => s + p.nsPerRequest, 0),
  };
}
