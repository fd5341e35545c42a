// One measured run: a workload against one mode's deployment, with CPU, TCP and sidecar
// counters read just before and just after the tool runs.

import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { listPods } from "../datapath";
import { run } from "../test/support/command";
import type { Sandbox } from "../test/support/sandbox";
import {
  type CgroupCpu,
  counterDelta,
  countSsLines,
  ephemeralTimeWaitArgs,
  judgePortPressure,
  type MachineCpu,
  type MachineCpuDelta,
  machineCpuDelta,
  type NetCounters,
  type PortPressure,
  parseNetCounters,
  parseSockstatTimeWait,
  readCgroupCpu,
  readMachineCpu,
  subtractCpu,
  USER_HZ,
} from "./accounting";
import { type BenchCluster, type ModeDeployment, PORT_RANGE_SIZE } from "./cluster";
import {
  coarsenHistogram,
  type Histogram,
  type LatencySummary,
  summarizeHistogram,
} from "./histogram";
import { type RunSpeed, runSpeed } from "./machine-speed";
import { HeldConnections } from "./memory";
import { type MerbridgePathCheck, merbridgePathProblem, sockhashConnections } from "./merbridge";
import { type BypassReading, bypassPathProblem, expectsBypass, type ModeName } from "./modes";
import { type Durations, type Workload, workloadId } from "./plan";
import {
  APP_UID,
  combineSidecarErrors,
  haproxyCommand,
  LISTENER_PORTS,
  parseHaproxyStat,
  placedArgv,
  processDir,
  type Role,
  roleCgroup,
  type SidecarErrors,
  sidecarErrors,
} from "./sidecars";
import {
  buildLoadgen,
  type LoadgenResult,
  loadgenArgv,
  loadgenErrorCount,
  parseLoadgenOutput,
} from "./tools/loadgen";
import { parseSockperfOutput, sockperfClientArgv } from "./tools/sockperf";
import { buildSpeedprobe, probeEveryKind, type SpeedSample } from "./tools/speedprobe";
import { parseWrkOutput, WRK_LUA, wrkArgv, wrkErrorCount } from "./tools/wrk";

const ROLES: Role[] = ["loadgen", "sidecar", "app"];

export interface CpuSeconds {
  usageS: number;
  userS: number;
  systemS: number;
}

export interface RunRecord {
  level: string;
  workload: string;
  mode: ModeName;
  round: number;
  startedAt: string;
  /** Successful requests (sockperf: round trips) measured. */
  requests: number;
  /** Every request the tool made, warm-up included (what the BPF run-time stats count). */
  allRequests: number;
  /** The measured interval, seconds. */
  durationS: number;
  throughputRps: number;
  latencyUs: LatencySummary;
  /** The latency histogram coarsened to ~1.6 % buckets (pooled for the box plots). */
  histogram: Histogram | null;
  /** Errors by kind, as the tool counted them; errorCount sums them. */
  errors: Record<string, number>;
  errorCount: number;
  /** waggle-loadgen only: requests that started > 1 ms late, and time from actual start. */
  loadgen?: { late: number; maxQueue: number; unsent: number; serviceUs: LatencySummary };
  cpu: {
    byRole: Record<Role, CpuSeconds>;
    /** All processes of both pods (their cgroups, kernel work in their context included). */
    podsS: number;
    /** ksoftirqd threads: softirq work deferred out of the pods' context. */
    ksoftirqdS: number;
    machine: MachineCpuDelta;
  };
  /** CPU seconds per 1000 requests. node = pods + ksoftirqd; mesh = sidecars + app. */
  cpuPer1000: {
    node: number;
    loadgen: number;
    sidecars: number;
    app: number;
    system: number;
    machine: number;
  };
  net: { client: NetCounters; server: NetCounters };
  /** Sockets in TIME_WAIT per pod at the end of the run (all of them). */
  timeWait: { client: number; server: number };
  sidecars: SidecarErrors | null;
  portPressure: PortPressure;
  /** The machine's speed on the mesh's CPU just before and just after the tool ran (absent in results of benches before 2026-11-26). */
  machineSpeed?: RunSpeed;
  /** The waggle modes: the two pods' bypass counters over the run, summed (absent before 2026-12-06). */
  bypass?: { msgs: number; bytes: number; fallbacks: number };
}

