// A private containerd (Debian's 1.6 with its CRI plugin, runc) for kernel tests, and a
// kubelet stand-in that drives it over the CRI as kubelet does.
//
// PrivateContainerd: its own config, root, state, socket, runc root, CNI bin and conf dirs,
// all under one temporary directory; it runs inside a test node's netns (pod veths and routes
// end there, as on a node) with the environment a service manager gives it (PATH only). It
// shares nothing with a system containerd but the shim socket directory /run/containerd/s
// (the shims' sockets are named by a hash of this instance's socket, so they never clash).
// destroy() (also registered for the run's teardown) stops the pods through the CRI when it
// can, then kills containerd, its shims and every process left in the pod cgroups, unmounts
// whatever it mounted, and removes the cgroups and the directory.
//
// KubeletStandIn: what kubelet does around RunPodSandbox with the cgroupfs driver: it makes
// the pod cgroup <cgroup root>/kubepods/besteffort/pod<uid> (in the cgroup2 tree; runc makes
// the v1 ones) before asking for the sandbox, and passes it as CgroupParent. The cgroup root
// is "kubelet-<run tag>" (kubelet's --cgroup-root, as kind uses /kubelet), so test runs never
// share a tree and waggle's search by pod UID (under kubepods/kubelet trees) finds it.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroup2Root } from "../../base/cgroup2";
import { COMMAND_PATH, runSync, sleep, sleepSync } from "./command";
import { CriClient, type Message } from "./cri-client";
import { preparePluginDir, REPO, SYSTEM_CNI_DIR } from "./libcni";
import { RUN_TAG } from "./names";
import {
  APP_IMAGE,
  appImage,
  buildImageArchive,
  importImage,
  PAUSE_IMAGE,
  pauseImage,
} from "./oci-image";
import { createNode, type Node } from "./pod";
import { listPids } from "./procs";
import { type TrackedResource, track } from "./resources";

/** One plugin invocation as containerd made it, recorded by the CNI bin dir's waggle wrapper. */
export interface RecordedCall {
  /** CNI_* variables. */
  env: Record<string, string>;
  /** The stdin config, parsed. */
  conf: Record<string, unknown> & { runtimeConfig?: Record<string, unknown>; prevResult?: unknown };
  /** The plugin process's working directory. */
  cwd: string;
}

export interface PrivateContainerdOptions {
  /** The network config list to put in the CNI conf dir (written before containerd starts). */
  conflist: (dirs: { work: string }) => object;
}

export class PrivateContainerd {
  readonly work = mkdtempSync(join(tmpdir(), "waggle-ctrd-"));
  readonly socket = join(this.work, "containerd.sock");
  readonly cniBin = join(this.work, "cni-bin");
  readonly cniConf = join(this.work, "cni-conf");
  readonly podLogs = join(this.work, "pods");
  readonly logFile = join(this.work, "containerd.log");
  readonly callsDir = join(this.work, "cni-calls");
  private readonly plugins = preparePluginDir();
  private proc: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private client: CriClient | undefined;
  /** Host ports made reachable inside the node netns: the forwarders and their host ends. */
  private readonly forwards: Array<{ child: ChildProcess; server: Server }> = [];
  private readonly tracked: TrackedResource;
  private readonly shimDirExisted = existsSync("/run/containerd/s");

  private constructor(
    readonly node: Node,
    readonly kubelet: KubeletStandIn,
    opts: PrivateContainerdOptions,
  ) {
    this.tracked = track(`private containerd ${this.work}`, () => this.sweep());
    for (const d of [this.cniBin, this.cniConf, this.podLogs, this.callsDir]) mkdirSync(d);
    // The reference plugins containerd's CRI needs (loopback for lo) and the chain's.
    for (const p of ["loopback", "ptp", "host-local", "portmap"])
      symlinkSync(join(SYSTEM_CNI_DIR, p), join(this.cniBin, p));
    // waggle behind a wrapper that records each call (CNI_* env, stdin, cwd), then execs it.
    writeFileSync(
      join(this.cniBin, "waggle"),
      [
        "#!/bin/sh",
        `rec="${this.callsDir}/$(date +%s%N)-$$"`,
        'env | grep "^CNI_" > "$rec.env"',
        'pwd > "$rec.cwd"',
        'cat > "$rec.stdin"',
        `exec ${join(this.plugins.dir, "waggle")} < "$rec.stdin"`,
        "",
      ].join("\n"),
    );
    chmodSync(join(this.cniBin, "waggle"), 0o755);
    writeFileSync(
      join(this.cniConf, "10-calico.conflist"),
      JSON.stringify(opts.conflist({ work: this.work }), null, 2),
    );
    writeFileSync(join(this.work, "config.toml"), this.config());
  }

