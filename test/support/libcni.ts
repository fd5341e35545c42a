// A container runtime's side of CNI, as libcni (containernetworking/cni 1.2) does it, for tests
// that run real plugin executables: a configuration list ADDed in order with each plugin's
// result as the next one's prevResult, DELeted in reverse with the cached result (none for
// 0.3.x lists), a result cache on disk laid out like /var/lib/cni/results, CHECK (0.4.0+), GC
// (DEL of stale cached attachments, then GC with cni.dev/valid-attachments, 1.1.0) and STATUS
// (1.1.0); containerd-style CNI_ARGS and runtimeConfig filtered by each plugin's declared
// capabilities. Plugins can run inside a "node" network namespace standing in for the host.
// Each plugin runs as containerd runs it (test/kernel/containerd.test.ts records the real
// calls): in "/" with the daemon's environment (a service manager gives it PATH alone) plus
// the CNI_* variables, never the test process's environment.
import { spawn, spawnSync } from "node:child_process";
import {
  accessSync,
  chmodSync,
  constants,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { cgroup2Root } from "../../base/cgroup2";
import {
  type CniResult,
  convertResult,
  isSupportedVersion,
  parseResult,
  type SupportedVersion,
  versionAtLeast,
} from "../../cni/skel";
import { COMMAND_PATH } from "./command";
import { uniqueName } from "./names";
import { track } from "./resources";
import { Sandbox } from "./sandbox";

export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
  disableCheck?: boolean;
  disableGC?: boolean;
}

/** One attachment's runtime parameters (libcni's RuntimeConf). */
export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs, in order. */
  args?: [string, string][];
  /** Capability arguments; each plugin gets those its entry declares. */
  capabilityArgs?: Record<string, unknown>;
}

/** One plugin execution, as the harness saw it. */
export interface Invocation {
  type: string;
  command: string;
  stdin: Record<string, unknown>;
  env: Record<string, string>;
  stdout: string;
  stderr: string;
  exitCode: number | null;
  ms: number;
}

/** A plugin failed: its error JSON, parsed, plus the invocation. */
export class PluginError extends Error {
  constructor(
    readonly invocation: Invocation,
    readonly code: number | undefined,
    readonly msg: string,
    readonly details: string | undefined,
  ) {
    super(
      `plugin type="${invocation.type}" failed (${invocation.command.toLowerCase()}): ${msg}${details ? `; ${details}` : ""}`,
    );
    this.name = "PluginError";
  }
}

export interface LibcniOptions {
  /** CNI_PATH: directories searched for `<type>`, in order. */
  path: string[];
  /** The runtime's cache directory (libcni: /var/lib/cni); results go to <cacheDir>/results. */
  cacheDir: string;
  /** Run every plugin inside this network namespace (path), the runtime's "host". */
  runtimeNetns?: string;
  /** Per-execution timeout (default 60 s); a plugin still running is killed. */
  timeoutMs?: number;
  /** Extra environment for every plugin. */
  env?: Record<string, string>;
  /** Called after every execution (tests collect timings and outputs). */
  onInvocation?: (inv: Invocation) => void;
}

/** A libcni cache entry (cachedInfo, kind cniCacheV1). */
interface CachedInfo {
  kind: "cniCacheV1";
  containerId: string;
  /** The list's bytes, base64 (Go marshals []byte so). */
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: CniResult;
}

export class Libcni {
  constructor(readonly opts: LibcniOptions) {}

  /** ADD every plugin in order; caches and returns the final result. */
  async addNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<CniResult> {
    const version = listVersion(list);
    let prev: CniResult | undefined;
    for (const plugin of list.plugins) {
      const inv = await this.exec(plugin, "ADD", this.buildConfig(list, plugin, prev, rt), rt);
      prev = parseResult(JSON.parse(inv.stdout || "null"), version, `result of ${plugin.type}`);
      if (prev.cniVersion !== list.cniVersion) {
        throw new Error(
          `plugin ${plugin.type} answered ADD in ${prev.cniVersion} for a ${list.cniVersion} list`,
        );
      }
    }
    if (!prev) throw new Error(`list ${list.name} has no plugins`);
    this.cacheAdd(list, rt, prev);
    return prev;
  }