interface Snapshot {
  roles: Map<string, CgroupCpu>;
  machine: MachineCpu;
  ksoftirqdTicks: number;
  net: { client: NetCounters; server: NetCounters };
  timeWait: { client: number; server: number };
  ephemeralTimeWait: { client: number; server: number };
  sidecars: SidecarErrors | null;
  bypass: BypassReading | null;
}

function ksoftirqdPids(): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("ksoftirqd/");
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** utime + stime of processes, clock ticks. */
function ticksOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return ticks;
}

interface PodNet {
  counters: NetCounters;
  /** Sockets in TIME_WAIT, all / holding an ephemeral port. */
  timeWait: number;
  ephemeralTimeWait: number;
}

async function netOf(pod: Sandbox, withSockets: boolean): Promise<PodNet> {
  const r = await run("nsenter", [
    `--net=${pod.netnsPath}`,
    "sh",
    "-c",
    "cat /proc/net/snmp /proc/net/netstat; echo @@; cat /proc/net/sockstat",
  ]);
  if (r.code !== 0) throw new Error(`reading TCP counters of ${pod.label}: ${r.stderr}`);
  const [counters, sockstat] = r.stdout.split("@@\n");
  let ephemeralTimeWait = 0;
  if (withSockets) {
    const ss = await run("nsenter", [
      `--net=${pod.netnsPath}`,
      "ss",
      ...ephemeralTimeWaitArgs(LISTENER_PORTS),
    ]);
    if (ss.code !== 0) throw new Error(`ss in ${pod.label}: ${ss.stderr}`);
    ephemeralTimeWait = countSsLines(ss.stdout);
  }
  return {
    counters: parseNetCounters(counters),
    timeWait: parseSockstatTimeWait(sockstat),
    ephemeralTimeWait,
  };
}

/** Probe samples of each kind (about 5 ms each) just before and just after every measured run. */
export const RUN_PROBE_SAMPLES = 10;

/** Connections the merbridge path check holds open while it reads Merbridge's sockhash. */
export const MERBRIDGE_HELD_CONNECTIONS = 4;

export class Measurer {
  /** What the path checks of the merbridge deployments found. */
  readonly merbridgePaths: MerbridgePathCheck[] = [];
  private readonly ksoftirqd = ksoftirqdPids();
  private loadgenBinary: string | undefined;
  private speedprobeBinary: string | undefined;
  private readonly toolDir = processDir("tools", APP_UID);
  private readonly wrkScript = join(this.toolDir.path, "waggle.lua");

  constructor(
    private readonly cluster: BenchCluster,
    private readonly loadCpus: string | undefined,
    private readonly durations: Durations,
    private readonly wrkConnections: number,
    private readonly loadgenConnections: number,
    /** The CPU whose speed is probed around each run (the mesh's); null: unpinned. */
    private readonly probedCpu: string | null,
  ) {
    writeFileSync(this.wrkScript, WRK_LUA, { mode: 0o644 });
  }

  async prepare(): Promise<void> {
    this.loadgenBinary = await buildLoadgen();
    this.speedprobeBinary = await buildSpeedprobe();
  }

  private probe(): Promise<SpeedSample[]> {
    if (!this.speedprobeBinary) throw new Error("Measurer.prepare() was not called");
    return probeEveryKind(this.speedprobeBinary, this.probedCpu, RUN_PROBE_SAMPLES);
  }

  close(): void {
    this.toolDir.remove();
  }

