// The shipped plugin as a black box: dist/waggle run once with CNI_* variables and stdin, its
// outcome classified (a result, a CNI error with a documented code, or a crash or a hang), and
// everything a pod can leave behind in the kernel read from outside: the pins under the test's
// bpf root, the entries of every shared map, the pod cgroup's programs and the pod netns's
// links. The reliability suite (test/reliability) and `npm run soak` use only this, the pod
// fixtures and the bpf root, never the plugin's modules, so they hold across a refactor.

import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { BpfMap, type CgroupAttachType, cgroupQuery, netnsQuery } from "ebpf-napi";
import { cgroup2Root } from "../../base/cgroup2";
import { COMMAND_PATH } from "./command";
import type { Pod } from "./pod";

export const REPO_ROOT = join(__dirname, "..", "..", "..");
/**
 * The single executable `scripts/build` makes, or $WAGGLE_BINARY (a copy, so that a long run
 * is not handed a half-written file when the checkout is rebuilt meanwhile).
 */
export const WAGGLE_BINARY = process.env.WAGGLE_BINARY || join(REPO_ROOT, "dist", "waggle");

/** The error codes README.md documents (999, "a bug", is deliberately not among them). */
export const DOCUMENTED_CODES: ReadonlySet<number> = new Set([
  1, 2, 4, 5, 6, 7, 8, 11, 50, 51, 100, 101, 102, 103, 104, 105, 106, 107,
]);

/** A JavaScript stack frame as Node prints it ("    at fn (file.js:1:2)"). */
const STACK_FRAME = /\n\s+at .+:\d+:\d+\)?/;

/** What one run of the plugin came to. */
export type Outcome =
  /** exit 0 */
  | "ok"
  /** exit 1 with a CNI error JSON whose code is documented */
  | "cni-error"
  /** anything else: code 999, no or bad JSON, another exit code, a signal, a stack trace */
  | "crash"
  /** still running at the bound: killed */
  | "hang";

export interface CniRun {
  outcome: Outcome;
  /** The CNI error code (cni-error and coded crashes). */
  code?: number;
  /** Why a crash is one (for messages). */
  problem?: string;
  exitCode: number | null;
  /** The signal that ended it (SIGKILL for a hang, or a kill by the test). */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface CniRunOptions {
  /** Kill the plugin after this many ms and call it a hang (default 20 s). */
  timeoutMs?: number;
  /** The executable (default dist/waggle). */
  binary?: string;
  /** The working directory (default: this process's). */
  cwd?: string;
  /** Called with the pid as soon as the plugin is started (the kill -9 tests use it). */
  onSpawn?: (pid: number) => void;
}

/**
 * Runs the plugin once as a runtime does: the given environment only (plus PATH), `stdin`
 * written and closed. Never rejects for the plugin's own failures.
 */
export function runWaggle(
  env: Record<string, string>,
  stdin: string | Buffer,
  opts: CniRunOptions = {},
): Promise<CniRun> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(opts.binary ?? WAGGLE_BINARY, [], {
      env: { PATH: COMMAND_PATH, ...env },
      cwd: opts.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      const ms = performance.now() - started;
      const base = { exitCode, signal, stdout, stderr, ms };
      // a hang is a call our kill ended; one that exited by itself as the timer fired (the
      // runner's own event loop late on a saturated machine) is judged by what it answered
      if (timedOut && signal === "SIGKILL")
        resolve({ ...base, outcome: "hang", problem: `still running after ${ms} ms` });
      else resolve({ ...base, ...classify(exitCode, signal, stdout, stderr) });
    });
    child.stdin.on("error", () => {}); // the plugin may exit before reading all of stdin
    child.stdin.end(stdin);
  });
}

/** The CNI contract of one finished run: a result, or exit 1 and a documented error code. */
export function classify(
  exitCode: number | null,
  signal: NodeJS.Signals | null,
  stdout: string,
  stderr: string,
): Pick<CniRun, "outcome" | "code" | "problem"> {
  if (signal) return { outcome: "crash", problem: `killed by ${signal}` };
  if (STACK_FRAME.test(stdout) || STACK_FRAME.test(stderr))
    return { outcome: "crash", problem: "a stack trace was printed" };
  if (exitCode === 0) return { outcome: "ok" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return { outcome: "crash", problem: `exit ${exitCode} without an error JSON on stdout` };
  }
  const { code, msg } = (parsed ?? {}) as { code?: unknown; msg?: unknown };
  if (typeof code !== "number" || typeof msg !== "string" || msg === "")
    return { outcome: "crash", problem: "the error JSON has no numeric code and message" };
  if (exitCode !== 1)
    return { outcome: "crash", code, problem: `error JSON with exit ${exitCode}` };
  if (!DOCUMENTED_CODES.has(code))
    return { outcome: "crash", code, problem: `undocumented code ${code}: ${msg}` };
  return { outcome: "cni-error", code };
}

/** A one-line account of a run for assertion messages. */
export function describeRun(r: CniRun): string {
  return `${r.outcome}${r.code !== undefined ? ` code ${r.code}` : ""} (exit ${r.exitCode}, ${Math.round(r.ms)} ms)${r.problem ? `: ${r.problem}` : ""}; stdout ${r.stdout.slice(0, 400)} stderr ${r.stderr.slice(0, 400)}`;
}

/** The pod annotations of an injected pod (the injector's status record). */
export const MESHED_POD_ANNOTATIONS: Record<string, string> = {
  "sidecar.istio.io/status": '{"initContainers":["istio-validation"],"containers":["istio-proxy"]}',
};