  /** DEL every plugin in reverse order; prevResult is the cached result for 0.4.0+ lists. */
  async delNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    let cached: CniResult | undefined;
    if (versionAtLeast(listVersion(list), "0.4.0")) {
      try {
        cached = this.cachedResult(list, rt);
      } catch {
        this.cacheDel(list, rt);
      }
    }
    for (const plugin of [...list.plugins].reverse()) {
      await this.exec(plugin, "DEL", this.buildConfig(list, plugin, cached, rt), rt);
    }
    this.cacheDel(list, rt);
  }

  /** CHECK every plugin in order with the cached result (0.4.0+ lists, unless disableCheck). */
  async checkNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    if (!versionAtLeast(listVersion(list), "0.4.0")) {
      throw new Error(
        `configuration version "${list.cniVersion}" does not support the CHECK command`,
      );
    }
    if (list.disableCheck) return;
    const cached = this.cachedResult(list, rt);
    for (const plugin of list.plugins) {
      await this.exec(plugin, "CHECK", this.buildConfig(list, plugin, cached, rt), rt);
    }
  }

  /**
   * GC: DEL every cached attachment of this network not in `valid`, then (1.1.0 lists) GC
   * every plugin with the valid list. Keeps going past errors; throws them all at the end.
   */
  async gcNetworkList(
    list: NetworkConfigList,
    valid: { containerID: string; ifname: string }[],
  ): Promise<void> {
    if (list.disableGC) return;
    const errors: Error[] = [];
    const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
    for (const cached of this.cachedAttachments()) {
      if (cached.networkName !== list.name) continue;
      if (keep.has(`${cached.containerId}\0${cached.ifName}`)) continue;
      try {
        await this.delNetworkList(list, {
          containerId: cached.containerId,
          netns: cached.netns ?? "",
          ifname: cached.ifName,
          args: cached.cniArgs,
          capabilityArgs: cached.capabilityArgs,
        });
      } catch (e) {
        errors.push(e as Error);
      }
    }
    if (versionAtLeast(listVersion(list), "1.1.0")) {
      for (const plugin of list.plugins) {
        const conf = {
          ...plugin,
          name: list.name,
          cniVersion: list.cniVersion,
          "cni.dev/valid-attachments": valid,
          "cni.dev/attachments": valid,
        };
        try {
          await this.exec(plugin, "GC", conf, undefined);
        } catch (e) {
          errors.push(e as Error);
        }
      }
    }
    if (errors.length > 0)
      throw new AggregateError(errors, errors.map((e) => e.message).join("\n"));
  }

  /** STATUS of every plugin (1.1.0 lists; older lists have none). Throws the first error. */
  async getStatusNetworkList(list: NetworkConfigList): Promise<void> {
    if (!versionAtLeast(listVersion(list), "1.1.0")) return;
    for (const plugin of list.plugins) {
      await this.exec(
        plugin,
        "STATUS",
        { ...plugin, name: list.name, cniVersion: list.cniVersion },
        undefined,
      );
    }
  }

  /** VERSION of a plugin (libcni sends the newest version it knows and dummy variables). */
  async versionInfo(type: string): Promise<{ cniVersion: string; supportedVersions: string[] }> {
    const inv = await this.exec({ type }, "VERSION", { cniVersion: "1.1.0" }, undefined, {
      CNI_NETNS: "dummy",
      CNI_IFNAME: "dummy",
      CNI_PATH: "dummy",
    });
    return JSON.parse(inv.stdout);
  }

  /** The cached ADD result of an attachment, converted to the list's version. */
  cachedResult(list: NetworkConfigList, rt: RuntimeConf): CniResult {
    const info = JSON.parse(readFileSync(this.cachePath(list.name, rt), "utf8")) as CachedInfo;
    if (info.kind !== "cniCacheV1" || !info.result) throw new Error("no cached result");
    const version = listVersion(list);
    const stored = info.result.cniVersion;
    if (!isSupportedVersion(stored)) throw new Error(`cached result has version ${stored}`);
    const result = parseResult(structuredClone(info.result), stored, "cached result");
    return convertResult(result, version);
  }

  /** Every attachment in the cache (libcni's GetCachedAttachments). */
  cachedAttachments(): CachedInfo[] {
    const dir = join(this.opts.cacheDir, "results");
    if (!existsSync(dir)) return [];
    const out: CachedInfo[] = [];
    for (const name of readdirSync(dir)) {
      try {
        const info = JSON.parse(readFileSync(join(dir, name), "utf8")) as CachedInfo;
        if (info.kind === "cniCacheV1" && info.ifName && info.networkName) out.push(info);
      } catch {
        // not a cache file
      }
    }
    return out;
  }

  // libcni's buildOneConfig + injectRuntimeConfig: name and version from the list, prevResult
  // when there is one, runtimeConfig with the capabilities this plugin declares.
  private buildConfig(
    list: NetworkConfigList,
    plugin: PluginConf,
    prev: CniResult | undefined,
    rt: RuntimeConf,
  ): Record<string, unknown> {
    const conf: Record<string, unknown> = {
      ...plugin,
      name: list.name,
      cniVersion: list.cniVersion,
    };
    if (prev) conf.prevResult = prev;
    const runtimeConfig: Record<string, unknown> = {};
    for (const [cap, declared] of Object.entries(plugin.capabilities ?? {})) {
      if (declared && rt.capabilityArgs && cap in rt.capabilityArgs)
        runtimeConfig[cap] = rt.capabilityArgs[cap];
    }
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
    return conf;
  }

  private findPlugin(type: string): string {
    for (const dir of this.opts.path) {
      const candidate = join(dir, type);
      try {
        accessSync(candidate, constants.X_OK);
        if (statSync(candidate).isFile()) return candidate;
      } catch {
        // not here
      }
    }
    throw new Error(`failed to find plugin "${type}" in path [${this.opts.path.join(" ")}]`);
  }

  private async exec(
    plugin: PluginConf,
    command: string,
    stdin: Record<string, unknown>,
    rt: RuntimeConf | undefined,
    envOverride: Record<string, string> = {},
  ): Promise<Invocation> {
    const binary = this.findPlugin(plugin.type);
    const env: Record<string, string> = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt?.containerId ?? "",
      CNI_NETNS: rt?.netns ?? "",
      CNI_ARGS: (rt?.args ?? []).map(([k, v]) => `${k}=${v}`).join(";"),
      CNI_IFNAME: rt?.ifname ?? "",
      CNI_PATH: this.opts.path.join(":"),
      ...envOverride,
    };
    const [cmd, args] = this.opts.runtimeNetns
      ? ["nsenter", [`--net=${this.opts.runtimeNetns}`, binary]]
      : [binary, []];
    const input = JSON.stringify(stdin);
    let inv: Invocation | undefined;
    // libcni retries an exec that fails with "text file busy" (a plugin being replaced).
    for (let attempt = 0; attempt <= 5; attempt++) {
      inv = await this.spawnOnce(plugin.type, command, cmd, args, stdin, input, env);
      if (!/text file busy/i.test(inv.stderr) || inv.exitCode === 0) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const done = inv as Invocation;
    this.opts.onInvocation?.(done);
    if (done.exitCode !== 0) {
      let parsed: { code?: number; msg?: string; details?: string } = {};
      try {
        parsed = JSON.parse(done.stdout);
      } catch {
        parsed = {
          msg: done.stdout
            ? `unparsable error output ${JSON.stringify(done.stdout)}`
            : `netplugin failed: ${JSON.stringify(done.stderr)}`,
        };
      }
      throw new PluginError(done, parsed.code, parsed.msg ?? "", parsed.details);
    }
    return done;
  }

  private spawnOnce(
    type: string,
    command: string,
    cmd: string,
    args: string[],
    stdin: Record<string, unknown>,
    input: string,
    cniEnv: Record<string, string>,
  ): Promise<Invocation> {
    const started = process.hrtime.bigint();
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, {
        cwd: "/",
        env: { PATH: COMMAND_PATH, ...this.opts.env, ...cniEnv },
        stdio: ["pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on("data", (d: Buffer) => out.push(d));
      child.stderr.on("data", (d: Buffer) => err.push(d));
      const timer = setTimeout(() => child.kill("SIGKILL"), this.opts.timeoutMs ?? 60_000);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`exec ${cmd}: ${e.message}`));
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({
          type,
          command,
          stdin,
          env: cniEnv,
          stdout: Buffer.concat(out).toString(),
          stderr: Buffer.concat(err).toString(),
          exitCode: code,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        });
      });
      child.stdin.on("error", () => {});
      child.stdin.end(input);
    });
  }

  private cachePath(network: string, rt: RuntimeConf): string {
    return join(this.opts.cacheDir, "results", `${network}-${rt.containerId}-${rt.ifname}`);
  }

  private cacheAdd(list: NetworkConfigList, rt: RuntimeConf, result: CniResult): void {
    const info: CachedInfo = {
      kind: "cniCacheV1",
      containerId: rt.containerId,
      config: Buffer.from(JSON.stringify(list)).toString("base64"),
      ifName: rt.ifname,
      networkName: list.name,
      netns: rt.netns,
      cniArgs: rt.args,
      capabilityArgs: rt.capabilityArgs,
      result,
    };
    const path = this.cachePath(list.name, rt);
    mkdirSync(join(this.opts.cacheDir, "results"), { recursive: true, mode: 0o700 });
    writeFileSync(path, JSON.stringify(info), { mode: 0o600 });
  }

  private cacheDel(list: NetworkConfigList, rt: RuntimeConf): void {
    try {
      unlinkSync(this.cachePath(list.name, rt));
    } catch {
      // not cached
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function listVersion(list: NetworkConfigList): SupportedVersion {
  if (!isSupportedVersion(list.cniVersion))
    throw new Error(`unsupported list version ${list.cniVersion}`);
  return list.cniVersion;
}

/**
 * containerd's CNI_ARGS for a pod sandbox, in a random order as containerd sends them (it
 * builds them from a Go map, whose iteration order is random: IgnoreUnknown need not be first).
 */
export function k8sArgs(
  pod: {
    namespace: string;
    name: string;
    uid: string;
    infraContainerId: string;
  },
  random: () => number = Math.random,
): [string, string][] {
  const args: [string, string][] = [
    ["IgnoreUnknown", "1"],
    ["K8S_POD_NAMESPACE", pod.namespace],
    ["K8S_POD_NAME", pod.name],
    ["K8S_POD_INFRA_CONTAINER_ID", pod.infraContainerId],
    ["K8S_POD_UID", pod.uid],
  ];
  // Fisher-Yates
  for (let i = args.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [args[i], args[j]] = [args[j], args[i]];
  }
  return args;
}

/** The repository root (this file runs from out/test/support). */
export const REPO = join(__dirname, "..", "..", "..");
export const SYSTEM_CNI_DIR = "/usr/lib/cni";

/** How the waggle plugin is run: the single executable, or node over out/. */
export type WaggleBinary = { kind: "dist"; path: string } | { kind: "out"; path: string };

/**
 * dist/waggle when it exists, is not older than the compiled plugin in out/, and answers CNI
 * (a DEL for an unknown container succeeds); otherwise node over out/ (the test entry
 * test/support/cni-plugin-entry.ts). WAGGLE_TEST_PLUGIN=out|dist forces one.
 */
export function waggleBinary(): WaggleBinary {
  const dist = join(REPO, "dist", "waggle");
  const out: WaggleBinary = {
    kind: "out",
    path: join(REPO, "out", "test", "support", "cni-plugin-entry.js"),
  };
  const forced = process.env.WAGGLE_TEST_PLUGIN;
  if (forced === "out") return out;
  if (forced === "dist") return { kind: "dist", path: dist };
  if (!existsSync(dist)) return out;
  const newestOut = Math.max(
    ...PLUGIN_ROOMS.flatMap((room) =>
      readdirSync(join(REPO, "out", room), { recursive: true, withFileTypes: true }),
    )
      .filter((e) => e.isFile() && e.name.endsWith(".js"))
      .map((e) => statSync(join(e.parentPath, e.name)).mtimeMs),
  );
  if (statSync(dist).mtimeMs < newestOut) return out;
  return answersCni(dist) ? { kind: "dist", path: dist } : out;
}

/** The compiled rooms the plugin runs from (out/<room>): see README.md "Layout". */
const PLUGIN_ROOMS = ["base", "mesh", "datapath", "cni"];

// A DEL of a container nobody attached: succeeds only when the binary runs waggle's plugin.
function answersCni(binary: string): boolean {
  const bpfRoot = join(tmpdir(), `waggle-probe-${process.pid}`);
  const r = spawnSync(binary, [], {
    input: JSON.stringify({
      cniVersion: "1.0.0",
      name: "probe",
      type: "waggle",
      bpf_root: bpfRoot,
      log_level: "none",
    }),
    env: {
      ...process.env,
      CNI_COMMAND: "DEL",
      CNI_CONTAINERID: "probe0",
      CNI_IFNAME: "eth0",
      CNI_NETNS: "",
    },
    encoding: "utf8",
    timeout: 20_000,
  });
  return r.status === 0 && r.stdout === "";
}

export interface PluginDirOptions {
  /** Reference plugins to wrap with cni-version-shim so they run in a 1.1.0 list. */
  shim11?: string[];
}

/**
 * A directory for CNI_PATH (before /usr/lib/cni) holding `waggle` and, when asked, 1.1.0 shims
 * of reference plugins. Removed when the test run ends (or by the returned remove()).
 */
export function preparePluginDir(opts: PluginDirOptions = {}): {
  dir: string;
  waggle: WaggleBinary;
  remove(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), "waggle-cni-bin-"));
  const cleanups = [() => rmSync(dir, { recursive: true, force: true })];
  const tracked = track(`CNI plugin dir ${dir}`, () => {
    for (const c of cleanups) c();
  });
  const node = join(REPO, "node_modules", ".bin", "node");
  const waggle = waggleBinary();
  const script = (lines: string[]) => `#!/bin/sh\n${lines.join("\n")}\n`;
  let command = waggle.path;
  if (waggle.kind === "out") {
    const snapshot = snapshotOut();
    cleanups.push(() => rmSync(snapshot.root, { recursive: true, force: true }));
    command = `${node} ${snapshot.entry}`;
  }
  writeFileSync(join(dir, "waggle"), script([`exec ${command}`]));
  chmodSync(join(dir, "waggle"), 0o755);
  const shim = join(REPO, "out", "test", "support", "cni-version-shim.js");
  for (const type of opts.shim11 ?? []) {
    writeFileSync(join(dir, type), script([`exec ${node} ${shim} ${join(SYSTEM_CNI_DIR, type)}`]));
    chmodSync(join(dir, type), 0o755);
  }
  return { dir, waggle, remove: () => tracked.release() };
}