  /** Counters of a deployment; the TIME_WAIT socket list only after a run. */
  private async snapshot(d: ModeDeployment, after = false): Promise<Snapshot> {
    const roles = new Map<string, CgroupCpu>();
    for (const [side, pod] of [
      ["client", d.client],
      ["server", d.server],
    ] as const) {
      for (const role of ROLES) {
        const dir = join(pod.sandbox.cgroupDir, role);
        if (existsSync(dir)) roles.set(`${side}/${role}`, readCgroupCpu(dir));
      }
    }
    const [client, server] = await Promise.all([
      netOf(d.client.sandbox, after),
      netOf(d.server.sandbox, after),
    ]);
    let sidecars: SidecarErrors | null = null;
    for (const s of d.sidecars) {
      if (!s.statsSocket) continue;
      const e = sidecarErrors(parseHaproxyStat(await haproxyCommand(s.statsSocket, "show stat")));
      sidecars = sidecars ? combineSidecarErrors(sidecars, e, 1) : e;
    }
    return {
      roles,
      machine: readMachineCpu(),
      ksoftirqdTicks: ticksOf(this.ksoftirqd),
      net: { client: client.counters, server: server.counters },
      timeWait: { client: client.timeWait, server: server.timeWait },
      ephemeralTimeWait: { client: client.ephemeralTimeWait, server: server.ephemeralTimeWait },
      sidecars,
      bypass: this.bypassCounters(d),
    };
  }

  /** The bypass counters of a deployment's two pods (null outside the waggle modes). */
  bypassCounters(d: ModeDeployment): BypassReading | null {
    if (expectsBypass(d.mode) === null) return null;
    const records = listPods(this.cluster.bpf.opts);
    const of = (containerId: string) => {
      const c = records.find((r) => r.containerId === containerId)?.counters;
      if (!c) throw new Error(`no waggle counters for ${d.mode} pod ${containerId}`);
      return {
        sockets: c.bypass_sockets,
        msgs: c.bypass_msgs,
        bytes: c.bypass_bytes,
        fallbacks: c.bypass_fallbacks,
      };
    };
    return { client: of(d.client.rt.containerId), server: of(d.server.rt.containerId) };
  }

  /** Runs the tool in the client pod as the app (uid 1000), pinned to the load CPUs. */
  private async tool(
    d: ModeDeployment,
    cmd: string,
    args: string[],
    timeoutS: number,
  ): Promise<string> {
    const argv = placedArgv(
      d.client.sandbox,
      { role: "loadgen", cpus: this.loadCpus, uid: APP_UID, gid: APP_UID },
      cmd,
      args,
    );
    const r = await run("sh", argv, { timeoutMs: (timeoutS + 30) * 1000 });
    if (r.code !== 0)
      throw new Error(
        `${cmd} in ${d.mode} failed (${r.signal ?? r.code}): ${(r.stderr || r.stdout).slice(0, 1500)}`,
      );
    return `${r.stdout}\n${r.stderr}`;
  }

  /**
   * Proves the path of a mode before measuring it: 20 new connections from the client app
   * must each pass the client sidecar's outbound proxy and the server sidecar's inbound one
   * (HAProxy's per-backend session counters), so an interception that silently let traffic
   * bypass the sidecars can never be measured as a cheap mesh. Mode none has no sidecars.
   * The waggle modes also prove the socket bypass's part (bypassPathProblem): in waggle both
   * pods' messages bypassed grow with these requests, in waggle-redirect they stay 0.
   * merbridge is primed first and proves its bypass after (verifyMerbridge).
   */
  async verifyPath(mode: ModeName, tls = false): Promise<void> {
    const d = this.cluster.deployment(mode, tls);
    if (d.sidecars.length === 0) return;
    if (!this.loadgenBinary) throw new Error("Measurer.prepare() was not called");
    const primed = mode === "merbridge" ? await this.primeMerbridge(d) : null;
    const [client, server] = d.sidecars;
    const sessions = async (s: typeof client, backend: string) => {
      const rows = parseHaproxyStat(await haproxyCommand(s.statsSocket as string, "show stat"));
      const row = rows.find((r) => r.pxname === backend && r.svname === "BACKEND");
      if (!row) throw new Error(`sidecar has no backend ${backend}`);
      return Number(row.stot);
    };
    const before = [await sessions(client, "outbound"), await sessions(server, "inbound")];
    const bypassBefore = this.bypassCounters(d);
    const out = await this.tool(
      d,
      this.loadgenBinary,
      loadgenArgv({
        target: d.httpTarget,
        rate: 100,
        durationS: 0.2,
        warmupS: 0,
        connections: 4,
        newConnection: true,
        timeoutMs: 2000,
      }),
      1,
    );
    const r = parseLoadgenOutput(out);
    const after = [await sessions(client, "outbound"), await sessions(server, "inbound")];
    const passed = after.map((a, i) => a - before[i]);
    if (r.recorded !== 20 || passed[0] !== 20 || passed[1] !== 20)
      throw new Error(
        `mode ${mode}${tls ? " with TLS" : ""} does not route through its sidecars: of 20 requests ${r.recorded} succeeded, ${passed[0]} passed the client sidecar's outbound proxy, ${passed[1]} the server sidecar's inbound proxy`,
      );
    const problem = bypassPathProblem(mode, bypassBefore, this.bypassCounters(d));
    if (problem) throw new Error(`${problem}${tls ? " (TLS pods)" : ""}`);
    if (primed) await this.verifyMerbridge(d, primed);
  }

