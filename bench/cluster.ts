// The bench's node: one "node" network namespace playing the Kubernetes host, and for each
// mode a client pod and a server pod wired by the real CNI chain (ptp + host-local + portmap
// + waggle, run through the libcni harness inside the node netns). All modes live side by
// side on the same node, so interleaving modes costs nothing and every mode crosses the same
// node with the same host rules.
//
// Per mode (see docs/benchmarks.md):
//   none      client app -> server app (no sidecars)
//   explicit  client app -> 127.0.0.1:15001 (client sidecar) -> server:15006 (server sidecar)
//             -> server app; no interception anywhere: the floor
//   iptables  client app -> server:8080, redirected by istio-iptables' rules (nat OUTPUT ->
//             15001 in the client pod, nat PREROUTING -> 15006 in the server pod)
//   waggle-redirect  the same, redirected by waggle's programs (the pod was ADDed as meshed);
//             the pods opt out of the socket bypass (waggle.io/socket-bypass: "false"): every
//             hop goes through TCP, as before the bypass existed
//   waggle    the same with the socket bypass: the chain's waggle entry has socket_bypass:
//             true, so established hops between the two meshed pods' sockets skip TCP/IP
//   merbridge the same hops, redirected and bypassed by Merbridge's own programs, built from
//             a checkout the operator names (bench/merbridge-datapath.ts) and attached to the
//             two pods' cgroups once their sidecars listen; the pods are plain for waggle
// The bypass switch is node-wide (written at each ADD from the plugin entry), so both waggle
// modes share one chain with socket_bypass: true and waggle-redirect's pods opt out per pod;
// with waggle-redirect alone the entry says socket_bypass: false.
// With TLS workloads in the plan every mode but none gets a second pod pair whose sidecars
// speak mutual TLS to each other (bench/sidecars.ts), with certificates made for the run.
// Every pod gets the same sysctls (POD_SYSCTLS), whatever its mode.

import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defaultRedirectSettings } from "../mesh/redirect-settings";
import { CniNode, type CniPod, MESHED_ANNOTATIONS } from "../test/support/cni-node";
import { runChecked } from "../test/support/command";
import { IPTABLES_RESTORE, renderIstioIptables } from "../test/support/istio-iptables";
import type {
  Invocation,
  Libcni,
  NetworkConfigList,
  PodSandbox,
  RuntimeConf,
} from "../test/support/libcni";
import { AttachTimer } from "./attach-timer";
import { MerbridgeDatapath } from "./merbridge-datapath";
import { isWaggleMode, MERBRIDGE_SRC_ENV, type ModeName } from "./modes";
import { type ProcessCost, parseRusage, type Rusage, TIME_FORMAT } from "./node-cost";
import {
  APP_PORT,
  generateMeshCerts,
  type MeshCerts,
  OUTBOUND_PORT,
  OUTBOUND_SOCKPERF_PORT,
  PROXY_UID,
  processDir,
  SOCKPERF_PORT,
  type StartedProcess,
  startNginx,
  startSidecar,
  startSockperfServer,
} from "./sidecars";
import { sockperfServerArgv } from "./tools/sockperf";

/** Sysctls of every pod netns, the same in every mode. */
export const POD_SYSCTLS = {
  // TIME_WAIT sockets older than 1 s may be reused for new outgoing connections.
  "net.ipv4.tcp_tw_reuse": 1,
  "net.ipv4.ip_local_port_range": "1024 65535",
  "net.core.somaxconn": 4096,
  "net.ipv4.tcp_max_syn_backlog": 4096,
} as const;
export const PORT_RANGE_SIZE = 65535 - 1024 + 1;

/** The CNI version of the bench's chain (the reference plugins speak it natively). */
const CNI_VERSION = "1.0.0";

/** Where processes run: the load generator's CPUs and everyone else's (undefined: unpinned). */
export interface Placement {
  load?: string;
  mesh?: string;
}