/** One pod's identity towards the plugin. */
export interface PodRequest {
  pod: Pod;
  containerId: string;
  bpfRoot: string;
  annotations?: Record<string, unknown>;
  /** Extra keys of the plugin entry (e.g. log_file). */
  entry?: Record<string, unknown>;
  cniVersion?: string;
}

/** The runtimeConfig cgroupPath of a test pod (its cgroup relative to the cgroup2 mount). */
export function cgroupPathOf(pod: Pod): string {
  return `/${relative(cgroup2Root(), pod.cgroupDir)}`;
}

/** The CNI_* variables of a pod's ADD or DEL, as containerd sets them. */
export function podEnv(command: string, req: PodRequest): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: req.containerId,
    CNI_NETNS: req.pod.netnsPath,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/usr/lib/cni",
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${req.pod.name};K8S_POD_INFRA_CONTAINER_ID=${req.containerId};K8S_POD_UID=`,
  };
}

/** The stdin of a pod's ADD or DEL: the waggle entry with prevResult and runtimeConfig. */
export function podConf(req: PodRequest): Record<string, unknown> {
  const cniVersion = req.cniVersion ?? "1.0.0";
  const ips = [req.pod.ipv4 && `${req.pod.ipv4}/32`, req.pod.ipv6 && `${req.pod.ipv6}/128`]
    .filter((a): a is string => typeof a === "string")
    .map((address) => ({ address, interface: 0 }));
  return {
    cniVersion,
    name: "k8s-pod-network",
    type: "waggle",
    bpf_root: req.bpfRoot,
    log_file: "",
    log_level: "error",
    ...req.entry,
    prevResult: {
      cniVersion,
      interfaces: [{ name: "eth0", sandbox: req.pod.netnsPath }],
      ips,
    },
    runtimeConfig: {
      "io.kubernetes.cri.pod-annotations": req.annotations ?? MESHED_POD_ANNOTATIONS,
      cgroupPath: cgroupPathOf(req.pod),
    },
  };
}

/** ADD or DEL (or CHECK) of a pod through the binary. */
export function podCommand(
  command: "ADD" | "DEL" | "CHECK",
  req: PodRequest,
  opts: CniRunOptions = {},
): Promise<CniRun> {
  return runWaggle(podEnv(command, req), JSON.stringify(podConf(req)), opts);
}

/** GC of a bpf root with the attachments still valid (CNI 1.1.0). */
export function gc(
  bpfRoot: string,
  valid: { containerID: string; ifname: string }[] = [],
  opts: CniRunOptions = {},
): Promise<CniRun> {
  const conf = {
    cniVersion: "1.1.0",
    name: "k8s-pod-network",
    type: "waggle",
    bpf_root: bpfRoot,
    log_file: "",
    log_level: "error",
    "cni.dev/valid-attachments": valid,
  };
  return runWaggle({ CNI_COMMAND: "GC", CNI_PATH: "/usr/lib/cni" }, JSON.stringify(conf), opts);
}

/** Every path below a directory (none when it is missing). */
function listTree(root: string): string[] {
  if (!existsSync(root) || !statSync(root).isDirectory()) return [];
  return readdirSync(root, { recursive: true, encoding: "utf8" }).map((p) => join(root, p));
}

/**
 * What a bpf root holds that pods change: every pin below pods/ and the number of entries
 * of every shared map that can be walked (arrays and socket storage always hold their size).
 */
export interface RootState {
  podPins: string[];
  mapEntries: Record<string, number>;
}

const FIXED_SIZE_MAPS = new Set(["array", "percpu_array", "sk_storage", "cgroup_storage"]);

export function rootState(bpfRoot: string): RootState {
  const mapEntries: Record<string, number> = {};
  for (const path of listTree(join(bpfRoot, "datapath"))) {
    if (statSync(path).isDirectory()) continue;
    let map: BpfMap;
    try {
      map = BpfMap.openPinned(path);
    } catch {
      continue; // a program pin
    }
    try {
      if (FIXED_SIZE_MAPS.has(map.info.type)) continue;
      let n = 0;
      try {
        for (const _ of map.keys()) n++;
      } catch {
        continue; // a map the kernel cannot walk (e.g. a sockhash)
      }
      mapEntries[relative(bpfRoot, path)] = n;
    } finally {
      map.close();
    }
  }
  return { podPins: listTree(join(bpfRoot, "pods")), mapEntries };
}

/** The BPF programs on a pod: its cgroup's (every attach type) and its netns's sk_lookup. */
export function podAttachments(pod: Pod): string[] {
  const found: string[] = [];
  if (existsSync(pod.cgroupDir)) {
    for (const type of CGROUP_ATTACH_TYPES) {
      for (const id of cgroupQuery(pod.cgroupDir, type)) found.push(`cgroup ${type} prog ${id}`);
    }
  }
  if (existsSync(pod.netnsPath)) {
    for (const id of netnsQuery(pod.netnsPath, "sk_lookup")) found.push(`netns sk_lookup ${id}`);
  }
  return found;
}

/** The cgroup attach types waggle's programs use (a pod with none of them attached is clean). */
const CGROUP_ATTACH_TYPES: readonly CgroupAttachType[] = [
  "cgroup_inet4_connect",
  "cgroup_inet6_connect",
  "cgroup_udp4_sendmsg",
  "cgroup_udp6_sendmsg",
  "cgroup_udp4_recvmsg",
  "cgroup_udp6_recvmsg",
  "cgroup_inet4_getpeername",
  "cgroup_inet6_getpeername",
  "cgroup_sock_ops",
  "cgroup_getsockopt",
];

/** Open file descriptors of this process (the harness must not leak any either). */
export function ownFdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Nearest-rank percentile of a sample (ms). */
export function percentile(sample: readonly number[], p: number): number {
  if (sample.length === 0) return Number.NaN;
  const sorted = [...sample].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