  /** A node netns, containerd in it with the pause and app images imported, ready for pods. */
  static async start(opts: PrivateContainerdOptions): Promise<PrivateContainerd> {
    const node = await createNode({ label: "containerd node" });
    const kubelet = new KubeletStandIn();
    const c = new PrivateContainerd(node, kubelet, opts);
    try {
      const archives = await Promise.all([
        buildImageArchive(pauseImage()),
        buildImageArchive(appImage()),
      ]);
      await c.startDaemon();
      for (const a of archives) await importImage(c.socket, a);
      if (!(await c.cri.imageId(PAUSE_IMAGE)))
        throw new Error(`${PAUSE_IMAGE} not visible over the CRI`);
      return c;
    } catch (e) {
      const log = c.logTail();
      await c.destroy();
      throw new Error(`${(e as Error).message}\ncontainerd log:\n${log}`);
    }
  }

  /** Where the CRI bind-mounts pod network namespaces (netns_mounts_under_state_dir). */
  get netnsDir(): string {
    return join(this.work, "state", "io.containerd.grpc.v1.cri", "netns");
  }

  get cri(): CriClient {
    if (!this.client) throw new Error("containerd is not running");
    return this.client;
  }

  /** containerd's own config: everything under `work`, CRI with cgroupfs and the test's CNI. */
  private config(): string {
    const w = this.work;
    const cri = '[plugins."io.containerd.grpc.v1.cri"]';
    return `version = 2
root = "${w}/root"
state = "${w}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${this.socket}"
[ttrpc]
  address = "${this.socket}.ttrpc"
[debug]
  address = ""
  level = "debug"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${w}/opt"

${cri}
  sandbox_image = "${PAUSE_IMAGE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
${cri.slice(0, -1)}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
${cri.slice(0, -1)}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
${cri.slice(0, -1)}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "${w}/runc"
${cri.slice(0, -1)}.cni]
  bin_dir = "${this.cniBin}"
  conf_dir = "${this.cniConf}"
  max_conf_num = 1
`;
  }