export interface BenchPod {
  sandbox: PodSandbox;
  ip: string;
  rt: RuntimeConf;
  /** Milliseconds of each plugin's ADD for this pod, by plugin type. */
  addMs: Record<string, number>;
}

/** The per-pod opt-out of the socket bypass (waggle-redirect's pods carry it). */
export const BYPASS_OPT_OUT = { "waggle.io/socket-bypass": "false" } as const;

/** The annotations of a mode's pods: meshed for the waggle modes, opted out for waggle-redirect. */
export function podAnnotations(mode: ModeName): Record<string, string> {
  if (!isWaggleMode(mode)) return {};
  return mode === "waggle-redirect"
    ? { ...MESHED_ANNOTATIONS, ...BYPASS_OPT_OUT }
    : { ...MESHED_ANNOTATIONS };
}

/** The chain's waggle entry: the node's bypass switch on when mode waggle is deployed. */
export function waggleEntry(modes: readonly ModeName[]): Record<string, unknown> {
  return { log_level: "warn", socket_bypass: modes.includes("waggle") };
}

/** The key of a deployment: a mode, plain or with TLS between its sidecars. */
export function deploymentKey(mode: ModeName, tls: boolean): string {
  return tls ? `${mode}+tls` : mode;
}

export interface ModeDeployment {
  mode: ModeName;
  /** The sidecars speak mutual TLS to each other. */
  tls: boolean;
  client: BenchPod;
  server: BenchPod;
  processes: StartedProcess[];
  /** Client sidecar then server sidecar (none in mode none). */
  sidecars: StartedProcess[];
  /** host:port the client app calls for HTTP, and for the sockperf probe. */
  httpTarget: string;
  sockperfTarget: { host: string; port: number };
  /**
   * Per-pod capture setup time of this mode (ms): iptables-restore, waggle's CNI ADD, or the
   * attaching of Merbridge's cgroup programs.
   */
  captureSetupMs: number[];
}

export interface ClusterOptions {
  modes: readonly ModeName[];
  /**
   * Record each waggle process's rusage (GNU time, TIME_FORMAT) into this directory, as
   * <CNI_COMMAND>-<CNI_CONTAINERID>: the chain runs waggle through a wrapper (bench/node-cost).
   */
  rusageDir?: string;
  /** Deploy a TLS pod pair for every mode with sidecars too. */
  tls: boolean;
  placement: Placement;
  bodyBytes: number;
  /** A Merbridge checkout (or git directory) to build mode merbridge from. */
  merbridgeSrc?: string;
  log: (line: string) => void;
}