  /**
   * One request through a merbridge deployment before its path is proved. Merbridge's default
   * mode knows no pod addresses: it learns each sidecar's from the sidecar's first upstream
   * connection, and until then (USE_RECONNECT) sends that connection to port 15006. The
   * client sidecar's first one is right to go there; the server sidecar's, meant for its app,
   * comes back to its own inbound listener, which refuses it as Envoy's does (counted here:
   * the inbound frontend's denied connections). The request then fails, unless HAProxy saw
   * the refusal before it had sent anything and connected again (its `retries`), by which
   * time Merbridge has learned the address: Merbridge's one failed request per proxy start,
   * which Envoy's retry hides.
   */
  private async primeMerbridge(d: ModeDeployment): Promise<MerbridgePathCheck["priming"]> {
    const refused = async () => {
      const rows = parseHaproxyStat(
        await haproxyCommand(d.sidecars[1].statsSocket as string, "show stat"),
      );
      return Number(rows.find((r) => r.pxname === "inbound" && r.svname === "FRONTEND")?.dcon);
    };
    const before = await refused();
    const out = await this.tool(
      d,
      this.loadgenBinary as string,
      loadgenArgv({
        target: d.httpTarget,
        rate: 10,
        durationS: 0.1,
        warmupS: 0,
        connections: 1,
        newConnection: true,
        timeoutMs: 2000,
      }),
      1,
    );
    return {
      succeeded: parseLoadgenOutput(out).recorded === 1,
      loopsRefused: (await refused()) - before,
    };
  }

  /**
   * The rest of a merbridge deployment's proof (merbridgePathProblem): the addresses Merbridge
   * learned for the two sidecars, and with connections held open through the path, its
   * sockhash holding both sockets of each hop and one more request on each crossing no TCP.
   */
  private async verifyMerbridge(
    d: ModeDeployment,
    priming: MerbridgePathCheck["priming"],
  ): Promise<void> {
    const merbridge = this.cluster.merbridge;
    if (!merbridge) throw new Error("mode merbridge without Merbridge built");
    const learnedIps = merbridge.processIps();
    const learned = (["client", "server"] as const).map((side) => {
      const procs = join(roleCgroup(d[side].sandbox, "sidecar", "haproxy"), "cgroup.procs");
      const pid = Number(readFileSync(procs, "utf8").split("\n")[0]);
      return { side, pid, ip: learnedIps.find((l) => l.pid === pid)?.ip ?? null };
    });
    const held = await HeldConnections.open(
      d,
      HeldConnections.script(this.toolDir.path),
      MERBRIDGE_HELD_CONNECTIONS,
      this.loadCpus,
    );
    let check: MerbridgePathCheck;
    try {
      const hops = sockhashConnections(merbridge.sockPairs());
      const outSegs = async () => {
        const [c, s] = await Promise.all([
          netOf(d.client.sandbox, false),
          netOf(d.server.sandbox, false),
        ]);
        return c.counters["Tcp.OutSegs"] + s.counters["Tcp.OutSegs"];
      };
      const before = await outSegs();
      await held.again();
      const segments = (await outSegs()) - before;
      check = {
        deployment: d.tls ? "merbridge+tls" : "merbridge",
        priming,
        learned,
        connections: held.count,
        hops,
        segments,
      };
    } finally {
      await held.close();
    }
    this.merbridgePaths.push(check);
    const problem = merbridgePathProblem(check, { client: d.client.ip, server: d.server.ip });
    if (problem) throw new Error(`mode merbridge${d.tls ? " with TLS" : ""}: ${problem}`);
  }