/**
 * A private copy of the compiled plugin (its rooms under out/, out/ebpf-napi, the test entry, the addon
 * and the BPF objects) under build/, so a rebuild while a long test runs (other work in the
 * same checkout) never hands a plugin process a half-written file. Other dependencies resolve
 * from the repository's node_modules.
 */
function snapshotOut(): { root: string; entry: string } {
  const parent = join(REPO, "build");
  mkdirSync(parent, { recursive: true });
  // Snapshots of runs that were killed (no exit handler ran) go first: named by their pid.
  for (const name of readdirSync(parent)) {
    const pid = /^cni-test-(\d+)-/.exec(name)?.[1];
    if (pid && !processAlive(Number(pid)))
      rmSync(join(parent, name), { recursive: true, force: true });
  }
  const root = mkdtempSync(join(parent, `cni-test-${process.pid}-`));
  const copy = (rel: string) => cpSync(join(REPO, rel), join(root, rel), { recursive: true });
  for (const room of PLUGIN_ROOMS) copy(join("out", room));
  copy("out/ebpf-napi");
  copy("out/test/support/cni-plugin-entry.js");
  // the addon with its libraries, and the BPF objects: rebuilt in place by other work too
  for (const f of readdirSync(join(REPO, "ebpf-napi", "build", "Release"))) {
    if (f.endsWith(".node") || f.includes(".so")) copy(join("ebpf-napi", "build", "Release", f));
  }
  copy("bpf/build");
  mkdirSync(join(root, "node_modules", "ebpf-napi"), { recursive: true });
  writeFileSync(
    join(root, "node_modules", "ebpf-napi", "index.js"),
    'module.exports = require("../../out/ebpf-napi/lib/index.js");\n',
  );
  writeFileSync(
    join(root, "node_modules", "ebpf-napi", "package.json"),
    '{"name":"ebpf-napi","main":"index.js"}\n',
  );
  return { root, entry: join(root, "out", "test", "support", "cni-plugin-entry.js") };
}

/**
 * A pod sandbox as a runtime creates it before CNI ADD: an empty network namespace (lo only)
 * and the pod cgroup; the CNI chain wires the rest. `cgroupPath` is the runtimeConfig value
 * (the cgroup relative to the cgroup2 mount, cgroupfs style).
 */
export class PodSandbox extends Sandbox {
  static async create(label = "pod"): Promise<PodSandbox> {
    const pod = new PodSandbox(uniqueName("p"), label);
    await pod.materialize(async () => {});
    return pod;
  }

  get cgroupPath(): string {
    return `/${relative(cgroup2Root(), this.cgroupDir)}`;
  }
}