/** iptables-restore of the istio rules into a pod netns (what istio-cni does), timed in ms. */
export async function applyIstioRules(pod: PodSandbox, ipv4: string): Promise<number> {
  const rendered = renderIstioIptables(defaultRedirectSettings(), { ipv4 });
  const start = process.hrtime.bigint();
  await runChecked("nsenter", [`--net=${pod.netnsPath}`, IPTABLES_RESTORE[4], "--noflush"], {
    input: rendered.v4,
  });
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Removes the istio rules again (empties the pod's nat table). */
export async function removeIstioRules(pod: PodSandbox): Promise<void> {
  await runChecked("nsenter", [`--net=${pod.netnsPath}`, IPTABLES_RESTORE[4]], {
    input: "*nat\nCOMMIT\n",
  });
}

/**
 * Writes <dir>/bin/waggle, which runs the plugin dir's waggle under GNU time recording its
 * rusage to <dir>/out/<CNI_COMMAND>-<CNI_CONTAINERID>, and <dir>/bin/node-e0 (`node -e 0`,
 * the same way: the floor). Returns <dir>/bin, to go first in CNI_PATH.
 */
export function rusageWrappers(dir: string, pluginDir: string): string {
  const bin = join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  mkdirSync(join(dir, "out"), { recursive: true });
  const wrap = (name: string, command: string) => {
    writeFileSync(
      join(bin, name),
      `#!/bin/sh\nexec /usr/bin/time -f '${TIME_FORMAT}' -o "${join(dir, "out")}/$CNI_COMMAND-$CNI_CONTAINERID" ${command}\n`,
    );
    chmodSync(join(bin, name), 0o755);
  };
  wrap("waggle", join(pluginDir, "waggle"));
  wrap("node-e0", `${process.execPath} -e 0`);
  return bin;
}

export class BenchCluster {
  /** By deploymentKey(mode, tls). */
  readonly deployments = new Map<string, ModeDeployment>();
  private readonly pods: BenchPod[] = [];
  private readonly list: NetworkConfigList;
  /** The runtime the pods are wired by (with the rusage wrapper first in CNI_PATH when asked). */
  private readonly runtime: Libcni;
  private certs: { dir: { remove(): void }; files: MeshCerts } | undefined;
  /** Merbridge's programs and maps, when mode merbridge is deployed. */
  merbridge: MerbridgeDatapath | undefined;
  private timer: AttachTimer | undefined;

  private constructor(
    readonly cni: CniNode,
    private readonly opts: ClusterOptions,
    /** Every plugin execution so far (the harness appends to it). */
    private readonly invocations: Invocation[],
  ) {
    this.list = cni.chain(CNI_VERSION, waggleEntry(opts.modes));
    this.runtime = opts.rusageDir
      ? cni.libcni({
          path: [rusageWrappers(opts.rusageDir, cni.plugins.dir), ...cni.runtime.opts.path],
        })
      : cni.runtime;
  }

  /** The rusage GNU time recorded for a waggle process of the chain (rusageDir), or null. */
  rusage(command: string, containerId: string): Rusage | null {
    if (!this.opts.rusageDir) return null;
    try {
      return parseRusage(
        readFileSync(join(this.opts.rusageDir, "out", `${command}-${containerId}`), "utf8"),
      );
    } catch {
      return null;
    }
  }

  /** waggle's process of the chain's last `command` for a pod: wall time and rusage. */
  waggleCost(command: string, containerId: string, ms: number): ProcessCost {
    const r = this.rusage(command, containerId);
    return { ms, rssKiB: r?.maxRssKiB ?? null, cpuS: r ? r.userS + r.sysS : null };
  }

  /**
   * Runs a wrapper of rusageDir (waggle, or node-e0: `node -e 0`) once the way the chain runs
   * waggle (nsenter into the node netns), timed, with its rusage under `command`-`id`.
   */
  async runWrapped(
    wrapper: "waggle" | "node-e0",
    command: string,
    id: string,
  ): Promise<ProcessCost & { stdout: string }> {
    if (!this.opts.rusageDir) throw new Error("runWrapped needs the cluster's rusageDir");
    const start = process.hrtime.bigint();
    const r = await runChecked(
      "nsenter",
      [`--net=${this.node.netnsPath}`, join(this.opts.rusageDir, "bin", wrapper)],
      { env: { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: id }, input: "{}" },
    );
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    return { ...this.waggleCost(command, id, ms), stdout: r };
  }

  get node() {
    return this.cni.node;
  }

  /** The process attachPod is timed in (started on first use, stopped by destroy). */
  attachTimer(): AttachTimer {
    this.timer ??= AttachTimer.start();
    return this.timer;
  }

  get bpf() {
    return this.cni.bpf;
  }

  /** Creates the node, the CNI runtime and every mode's pods and processes. */
  static async create(opts: ClusterOptions): Promise<BenchCluster> {
    const invocations: Invocation[] = [];
    const cni = await CniNode.create({ onInvocation: (inv) => invocations.push(inv) });
    const cluster = new BenchCluster(cni, opts, invocations);
    try {
      if (opts.modes.includes("merbridge")) {
        if (!opts.merbridgeSrc)
          throw new Error(
            `mode merbridge needs a Merbridge checkout: --merbridge-src DIR or ${MERBRIDGE_SRC_ENV}`,
          );
        cluster.merbridge = await MerbridgeDatapath.create(opts.merbridgeSrc, opts.log);
      }
      for (const mode of opts.modes) await cluster.deploy(mode, false);
      if (opts.tls)
        for (const mode of opts.modes) if (mode !== "none") await cluster.deploy(mode, true);
    } catch (e) {
      await cluster.destroy();
      throw e;
    }
    return cluster;
  }

  /** A pod sandbox wired by the CNI chain, with the bench sysctls. */
  async addPod(annotations: Record<string, string>): Promise<BenchPod> {
    return this.wirePod(await this.cni.pod(annotations, "bench"));
  }

  /** A pod sandbox made but not wired yet (wirePod runs the chain's ADD), e.g. for a burst. */
  async preparePod(annotations: Record<string, string>): Promise<CniPod> {
    return this.cni.pod(annotations, "bench");
  }

  /** The chain's ADD of a prepared pod; on failure its DEL runs and the sandbox goes. */
  async wirePod({ sandbox, rt }: CniPod): Promise<BenchPod> {
    const first = this.invocations.length;
    try {
      const result = await this.runtime.addNetworkList(this.list, rt);
      const address = result.ips?.[0]?.address;
      if (!address) throw new Error(`CNI ADD of ${sandbox.name} returned no address`);
      await sandbox.sysctl(POD_SYSCTLS);
      const addMs = this.timesSince(first, "ADD", rt.containerId);
      const pod: BenchPod = { sandbox, ip: address.split("/")[0], rt, addMs };
      this.pods.push(pod);
      return pod;
    } catch (e) {
      await this.runtime.delNetworkList(this.list, rt).catch(() => {});
      await sandbox.destroy();
      throw e;
    }
  }

  /** Milliseconds of each plugin's `command` for a container since invocation `first`, by type. */
  private timesSince(first: number, command: string, containerId: string): Record<string, number> {
    const ms: Record<string, number> = {};
    for (const inv of this.invocations.slice(first))
      if (inv.command === command && inv.env.CNI_CONTAINERID === containerId) ms[inv.type] = inv.ms;
    return ms;
  }

  /** CNI DEL and removal of a pod made by addPod; milliseconds of each plugin's DEL. */
  async removePod(pod: BenchPod): Promise<Record<string, number>> {
    const i = this.pods.indexOf(pod);
    if (i >= 0) this.pods.splice(i, 1);
    const first = this.invocations.length;
    try {
      await this.runtime.delNetworkList(this.list, pod.rt);
      return this.timesSince(first, "DEL", pod.rt.containerId);
    } finally {
      await pod.sandbox.destroy();
    }
  }

  /** The mesh's certificates, generated on first use into the run's temporary directory. */
  private async meshCerts(): Promise<MeshCerts> {
    if (!this.certs) {
      const dir = processDir("tls", PROXY_UID);
      try {
        this.certs = { dir, files: await generateMeshCerts(dir.path) };
      } catch (e) {
        dir.remove();
        throw e;
      }
    }
    return this.certs.files;
  }

  private async deploy(mode: ModeName, tls: boolean): Promise<void> {
    const { placement, bodyBytes, log } = this.opts;
    log(`deploying mode ${mode}${tls ? " with TLS between the sidecars" : ""}`);
    const client = await this.addPod(podAnnotations(mode));
    const server = await this.addPod(podAnnotations(mode));
    const deployment: ModeDeployment = {
      mode,
      tls,
      client,
      server,
      processes: [],
      sidecars: [],
      httpTarget: `${server.ip}:${APP_PORT}`,
      sockperfTarget: { host: server.ip, port: SOCKPERF_PORT },
      captureSetupMs: [],
    };
    this.deployments.set(deploymentKey(mode, tls), deployment);
    if (mode === "iptables") {
      for (const pod of [client, server])
        deployment.captureSetupMs.push(await applyIstioRules(pod.sandbox, pod.ip));
    }
    if (isWaggleMode(mode)) {
      for (const pod of [client, server]) {
        const ms = pod.addMs.waggle;
        if (ms === undefined) throw new Error(`waggle's CNI ADD did not run for ${mode}`);
        deployment.captureSetupMs.push(ms);
      }
    }
    const started = (p: StartedProcess) => {
      deployment.processes.push(p);
      return p;
    };
    started(await startNginx(server.sandbox, bodyBytes, placement.mesh));
    started(
      await startSockperfServer(server.sandbox, sockperfServerArgv(SOCKPERF_PORT), placement.mesh),
    );
    if (mode === "none") return;
    const certs = tls ? await this.meshCerts() : undefined;
    for (const [pod, peer] of [
      [client, server],
      [server, client],
    ] as const) {
      const routing =
        mode === "explicit"
          ? ({ kind: "explicit", peerIp: peer.ip, selfIp: pod.ip } as const)
          : ({ kind: "intercept", envoyListeners: mode === "merbridge" } as const);
      deployment.sidecars.push(
        started(await startSidecar(pod.sandbox, routing, placement.mesh, certs)),
      );
    }
    if (mode === "merbridge") this.attachMerbridge(deployment);
    if (mode === "explicit") {
      deployment.httpTarget = `127.0.0.1:${OUTBOUND_PORT}`;
      deployment.sockperfTarget = { host: "127.0.0.1", port: OUTBOUND_SOCKPERF_PORT };
    }
  }

  /**
   * Merbridge on a deployment's two pods, as its controller and loader would have it once the
   * sidecars run: both pods' addresses registered as injected pods, then its cgroup programs
   * attached to each pod's cgroup. Only now: its programs decide once per cgroup whether the
   * pod is meshed (a listener on 0.0.0.0:15001) and keep the answer, so a sidecar whose own
   * bind ran under them before it listened would stay unmeshed for good.
   */
  private attachMerbridge(d: ModeDeployment): void {
    const merbridge = this.merbridge;
    if (!merbridge) throw new Error("mode merbridge deployed without Merbridge built");
    const pods = [d.client, d.server];
    for (const pod of pods) merbridge.registerPod(pod.ip);
    for (const pod of pods) {
      const start = process.hrtime.bigint();
      merbridge.attachPod(pod.sandbox.cgroupDir);
      d.captureSetupMs.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }

  deployment(mode: ModeName, tls = false): ModeDeployment {
    const d = this.deployments.get(deploymentKey(mode, tls));
    if (!d) throw new Error(`mode ${mode}${tls ? " with TLS" : ""} is not deployed`);
    return d;
  }

  /** Everything torn down: processes (via the pod cgroups), CNI DEL, netns, bpffs, dirs. */
  async destroy(): Promise<void> {
    const errors: string[] = [];
    for (const d of this.deployments.values()) {
      for (const p of d.processes) await p.stop().catch((e) => errors.push(String(e)));
    }
    try {
      this.merbridge?.destroy();
    } catch (e) {
      errors.push(`merbridge: ${e}`);
    }
    this.merbridge = undefined;
    for (const pod of [...this.pods].reverse()) {
      await this.removePod(pod).catch((e) => errors.push(`${pod.sandbox.label}: ${e}`));
    }
    this.deployments.clear();
    this.certs?.dir.remove();
    this.certs = undefined;
    await this.timer?.close().catch((e) => errors.push(`attach worker: ${e}`));
    this.timer = undefined;
    await this.cni.destroy().catch((e) => errors.push(`node: ${e}`));
    if (errors.length > 0) throw new Error(`bench teardown: ${errors.join("; ")}`);
  }
}