  /** Starts containerd (in the node netns, PATH-only environment) and waits for its CRI. */
  async startDaemon(): Promise<void> {
    if (this.proc) throw new Error("containerd is already running");
    const out = openSync(this.logFile, "a");
    const proc = spawn(
      "nsenter",
      [`--net=${this.node.netnsPath}`, "containerd", "--config", join(this.work, "config.toml")],
      { env: { PATH: COMMAND_PATH }, cwd: "/", stdio: ["ignore", out, out] },
    );
    closeSync(out);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on("exit", () => resolve()));
    void this.exited.then(() => {
      if (this.proc === proc) this.proc = undefined;
    });
    this.client = new CriClient(this.socket);
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await this.cri.version();
        return;
      } catch (e) {
        if (!this.proc) throw new Error(`containerd exited at start: ${this.logTail()}`);
        if (Date.now() > deadline)
          throw new Error(`containerd's CRI did not answer: ${(e as Error).message}`);
        await sleep(200);
      }
    }
  }

  /** Stops containerd only (SIGTERM; its shims and the pods keep running). */
  async stopDaemon(): Promise<void> {
    this.client?.close();
    this.client = undefined;
    const proc = this.proc;
    if (!proc || !this.exited) return;
    proc.kill("SIGTERM");
    const killed = setTimeout(() => proc.kill("SIGKILL"), 15_000);
    await this.exited;
    clearTimeout(killed);
  }

  /** containerd's log (with the plugins' stderr), the last `chars` characters. */
  logTail(chars = 6000): string {
    try {
      return readFileSync(this.logFile, "utf8").slice(-chars);
    } catch {
      return "";
    }
  }

  /** Every waggle invocation so far, oldest first. */
  calls(): RecordedCall[] {
    const names = readdirSync(this.callsDir)
      .filter((n) => n.endsWith(".stdin"))
      .map((n) => n.slice(0, -".stdin".length))
      .sort((a, b) => {
        const [ta, tb] = [BigInt(a.split("-")[0]), BigInt(b.split("-")[0])];
        return ta < tb ? -1 : ta > tb ? 1 : 0;
      });
    return names.map((n) => {
      const read = (ext: string) => readFileSync(join(this.callsDir, `${n}.${ext}`), "utf8");
      const env: Record<string, string> = {};
      for (const line of read("env").split("\n")) {
        const i = line.indexOf("=");
        if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
      }
      return { env, conf: JSON.parse(read("stdin")), cwd: read("cwd").trim() };
    });
  }

  /** The calls for one sandbox (CNI_CONTAINERID). */
  callsFor(sandboxId: string): RecordedCall[] {
    return this.calls().filter((c) => c.env.CNI_CONTAINERID === sandboxId);
  }

  /**
   * Makes the host's 127.0.0.1:`port` reachable as 127.0.0.1:`port` inside the node netns,
   * where containerd and the plugins it runs live (a node reaches its API server; here the
   * API stand-in listens on the host's loopback). A Node forwarder in the node netns passes
   * each connection through a Unix socket under `work` to the host's port.
   */
  async forwardHostPort(port: number): Promise<void> {
    const path = join(this.work, `forward-${port}.sock`);
    const server = createServer((conn) => {
      const upstream = createConnection(port, "127.0.0.1");
      conn.pipe(upstream).pipe(conn);
      const end = () => {
        conn.destroy();
        upstream.destroy();
      };
      conn.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const script = [
      "const net = require('node:net');",
      "const [port, path] = process.argv.slice(1);",
      "net.createServer((c) => {",
      "  const u = net.connect(path); c.pipe(u).pipe(c);",
      "  const end = () => { c.destroy(); u.destroy(); };",
      "  c.on('error', end).on('close', end); u.on('error', end).on('close', end);",
      "}).listen(Number(port), '127.0.0.1', () => console.log('listening'));",
    ].join("\n");
    const child = spawn(
      "nsenter",
      [
        `--net=${this.node.netnsPath}`,
        join(REPO, "node_modules", ".bin", "node"),
        "-e",
        script,
        String(port),
        path,
      ],
      { env: { PATH: COMMAND_PATH }, stdio: ["ignore", "pipe", "pipe"] },
    );
    this.forwards.push({ child, server });
    await new Promise<void>((resolve, reject) => {
      let err = "";
      child.stderr?.on("data", (d: Buffer) => {
        err += d.toString();
      });
      child.stdout?.on("data", (d: Buffer) => {
        if (d.toString().includes("listening")) resolve();
      });
      child.once("exit", (code) =>
        reject(new Error(`port forwarder into the node netns exited (${code}): ${err}`)),
      );
    });
  }

  private stopForwards(): void {
    for (const { child, server } of this.forwards.splice(0)) {
      child.kill("SIGKILL");
      server.close();
    }
  }

  /** Stops and removes every sandbox over the CRI (best effort), then sweeps. */
  async destroy(): Promise<void> {
    if (this.client) {
      try {
        for (const s of await this.cri.listPodSandbox()) {
          await this.cri.stopPodSandbox(s.id).catch(() => undefined);
          await this.cri.removePodSandbox(s.id).catch(() => undefined);
        }
      } catch {
        // containerd is not answering: the sweep kills what is left
      }
    }
    await this.stopDaemon();
    this.tracked.release();
    this.plugins.remove();
    await this.node.destroy();
  }

  /**
   * Synchronous cleanup (also the run's teardown): kills containerd, its shims and the pods'
   * processes, unmounts what is mounted under `work`, removes the pod cgroups and `work`.
   */
  private sweep(): void {
    this.stopForwards();
    if (this.proc?.pid) {
      try {
        process.kill(this.proc.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    // Shims carry this instance's socket in their arguments (-address).
    const shims = listPids().filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(this.socket);
      } catch {
        return false;
      }
    });
    this.kubelet.killPodProcesses();
    for (const pid of shims) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    sleepSync(100);
    for (const mount of mountsUnder(this.work)) {
      try {
        runSync("umount", ["-l", mount]);
      } catch {
        // already gone with its parent
      }
    }
    this.kubelet.removeCgroups();
    rmSync(this.work, { recursive: true, force: true });
    if (!this.shimDirExisted) {
      try {
        rmdirSync("/run/containerd/s");
        rmdirSync("/run/containerd");
      } catch {
        // in use by another containerd, or not empty
      }
    }
  }
}

/** Mount points at or below `dir`, deepest first (from this process's mountinfo). */
function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

/** Every cgroup hierarchy's mount point (v1 controllers and the cgroup2 one). */
function cgroupMounts(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => / - cgroup2? /.test(l))
    .map((l) => l.split(" ")[4]);
}