  /** Runs a workload once (unmeasured when warmupOnly: a short run to warm the path). */
  async run(
    mode: ModeName,
    w: Workload,
    meta: { level: string; round: number },
    warmupOnly = false,
  ): Promise<RunRecord | null> {
    const d = this.cluster.deployment(mode, w.tls === true);
    const target = d.httpTarget;
    if (warmupOnly) {
      if (w.kind === "pingpong") {
        await this.tool(
          d,
          "sockperf",
          sockperfClientArgv({ ...d.sockperfTarget, durationS: 1, messageBytes: 64 }),
          1,
        );
      } else {
        await this.tool(
          d,
          "wrk",
          wrkArgv({
            url: `http://${target}/`,
            connections: this.wrkConnections,
            durationS: 1,
            newConnection: w.connection === "new",
            scriptPath: this.wrkScript,
          }),
          1,
        );
      }
      return null;
    }
    const speedBefore = await this.probe();
    const startedAt = new Date().toISOString();
    const before = await this.snapshot(d);
    let requests: number;
    let allRequests: number;
    let durationS: number;
    let latency: LatencySummary;
    let histogram: Histogram | null = null;
    let errors: Record<string, number>;
    let errorCount: number;
    let addrNotAvail = 0;
    let loadgen: RunRecord["loadgen"];
    if (w.kind === "max") {
      const out = await this.tool(
        d,
        "wrk",
        wrkArgv({
          url: `http://${target}/`,
          connections: this.wrkConnections,
          durationS: this.durations.maxS,
          newConnection: w.connection === "new",
          scriptPath: this.wrkScript,
        }),
        this.durations.maxS,
      );
      const r = parseWrkOutput(out);
      requests = r.requests;
      allRequests = r.requests;
      durationS = r.durationUs / 1e6;
      histogram = r.latencyUs;
      latency = summarizeHistogram(r.latencyUs);
      errors = { ...r.errors };
      errorCount = wrkErrorCount(r);
    } else if (w.kind === "rate") {
      if (!this.loadgenBinary) throw new Error("Measurer.prepare() was not called");
      const out = await this.tool(
        d,
        this.loadgenBinary,
        loadgenArgv({
          target,
          rate: w.rps,
          durationS: this.durations.rateS,
          warmupS: this.durations.warmupS,
          connections: this.loadgenConnections,
          newConnection: w.connection === "new",
          timeoutMs: 2000,
        }),
        this.durations.rateS + this.durations.warmupS,
      );
      const r: LoadgenResult = parseLoadgenOutput(out);
      requests = r.recorded;
      allRequests = r.completed;
      durationS = this.durations.rateS;
      histogram = r.latencyUs;
      latency = summarizeHistogram(r.latencyUs);
      errors = { ...r.errors };
      errorCount = loadgenErrorCount(r);
      addrNotAvail = r.errors.connect_eaddrnotavail;
      loadgen = {
        late: r.late,
        maxQueue: r.maxQueue,
        unsent: r.unsent,
        serviceUs: summarizeHistogram(r.serviceUs),
      };
    } else {
      const out = await this.tool(
        d,
        "sockperf",
        sockperfClientArgv({
          ...d.sockperfTarget,
          durationS: this.durations.pingpongS,
          messageBytes: 64,
        }),
        this.durations.pingpongS,
      );
      const r = parseSockperfOutput(out);
      requests = r.observations;
      allRequests = r.received;
      durationS = r.validS;
      latency = r.rttUs;
      errors = { lost: Math.max(0, r.sent - r.received) };
      errorCount = errors.lost;
    }
    const after = await this.snapshot(d, true);
    const machineSpeed = runSpeed(speedBefore, await this.probe());
    return this.record({
      d,
      w,
      meta,
      startedAt,
      before,
      after,
      requests,
      allRequests,
      durationS,
      latency,
      histogram,
      errors,
      errorCount,
      addrNotAvail,
      loadgen,
      machineSpeed,
    });
  }

