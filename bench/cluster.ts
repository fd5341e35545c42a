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
//   waggle    the same, redirected by waggle's programs (the pod was ADDed as meshed)
// Every pod gets the same sysctls (POD_SYSCTLS), whatever its mode.

import { defaultRedirectSettings } from "../mesh/redirect-settings";
import { CniNode, MESHED_ANNOTATIONS } from "../test/support/cni-node";
import { runChecked } from "../test/support/command";
import { IPTABLES_RESTORE, renderIstioIptables } from "../test/support/istio-iptables";
import type {
  Invocation,
  NetworkConfigList,
  PodSandbox,
  RuntimeConf,
} from "../test/support/libcni";
import type { ModeName } from "./modes";
import {
  APP_PORT,
  OUTBOUND_PORT,
  OUTBOUND_SOCKPERF_PORT,
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

export interface ModeDeployment {
  mode: ModeName;
  client: BenchPod;
  server: BenchPod;
  processes: StartedProcess[];
  /** Client sidecar then server sidecar (none in mode none). */
  sidecars: StartedProcess[];
  /** host:port the client app calls for HTTP, and for the sockperf probe. */
  httpTarget: string;
  sockperfTarget: { host: string; port: number };
  /** Per-pod capture setup time of this mode (ms): iptables-restore or waggle's CNI ADD. */
  captureSetupMs: number[];
}

export interface ClusterOptions {
  modes: readonly ModeName[];
  placement: Placement;
  bodyBytes: number;
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

export class BenchCluster {
  readonly deployments = new Map<ModeName, ModeDeployment>();
  private readonly pods: BenchPod[] = [];
  private readonly list: NetworkConfigList;

  private constructor(
    readonly cni: CniNode,
    private readonly opts: ClusterOptions,
    /** Every plugin execution so far (the harness appends to it). */
    private readonly invocations: Invocation[],
  ) {
    this.list = cni.chain(CNI_VERSION, { log_level: "warn" });
  }

  get node() {
    return this.cni.node;
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
      for (const mode of opts.modes) await cluster.deploy(mode);
    } catch (e) {
      await cluster.destroy();
      throw e;
    }
    return cluster;
  }

  /** A pod sandbox wired by the CNI chain, with the bench sysctls. */
  async addPod(meshed: boolean): Promise<BenchPod> {
    const { sandbox, rt } = await this.cni.pod(meshed ? MESHED_ANNOTATIONS : {}, "bench");
    const first = this.invocations.length;
    try {
      const result = await this.cni.runtime.addNetworkList(this.list, rt);
      const address = result.ips?.[0]?.address;
      if (!address) throw new Error(`CNI ADD of ${sandbox.name} returned no address`);
      await sandbox.sysctl(POD_SYSCTLS);
      const addMs: Record<string, number> = {};
      for (const inv of this.invocations.slice(first)) addMs[inv.type] = inv.ms;
      const pod: BenchPod = { sandbox, ip: address.split("/")[0], rt, addMs };
      this.pods.push(pod);
      return pod;
    } catch (e) {
      await this.cni.runtime.delNetworkList(this.list, rt).catch(() => {});
      await sandbox.destroy();
      throw e;
    }
  }

  /** CNI DEL and removal of a pod made by addPod. */
  async removePod(pod: BenchPod): Promise<void> {
    const i = this.pods.indexOf(pod);
    if (i >= 0) this.pods.splice(i, 1);
    try {
      await this.cni.runtime.delNetworkList(this.list, pod.rt);
    } finally {
      await pod.sandbox.destroy();
    }
  }

  private async deploy(mode: ModeName): Promise<void> {
    const { placement, bodyBytes, log } = this.opts;
    log(`deploying mode ${mode}`);
    const meshed = mode === "waggle";
    const client = await this.addPod(meshed);
    const server = await this.addPod(meshed);
    const deployment: ModeDeployment = {
      mode,
      client,
      server,
      processes: [],
      sidecars: [],
      httpTarget: `${server.ip}:${APP_PORT}`,
      sockperfTarget: { host: server.ip, port: SOCKPERF_PORT },
      captureSetupMs: [],
    };
    this.deployments.set(mode, deployment);
    if (mode === "iptables") {
      for (const pod of [client, server])
        deployment.captureSetupMs.push(await applyIstioRules(pod.sandbox, pod.ip));
    }
    if (mode === "waggle") {
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
    for (const [pod, peer] of [
      [client, server],
      [server, client],
    ] as const) {
      const routing =
        mode === "explicit"
          ? ({ kind: "explicit", peerIp: peer.ip, selfIp: pod.ip } as const)
          : ({ kind: "intercept" } as const);
      deployment.sidecars.push(started(await startSidecar(pod.sandbox, routing, placement.mesh)));
    }
    if (mode === "explicit") {
      deployment.httpTarget = `127.0.0.1:${OUTBOUND_PORT}`;
      deployment.sockperfTarget = { host: "127.0.0.1", port: OUTBOUND_SOCKPERF_PORT };
    }
  }

  deployment(mode: ModeName): ModeDeployment {
    const d = this.deployments.get(mode);
    if (!d) throw new Error(`mode ${mode} is not deployed`);
    return d;
  }

  /** Everything torn down: processes (via the pod cgroups), CNI DEL, netns, bpffs, dirs. */
  async destroy(): Promise<void> {
    const errors: string[] = [];
    for (const d of this.deployments.values()) {
      for (const p of d.processes) await p.stop().catch((e) => errors.push(String(e)));
    }
    for (const pod of [...this.pods].reverse()) {
      await this.removePod(pod).catch((e) => errors.push(`${pod.sandbox.label}: ${e}`));
    }
    this.deployments.clear();
    await this.cni.destroy().catch((e) => errors.push(`node: ${e}`));
    if (errors.length > 0) throw new Error(`bench teardown: ${errors.join("; ")}`);
  }
}