/** A pod as kubelet describes it to the runtime. */
export interface PodSpec {
  name: string;
  /** The pod's UID (default: a fresh one), e.g. to serve the pod from an API stand-in first. */
  uid?: string;
  namespace?: string;
  annotations?: Record<string, string>;
}

/** A pod sandbox the stand-in asked for. */
export interface RunningPod {
  uid: string;
  sandboxId: string;
  /** The sandbox config, passed again with every CreateContainer. */
  config: Message;
  /** The pod cgroup's directory in the cgroup2 tree. */
  cgroupDir: string;
  /** The pod's IP as the runtime reports it. */
  ip: string;
  /** The pod's netns (from the sandbox's runtime spec). */
  netnsPath: string;
}

export class KubeletStandIn {
  /** kubelet's --cgroup-root, relative to each hierarchy's mount. */
  readonly cgroupRoot = `kubelet-${RUN_TAG}`;

  /** The pod cgroup as kubelet's cgroupfs driver names it (CgroupParent). */
  cgroupParent(uid: string): string {
    return `/${this.cgroupRoot}/kubepods/besteffort/pod${uid}`;
  }

  /** The stand-in's cgroup root in the cgroup2 tree. */
  cgroupTreeDir(): string {
    return join(cgroup2Root(), this.cgroupRoot);
  }

  /** Makes the pod cgroup in the cgroup2 tree, as kubelet does before RunPodSandbox. */
  makePodCgroup(uid: string): string {
    const dir = join(cgroup2Root(), this.cgroupParent(uid));
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** The sandbox config kubelet sends for a pod (metadata, labels, annotations, cgroup). */
  sandboxConfig(spec: PodSpec, uid: string, logDirectory: string): Message {
    const namespace = spec.namespace ?? "shop";
    return {
      metadata: { name: spec.name, uid, namespace, attempt: 0 },
      hostname: spec.name,
      logDirectory,
      dnsConfig: {},
      labels: {
        "io.kubernetes.pod.name": spec.name,
        "io.kubernetes.pod.namespace": namespace,
        "io.kubernetes.pod.uid": uid,
      },
      annotations: { "kubernetes.io/config.source": "api", ...spec.annotations },
      linux: {
        cgroupParent: this.cgroupParent(uid),
        securityContext: { namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" } },
      },
    };
  }

  /** Kills every process in this stand-in's cgroups (all hierarchies). */
  killPodProcesses(): void {
    for (const mount of cgroupMounts()) {
      for (const dir of dirsUnder(join(mount, this.cgroupRoot))) {
        let procs: string[] = [];
        try {
          procs = readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean);
        } catch {
          continue;
        }
        for (const pid of procs) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {
            // gone
          }
        }
      }
    }
  }

  /** Removes this stand-in's cgroups in every hierarchy, deepest first. */
  removeCgroups(): void {
    for (let attempt = 0; attempt < 20; attempt++) {
      let left = 0;
      for (const mount of cgroupMounts()) {
        for (const dir of dirsUnder(join(mount, this.cgroupRoot)).reverse()) {
          try {
            rmdirSync(dir);
          } catch {
            left++;
          }
        }
      }
      if (left === 0) return;
      this.killPodProcesses();
      sleepSync(100);
    }
  }

