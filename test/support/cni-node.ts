// A test "node" running the Calico-shaped CNI chain through the libcni harness: a node netns
// (plugins run there), a unique bpffs root for waggle, a plugin dir with waggle (and 1.1.0
// shims for the reference plugins), a runtime cache and host-local data dir, and pod
// sandboxes with containerd-style arguments. Everything is removed by destroy() or at exit.
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CommandResult, run } from "./command";
import {
  k8sArgs,
  Libcni,
  type LibcniOptions,
  type NetworkConfigList,
  PodSandbox,
  preparePluginDir,
  type RuntimeConf,
  SYSTEM_CNI_DIR,
} from "./libcni";
import { uniqueName } from "./names";
import { createNode, type Node } from "./pod";
import { track } from "./resources";
import { BpfRoot } from "./waggle-mode";

/** The injector's status annotation of a meshed pod (native validation init container). */
export const SIDECAR_STATUS = JSON.stringify({
  initContainers: ["istio-validation"],
  containers: ["istio-proxy"],
});
export const MESHED_ANNOTATIONS: Record<string, string> = {
  "sidecar.istio.io/status": SIDECAR_STATUS,
};

/**
 * Calico's chain shape as the installer finds it on a node: ptp + host-local (in calico's
 * place, host-local keeping its leases in `hostLocalDir`), portmap, then the waggle entry.
 */
export function calicoShapedChain(
  version: string,
  hostLocalDir: string,
  waggleEntry: Record<string, unknown> & { type: string },
): NetworkConfigList {
  return {
    cniVersion: version,
    name: "k8s-pod-network",
    plugins: [
      {
        type: "ptp",
        ipMasq: false,
        mtu: 1500,
        ipam: {
          type: "host-local",
          subnet: "10.250.0.0/16",
          dataDir: hostLocalDir,
          routes: [{ dst: "0.0.0.0/0" }],
        },
      },
      { type: "portmap", snat: true, capabilities: { portMappings: true } },
      waggleEntry,
    ],
  };
}

export interface CniPod {
  sandbox: PodSandbox;
  rt: RuntimeConf;
}

export class CniNode {
  readonly bpf = new BpfRoot();
  readonly work = mkdtempSync(join(tmpdir(), "waggle-cni-"));
  readonly plugins = preparePluginDir({ shim11: ["ptp", "portmap"] });
  readonly runtime: Libcni;
  private readonly workTracked = track(`CNI work dir ${this.work}`, () =>
    rmSync(this.work, { recursive: true, force: true }),
  );

  private constructor(
    readonly node: Node,
    opts: Partial<LibcniOptions>,
  ) {
    this.runtime = new Libcni({
      path: [this.plugins.dir, SYSTEM_CNI_DIR],
      cacheDir: join(this.work, "cache"),
      runtimeNetns: node.netnsPath,
      ...opts,
    });
  }

  static async create(opts: Partial<LibcniOptions> = {}): Promise<CniNode> {
    return new CniNode(await createNode({ label: "cni node" }), opts);
  }

  /** A runtime over the same node with other options (e.g. onInvocation). */
  libcni(opts: Partial<LibcniOptions>): Libcni {
    return new Libcni({ ...this.runtime.opts, ...opts });
  }

  get logFile(): string {
    return join(this.work, "waggle.log");
  }

  /** waggle's JSON log lines so far. */
  logLines(): Record<string, unknown>[] {
    try {
      return readFileSync(this.logFile, "utf8")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    } catch {
      return [];
    }
  }

  /** waggle's entry as the installer would add it, with overrides. */
  waggleEntry(overrides: Record<string, unknown> = {}): Record<string, unknown> & { type: string } {
    return {
      type: "waggle",
      bpf_root: this.bpf.path,
      log_level: "debug",
      log_file: this.logFile,
      capabilities: { cgroupPath: true, "io.kubernetes.cri.pod-annotations": true },
      ...overrides,
    };
  }

  /** The Calico-shaped list: ptp + host-local (for calico), portmap, then waggle. */
  chain(version: string, waggle: Record<string, unknown> = {}): NetworkConfigList {
    return calicoShapedChain(version, join(this.work, "host-local"), this.waggleEntry(waggle));
  }

  /** A pod sandbox and its runtime parameters (containerd's CNI_ARGS and capability args). */
  async pod(
    annotations: Record<string, string> = MESHED_ANNOTATIONS,
    namespace = "shop",
  ): Promise<CniPod> {
    const sandbox = await PodSandbox.create();
    const containerId = uniqueName("k");
    return {
      sandbox,
      rt: {
        containerId,
        netns: sandbox.netnsPath,
        ifname: "eth0",
        // the pod's UID, as kubelet gives it and containerd passes it
        args: k8sArgs({
          namespace,
          name: sandbox.name,
          uid: randomUUID(),
          infraContainerId: containerId,
        }),
        capabilityArgs: {
          cgroupPath: sandbox.cgroupPath,
          "io.kubernetes.cri.pod-annotations": annotations,
          portMappings: [],
        },
      },
    };
  }

  /**
   * Runs the waggle executable once, directly (as a runtime would, inside the node netns, or
   * with hostNetns in this process's netns, e.g. to reach a fake API server on loopback), with
   * the given CNI_* variables and stdin object.
   */
  async execWaggle(
    env: Record<string, string>,
    stdin: Record<string, unknown> | string,
    opts: { hostNetns?: boolean } = {},
  ): Promise<CommandResult & { json?: Record<string, unknown> }> {
    const input = typeof stdin === "string" ? stdin : JSON.stringify(stdin);
    const waggle = join(this.plugins.dir, "waggle");
    const [cmd, args] = opts.hostNetns
      ? [waggle, []]
      : ["nsenter", [`--net=${this.node.netnsPath}`, waggle]];
    const r = await run(cmd, args, {
      input,
      env: { ...process.env, CNI_PATH: `${this.plugins.dir}:${SYSTEM_CNI_DIR}`, ...env },
    });
    let json: Record<string, unknown> | undefined;
    try {
      json = r.stdout ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
    } catch {
      json = undefined;
    }
    return { ...r, json };
  }

  async destroy(): Promise<void> {
    await this.node.destroy();
    this.bpf.destroy();
    this.plugins.remove();
    this.workTracked.release();
  }
}