  private record(x: {
    d: ModeDeployment;
    w: Workload;
    meta: { level: string; round: number };
    startedAt: string;
    before: Snapshot;
    after: Snapshot;
    requests: number;
    allRequests: number;
    durationS: number;
    latency: LatencySummary;
    histogram: Histogram | null;
    errors: Record<string, number>;
    errorCount: number;
    addrNotAvail: number;
    loadgen: RunRecord["loadgen"];
    machineSpeed: RunSpeed;
  }): RunRecord {
    const byRole = Object.fromEntries(
      ROLES.map((r) => [r, { usageS: 0, userS: 0, systemS: 0 }]),
    ) as Record<Role, CpuSeconds>;
    for (const [key, a] of x.after.roles) {
      const b = x.before.roles.get(key);
      if (!b) continue;
      const delta = subtractCpu(a, b);
      const role = key.split("/")[1] as Role;
      byRole[role].usageS += delta.usageUs / 1e6;
      byRole[role].userS += delta.userUs / 1e6;
      byRole[role].systemS += delta.systemUs / 1e6;
    }
    const podsS = ROLES.reduce((s, r) => s + byRole[r].usageS, 0);
    const systemS = ROLES.reduce((s, r) => s + byRole[r].systemS, 0);
    const ksoftirqdS = (x.after.ksoftirqdTicks - x.before.ksoftirqdTicks) / USER_HZ;
    const machine = machineCpuDelta(x.after.machine, x.before.machine);
    const per1000 = (s: number) => (x.requests > 0 ? (s / x.requests) * 1000 : Number.NaN);
    const client = counterDelta(x.after.net.client, x.before.net.client);
    const server = counterDelta(x.after.net.server, x.before.net.server);
    const sidecars =
      x.after.sidecars && x.before.sidecars
        ? combineSidecarErrors(x.after.sidecars, x.before.sidecars, -1)
        : null;
    const portPressure = judgePortPressure({
      portRange: PORT_RANGE_SIZE,
      maxEphemeralTimeWait: Math.max(
        x.after.ephemeralTimeWait.client,
        x.after.ephemeralTimeWait.server,
      ),
      addrNotAvail: x.addrNotAvail,
      timeWaitOverflow: client["TcpExt.TCPTimeWaitOverflow"] + server["TcpExt.TCPTimeWaitOverflow"],
      attemptFails: client["Tcp.AttemptFails"] + server["Tcp.AttemptFails"],
    });
    return {
      level: x.meta.level,
      workload: workloadId(x.w),
      mode: x.d.mode,
      round: x.meta.round,
      startedAt: x.startedAt,
      requests: x.requests,
      allRequests: x.allRequests,
      durationS: x.durationS,
      throughputRps: x.requests / x.durationS,
      latencyUs: x.latency,
      histogram: x.histogram ? coarsenHistogram(x.histogram) : null,
      errors: x.errors,
      errorCount: x.errorCount,
      ...(x.loadgen ? { loadgen: x.loadgen } : {}),
      cpu: { byRole, podsS, ksoftirqdS, machine },
      cpuPer1000: {
        node: per1000(podsS + ksoftirqdS),
        loadgen: per1000(byRole.loadgen.usageS),
        sidecars: per1000(byRole.sidecar.usageS),
        app: per1000(byRole.app.usageS),
        system: per1000(systemS),
        machine: per1000(machine.busyS),
      },
      net: { client, server },
      timeWait: x.after.timeWait,
      sidecars,
      portPressure,
      machineSpeed: x.machineSpeed,
      ...(x.after.bypass && x.before.bypass
        ? { bypass: bypassDelta(x.before.bypass, x.after.bypass) }
        : {}),
    };
  }
}

/** The two pods' bypass counters over a run, summed. */
export function bypassDelta(
  before: BypassReading,
  after: BypassReading,
): { msgs: number; bytes: number; fallbacks: number } {
  const sum = (k: "msgs" | "bytes" | "fallbacks") =>
    after.client[k] - before.client[k] + after.server[k] - before.server[k];
  return { msgs: sum("msgs"), bytes: sum("bytes"), fallbacks: sum("fallbacks") };
}