  /** Runs a pod over the CRI the way kubelet does, and returns what the tests need of it. */
  async runPod(
    cri: CriClient,
    spec: PodSpec,
    logRoot: string,
    opts: { podCgroup?: boolean } = {},
  ): Promise<RunningPod> {
    const uid = spec.uid ?? randomUUID();
    const cgroupDir =
      opts.podCgroup === false
        ? join(cgroup2Root(), this.cgroupParent(uid))
        : this.makePodCgroup(uid);
    const logDirectory = join(logRoot, `${spec.namespace ?? "shop"}_${spec.name}_${uid}`);
    mkdirSync(logDirectory, { recursive: true });
    const config = this.sandboxConfig(spec, uid, logDirectory);
    const sandboxId = await cri.runPodSandbox(config);
    const { status, info } = await cri.podSandboxStatus(sandboxId);
    const namespaces = ((info.runtimeSpec as Message)?.linux as Message)?.namespaces as
      | Array<{ type: string; path?: string }>
      | undefined;
    const netnsPath = namespaces?.find((n) => n.type === "network")?.path ?? "";
    return { uid, sandboxId, config, cgroupDir, ip: status.network?.ip ?? "", netnsPath };
  }

  /** What kubelet does when a pod goes: stop, remove, and its pod cgroup removed. */
  async removePod(cri: CriClient, pod: RunningPod): Promise<void> {
    await cri.stopPodSandbox(pod.sandboxId);
    await cri.removePodSandbox(pod.sandboxId);
    this.removePodCgroup(pod);
  }

  /** Removes a pod's cgroup in every hierarchy (runc removed its containers' own). */
  removePodCgroup(pod: RunningPod): void {
    for (const mount of cgroupMounts()) {
      for (const d of dirsUnder(join(mount, this.cgroupParent(pod.uid))).reverse()) {
        try {
          rmdirSync(d);
        } catch {
          // a container's cgroup runc has not removed yet: swept at the end
        }
      }
    }
  }
}

/** A container of a pod, run from the app image with the host's /usr mounted read-only. */
export interface ContainerSpec {
  name: string;
  command: string[];
  /** uid and gid of the container's process. */
  runAs: number;
  workingDir?: string;
  /** Host directories mounted read-only. */
  mounts?: Array<{ containerPath: string; hostPath: string }>;
}

/** Creates and starts a container in a pod, as kubelet does; returns its id. */
export async function startContainer(
  cri: CriClient,
  pod: RunningPod,
  spec: ContainerSpec,
): Promise<string> {
  const mounts = [{ containerPath: "/usr", hostPath: "/usr" }, ...(spec.mounts ?? [])];
  const id = await cri.createContainer(
    pod.sandboxId,
    {
      metadata: { name: spec.name, attempt: 0 },
      image: { image: APP_IMAGE },
      command: spec.command,
      workingDir: spec.workingDir ?? "/",
      mounts: mounts.map((m) => ({ ...m, readonly: true })),
      logPath: `${spec.name}/0.log`,
      labels: { "io.kubernetes.container.name": spec.name },
      linux: {
        securityContext: {
          runAsUser: { value: spec.runAs },
          runAsGroup: { value: spec.runAs },
          namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" },
        },
      },
    },
    pod.config,
  );
  await cri.startContainer(id);
  return id;
}

/**
 * A container's output so far, one message per line, from the CRI log file containerd writes
 * ("<time> <stdout|stderr> <F|P> <message>"); `stream` picks one stream.
 */
export function containerLog(
  pod: RunningPod,
  name: string,
  stream?: "stdout" | "stderr",
): string[] {
  const file = join(pod.config.logDirectory as string, name, "0.log");
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .map((l) => /^\S+ (stdout|stderr) [FP] (.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && (!stream || m[1] === stream))
    .map((m) => m[2]);
}

/** Waits until a container's log has a line matching `predicate`, and returns it. */
export async function waitForLog(
  pod: RunningPod,
  name: string,
  predicate: (line: string) => boolean,
  timeoutMs = 10_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = containerLog(pod, name).find(predicate);
    if (line !== undefined) return line;
    if (Date.now() > deadline)
      throw new Error(
        `no matching line in ${name}'s log after ${timeoutMs} ms: ${containerLog(pod, name).join("\n").slice(-2000)}`,
      );
    await sleep(100);
  }
}

/** `dir` and every directory below it, parents first; [] when `dir` does not exist. */
function dirsUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const found = [dir];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isDirectory()) found.push(join(e.parentPath, e.name));
  }
  return found.sort((a, b) => a.split("/").length - b.split("/").length);
}
