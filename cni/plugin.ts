// waggle's CNI plugin: ADD, DEL, CHECK, GC and STATUS over the skeleton (cni/skel), which owns
// the protocol. ADD decides whether the pod is meshed (mesh/mesh-decision.ts, istio-cni's way)
// and, if so, attaches the datapath to its cgroup and interface; the previous result always
// passes through unchanged. Each command is a top-level function of (deps, request) that reads
// as its steps; createPlugin puts them over the skeleton with what they share written once:
// reading the request, opening the log, and logging a failure as the invocation's decision.
//
// Where pod facts come from (the selection rules need container facts the runtime's
// annotations do not carry):
// 1. Runtime annotations (capability io.kubernetes.cri.pod-annotations) without
//    sidecar.istio.io/status: the pod is not meshed; no API read (so an API outage never
//    blocks unmeshed pods, and waggle's own pod can start while the kubeconfig is stale).
// 2. A kubeconfig configured: the pod is read from the API server (labels, containers,
//    istio-proxy's uid/gid, env and args); annotations from the runtime when it gave them.
//    Unreachable after the retries: ADD fails (code 11, or 100 when retrying cannot help).
// 3. No kubeconfig: facts come from the runtime's annotations alone (podFactsFromAnnotations:
//    containers from the status annotation, istio-proxy defaults).
// 4. Neither annotations nor a kubeconfig: ADD fails with code 7 (nothing to decide with).
import { buildInfo } from "../base/build-info";
import { cgroup2Root } from "../base/cgroup2";
import { phase } from "../base/phases";
import type { DatapathOptions, DatapathView } from "../datapath";
import {
  CGROUP_PATH_CAPABILITY,
  DEFAULT_CONFIG,
  type LogLevelSetting,
  POD_ANNOTATIONS_CAPABILITY,
  parseWaggleConfig,
  type WaggleConfig,
  WaggleConfigError,
} from "../mesh/config";
import { PodLookupError, podFactsFromPod, readPod } from "../mesh/k8s-pod";
import { decideMesh, type MeshDecision } from "../mesh/mesh-decision";
import { PodCgroupError, resolvePodCgroup } from "../mesh/pod-cgroup";
import { type K8sPodArgs, type PodFacts, podFactsFromAnnotations } from "../mesh/pod-selection";
import { InvalidAnnotationError, type RedirectSettings } from "../mesh/redirect-settings";
import {
  CniError,
  type CniOutcome,
  type CniPlugin,
  type CniRequest,
  type CniResult,
  type ErrorCode,
  ErrorCodes,
  type GcRequest,
  parseCniArgs,
  passThrough,
  runSkel,
} from "./skel";

// ---------------------------------------------------------------------------------------------
// The datapath, as the plugin uses it: datapath/'s own functions (unit tests pass fakes).

export type { AttachRequest as PodAttachRequest, DatapathOptions } from "../datapath";

/** What ADD, DEL, CHECK, GC and STATUS call of the datapath (loading its addon first). */
export type Datapath = DatapathView<
  "ensureSharedPrograms" | "attachPod" | "detachPod" | "checkPod"
>;

/** What the plugin reads and undoes of the pins with plain file calls, without the addon. */
export type Pins = Pick<
  typeof import("../datapath/pins"),
  "onBpffs" | "hasPodState" | "attachedContainerIds" | "unlinkPodLinks"
>;

// ---------------------------------------------------------------------------------------------
// Dependencies (real ones by default; unit tests pass fakes).

/** The logging the plugin does: one line per decision. winston's Logger fits. */
export interface PluginLog {
  error(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
  debug(message: string, meta?: Record<string, unknown>): unknown;
}

export interface PluginDeps {
  /** The datapath, its addon made loadable first; throws AddonUnavailableError when it cannot be. */
  loadDatapath(): Promise<Datapath>;
  /** The pins, read without the addon. */
  pins(): Pins;
  /** The cgroup2 mount point; throws when there is none. */
  cgroupRoot(): string;
  /** Reads the pod from the API server (see readPod) and returns its facts. */
  readPodFacts(opts: Parameters<typeof readPod>[0]): Promise<PodFacts>;
  /** A logger for one invocation, and how to flush it. */
  openLog(
    config: { level: LogLevelSetting; file: string; maxSizeMB: number; maxFiles: number },
    meta: Record<string, unknown>,
  ): { log: PluginLog; close(): Promise<void> };
}

export const defaultDeps: PluginDeps = {
  // Required on first use: VERSION and unmeshed pods' ADD never load the addon. The single
  // executable extracts the addon here, so only commands that need the kernel can fail on it.
  loadDatapath: async () => {
    const addon = require("../base/addon") as typeof import("../base/addon");
    phase("addon module loaded");
    addon.prepareBundledAddon();
    phase("addon prepared");
    const datapath = require("../datapath") as typeof import("../datapath");
    phase("datapath loaded");
    return datapath;
  },
  pins: () => require("../datapath/pins") as typeof import("../datapath/pins"),

  cgroupRoot: () => cgroup2Root(),
  readPodFacts: async (opts) => podFactsFromPod(await readPod(opts)),
  openLog: (config, meta) => {
    if (config.level === "none") return { log: SILENT_LOG, close: async () => {} };
    // The synchronous line log, not winston: a call logs a line or two, and winston's load and
    // set-up were a fifth of its time (docs/benchmarks.md). A log file that cannot be written
    // must not fail (or hang) the pod's ADD or DEL: the lines then go to stderr only, saying why.
    const { createLineLog } = require("../base/line-log") as typeof import("../base/line-log");
    const log = createLineLog({
      level: config.level,
      file: config.file === "" ? undefined : config.file,
      maxSizeBytes: config.maxSizeMB * 1024 * 1024,
      maxFiles: config.maxFiles,
      stderr: true,
      defaultMeta: meta,
    });
    return { log, close: async () => log.close() };
  },
};

const SILENT_LOG: PluginLog = { error() {}, warn() {}, info() {}, debug() {} };

// ---------------------------------------------------------------------------------------------
// The commands.

/**
 * One invocation as the commands read it: the skeleton's request (env, conf), the entry's
 * validated config, the pod's identity from CNI_ARGS, the invocation's log and the datapath
 * options.
 */
export type PluginRequest<R extends CniRequest = CniRequest> = R & {
  config: WaggleConfig;
  pod: K8sPodArgs;
  log: PluginLog;
  opts: DatapathOptions;
};

/** ADD: attaches a meshed pod's datapath; passes the previous result through. */
export async function cmdAdd(deps: PluginDeps, req: PluginRequest): Promise<CniResult> {
  const prev = prevResultOf(
    req,
    "waggle is a chained plugin: ADD needs a prevResult",
    "put waggle after the primary plugin (e.g. calico) in the config list",
  );
  const decision = await decide(deps, req);
  phase("decided");
  if ("skip" in decision) {
    req.log.info("skipped", { rule: decision.skip.rule, reason: decision.skip.reason });
    return passThrough(req.conf);
  }
  const { ifname, podIPs } = podInterface(prev, req.env.netns, req.env.ifname);
  const cgroupPath = podCgroup(deps, req);
  await attach(deps, req, { ifname, podIPs, cgroupPath, settings: decision.settings });
  phase("attached");
  req.log.info("attached", {
    ifname,
    podIPs,
    cgroup: cgroupPath,
    facts: decision.facts.source,
    proxyUid: decision.settings.proxyUid,
    proxyGid: decision.settings.proxyGid,
    interceptionMode: decision.settings.interceptionMode,
    dnsCapture: decision.settings.dnsCapture,
  });
  return passThrough(req.conf);
}

/** DEL: removes whatever the container has pinned; nothing pinned is success. */
export async function cmdDel(deps: PluginDeps, req: PluginRequest): Promise<void> {
  const netns = req.env.netns || undefined;
  const attached = readPins(ErrorCodes.DetachFailed, () =>
    deps.pins().hasPodState(req.opts.bpfRoot, req.env.containerId),
  );
  phase("pins read");
  if (!attached) {
    req.log.debug("nothing attached", { netns });
    return;
  }
  await detach(deps, req);
  phase("detached");
  req.log.info("detached", { netns });
}

/** CHECK: an attached pod is healthy; a pod without state is one ADD would have skipped. */
export async function cmdCheck(deps: PluginDeps, req: PluginRequest): Promise<void> {
  prevResultOf(req, "CHECK needs a prevResult");
  const attached = readPins(ErrorCodes.CheckFailed, () =>
    deps.pins().hasPodState(req.opts.bpfRoot, req.env.containerId),
  );
  if (attached) {
    await checkAttached(deps, req);
    req.log.debug("checked: attached and healthy");
    return;
  }
  const decision = await decide(deps, req);
  if (!("skip" in decision)) {
    throw new CniError(
      ErrorCodes.CheckFailed,
      `the pod is meshed but waggle has no state for container ${req.env.containerId}`,
    );
  }
  req.log.debug("checked: not meshed", { rule: decision.skip.rule });
}

/**
 * GC: removes the state of every container the runtime no longer lists. waggle keeps one
 * attachment per container (the pod's interface), so an attachment is valid when its
 * container is listed, whatever the ifname.
 */
export async function cmdGc(deps: PluginDeps, req: PluginRequest<GcRequest>): Promise<void> {
  const valid = new Set(req.validAttachments.map((a) => a.containerID));
  const stale = readPins(ErrorCodes.GcFailed, () =>
    deps.pins().attachedContainerIds(req.opts.bpfRoot),
  ).filter((id) => !valid.has(id));
  const failures: string[] = [];
  for (const containerId of stale) {
    try {
      await removePodState(deps, req, containerId);
      req.log.info("removed by GC", { containerId });
    } catch (e) {
      failures.push(`${containerId}: ${(e as Error).message}`);
    }
  }
  if (failures.length > 0) {
    throw new CniError(
      ErrorCodes.GcFailed,
      `GC could not remove ${failures.length} stale attachment${failures.length > 1 ? "s" : ""}`,
      failures.join("; "),
    );
  }
  req.log.debug("GC done", { removed: stale.length, kept: valid.size });
}

/** STATUS: ready when the bpffs, the cgroup2 mount and the shared programs are there. */
export async function cmdStatus(deps: PluginDeps, req: PluginRequest): Promise<void> {
  requireBpffs(deps, req);
  requireCgroup2(deps);
  await requireSharedPrograms(deps, req);
  req.log.debug("ready");
}

// ---------------------------------------------------------------------------------------------
// The plugin over the skeleton.

/**
 * The plugin's commands over `deps`. Every command logs its decision once ("skipped",
 * "attached", "detached", "check failed", "removed by GC", "failed") with the container and
 * pod as fields; `closers` collects how to flush each invocation's log.
 */
export function createPlugin(deps: PluginDeps, closers: (() => Promise<void>)[] = []): CniPlugin {
  const command =
    <R extends CniRequest, T>(
      run: (deps: PluginDeps, req: PluginRequest<R>) => Promise<T>,
      lenient = false,
    ) =>
    async (req: R): Promise<T> => {
      const request = begin(deps, closers, req, lenient);
      try {
        return await run(deps, request);
      } catch (e) {
        return failed(request.log, e);
      }
    };
  return {
    // A getter: building the line may run git (in a checkout), needed only without CNI_COMMAND.
    get about() {
      const info = buildInfo();
      return `waggle CNI plugin ${info.version} (${info.commit})`;
    },
    add: command(cmdAdd),
    // DEL must never keep a pod from being torn down: it goes on with what can be read.
    del: command(cmdDel, true),
    check: command(cmdCheck),
    gc: command(cmdGc),
    status: command(cmdStatus),
  };
}

/**
 * Runs one CNI invocation of waggle's plugin: the binary's entry point (app/main.ts) calls this
 * with process.env and stdin, writes stdout and stderr, and exits with exitCode. Logs are
 * flushed before it resolves.
 */
export async function runCni(
  env: Readonly<Record<string, string | undefined>>,
  stdin: string | Buffer,
  deps: PluginDeps = defaultDeps,
): Promise<CniOutcome> {
  const closers: (() => Promise<void>)[] = [];
  try {
    return await runSkel(createPlugin(deps, closers), env, stdin);
  } finally {
    phase("command done");
    await Promise.all(closers.map((close) => close()));
    phase("log closed");
  }
}

/** CNI_ARGS keys waggle reads (containerd and CRI-O send them, with IgnoreUnknown=1). */
export const K8S_ARGS = [
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
];

/**
 * Reads the config and CNI_ARGS and opens the log. When either is invalid the failure is
 * still logged (to stderr: the config's log settings are unknown). Lenient (DEL): a config or
 * CNI_ARGS that does not validate goes on with the config's bpf_root (or the default) and
 * logs a warning.
 */
function begin<R extends CniRequest>(
  deps: PluginDeps,
  closers: (() => Promise<void>)[],
  req: R,
  lenient: boolean,
): PluginRequest<R> {
  const meta: Record<string, unknown> = { command: req.env.command };
  if (req.env.containerId) meta.containerId = req.env.containerId;
  const problems: string[] = [];
  let config: WaggleConfig;
  let args: Map<string, string>;
  try {
    config = configOf(req.conf.raw);
    args = parseCniArgs(req.env.args, K8S_ARGS);
  } catch (e) {
    if (!lenient) {
      const { log, close } = deps.openLog(
        { level: "error", file: "", maxSizeMB: 1, maxFiles: 1 },
        meta,
      );
      closers.push(close);
      return failed(log, e);
    }
    problems.push((e as Error).message);
    config = fallbackConfig(req.conf.raw);
    args = new Map();
  }
  const pod: K8sPodArgs = {
    namespace: args.get("K8S_POD_NAMESPACE") || undefined,
    name: args.get("K8S_POD_NAME") || undefined,
    uid: args.get("K8S_POD_UID") || undefined,
    infraContainerId: args.get("K8S_POD_INFRA_CONTAINER_ID") || undefined,
  };
  if (pod.namespace && pod.name) meta.pod = `${pod.namespace}/${pod.name}`;
  phase("request read");
  const { log, close } = deps.openLog(
    {
      level: config.logLevel,
      file: config.logFile,
      maxSizeMB: config.logMaxSizeMB,
      maxFiles: config.logMaxFiles,
    },
    meta,
  );
  closers.push(close);
  phase("log opened");
  for (const problem of problems) {
    log.warn("invalid request; going on with what can be read", {
      error: problem,
      bpfRoot: config.bpfRoot,
    });
  }
  const opts: DatapathOptions = {
    bpfRoot: config.bpfRoot,
    ...(config.socketBypass === undefined ? {} : { socketBypass: config.socketBypass }),
    ...(config.socketBypassBacklog === undefined
      ? {}
      : { socketBypassBacklog: config.socketBypassBacklog }),
  };
  return { ...req, config, pod, log, opts };
}

/** Logs a failure once, as the decision of the invocation, and throws it as a CniError. */
function failed(log: PluginLog, e: unknown): never {
  const err =
    e instanceof CniError
      ? e
      : new CniError(ErrorCodes.Internal, String((e as Error)?.message ?? e));
  log.error("failed", { code: err.code, error: err.message, details: err.details });
  throw err;
}

// ---------------------------------------------------------------------------------------------
// The commands' steps.

/** The previous result, which ADD and CHECK need (code 7 without it). */
function prevResultOf(req: PluginRequest, message: string, hint?: string): CniResult {
  if (!req.conf.prevResult) throw new CniError(ErrorCodes.InvalidConfig, message, hint);
  return req.conf.prevResult;
}

/** Whether the pod is meshed (decideMesh), its facts read as the header says; code 101 for an invalid annotation. */
async function decide(deps: PluginDeps, req: PluginRequest): Promise<MeshDecision> {
  let annotations: Record<string, string> | undefined;
  try {
    return await decideMesh({
      pod: req.pod,
      excludeNamespaces: req.config.excludeNamespaces,
      runtimeAnnotations: () => {
        annotations = runtimeAnnotations(req.conf.runtimeConfig);
        return annotations;
      },
      readFacts: () => podFacts(deps, req, annotations),
      warn: (m) => req.log.warn(m),
    });
  } catch (e) {
    if (e instanceof InvalidAnnotationError) {
      throw new CniError(ErrorCodes.InvalidPodAnnotation, e.message);
    }
    throw e;
  }
}

/** The pod's facts: from the API server when a kubeconfig is configured, else from the runtime's annotations. */
async function podFacts(
  deps: PluginDeps,
  req: PluginRequest,
  annotations: Record<string, string> | undefined,
): Promise<PodFacts> {
  if (req.config.kubeconfig) {
    const facts = await podFromApi(deps, req);
    return annotations ? { ...facts, annotations } : facts;
  }
  if (annotations) return podFactsFromAnnotations(annotations);
  throw new CniError(
    ErrorCodes.InvalidConfig,
    "cannot tell whether the pod is meshed: the runtime passed no pod annotations and no kubeconfig is configured",
    `declare the ${POD_ANNOTATIONS_CAPABILITY} capability in waggle's entry, or set kubernetes.kubeconfig`,
  );
}

/** The pod read from the API server: code 11 when retrying later may help, else 100. */
async function podFromApi(deps: PluginDeps, req: PluginRequest): Promise<PodFacts> {
  const { namespace = "", name = "" } = req.pod;
  try {
    return await deps.readPodFacts({
      kubeconfigPath: req.config.kubeconfig as string,
      namespace,
      name,
      attempts: req.config.api.attempts,
      intervalMs: req.config.api.intervalMs,
      timeoutMs: req.config.api.timeoutMs,
      onRetry: (attempt, err) =>
        req.log.debug("reading the pod failed; retrying", { attempt, error: err.message }),
    });
  } catch (e) {
    if (e instanceof PodLookupError) {
      throw new CniError(
        e.transient ? ErrorCodes.TryAgainLater : ErrorCodes.PodLookupFailed,
        e.message,
      );
    }
    throw e;
  }
}

/** Attaches the pod (the shared programs loaded first); a datapath failure gets its CNI code. */
async function attach(
  deps: PluginDeps,
  req: PluginRequest,
  where: { ifname: string; podIPs: string[]; cgroupPath: string; settings: RedirectSettings },
): Promise<void> {
  const datapath = await requireDatapath(deps);
  try {
    await datapath.ensureSharedPrograms(req.opts);
    phase("shared programs found");
    await datapath.attachPod(
      {
        containerId: req.env.containerId,
        netnsPath: req.env.netns,
        ...where,
        pod: {
          namespace: req.pod.namespace as string,
          name: req.pod.name as string,
          uid: req.pod.uid,
        },
      },
      req.opts,
    );
  } catch (e) {
    if (e instanceof CniError) throw e;
    throw new CniError(
      attachErrorCode((e as { code?: unknown }).code),
      `attaching the pod failed: ${(e as Error).message}`,
    );
  }
}

/** Removes the container's state (code 106 when something could not be removed). */
async function detach(deps: PluginDeps, req: PluginRequest): Promise<void> {
  try {
    await removePodState(deps, req, req.env.containerId);
  } catch (e) {
    throw new CniError(
      ErrorCodes.DetachFailed,
      `removing the pod's state failed: ${(e as Error).message}`,
    );
  }
}

/** An attached pod's programs, links and map entries are all there (code 105 naming what is not). */
async function checkAttached(deps: PluginDeps, req: PluginRequest): Promise<void> {
  const datapath = await requireDatapath(deps);
  const problems = await datapath.checkPod(req.env.containerId, req.opts);
  if (problems.length > 0) {
    throw new CniError(
      ErrorCodes.CheckFailed,
      `the pod's redirection is incomplete: ${problems.join("; ")}`,
    );
  }
}

/**
 * The datapath for a command that cannot do without it: an addon that cannot be made
 * loadable is the node's problem, not the pod's (code 50, as STATUS says it).
 */
async function requireDatapath(deps: PluginDeps): Promise<Datapath> {
  try {
    return await deps.loadDatapath();
  } catch (e) {
    if ((e as Error).name === "AddonUnavailableError") {
      throw new CniError(ErrorCodes.PluginNotAvailable, (e as Error).message);
    }
    throw e;
  }
}

/**
 * Removes a container's state (DEL, GC): through the datapath, or, when its addon cannot be
 * loaded, by unlinking the pod's link pins so it runs none of waggle's programs (its map
 * entries wait for a DEL or GC that can load it). DEL must never block a pod's teardown on
 * the node's problem. Returns whether the removal was degraded.
 */
async function removePodState(
  deps: PluginDeps,
  req: PluginRequest,
  containerId: string,
): Promise<"removed" | "links-unlinked"> {
  let datapath: Datapath;
  try {
    datapath = await deps.loadDatapath();
  } catch (e) {
    if ((e as Error).name !== "AddonUnavailableError") throw e;
    const unlinked = deps.pins().unlinkPodLinks(req.opts.bpfRoot, containerId);
    req.log.warn("the eBPF addon cannot be used: unlinked the pod's links, its map entries stay", {
      containerId,
      unlinked,
      error: (e as Error).message,
    });
    return "links-unlinked";
  }
  await datapath.detachPod(containerId, req.opts);
  return "removed";
}

/** STATUS: the bpf root is on a bpffs (code 51 otherwise: pinned state is gone). */
function requireBpffs(deps: PluginDeps, req: PluginRequest): void {
  if (deps.pins().onBpffs(req.config.bpfRoot)) return;
  throw new CniError(
    ErrorCodes.LimitedConnectivity,
    `no bpffs at ${req.config.bpfRoot}: meshed pods' pinned state is gone and new pods cannot be attached`,
    "mount it: mount -t bpf bpf /sys/fs/bpf",
  );
}

/** STATUS: cgroup2 is mounted (code 50 otherwise). */
function requireCgroup2(deps: PluginDeps): void {
  try {
    deps.cgroupRoot();
  } catch (e) {
    throw new CniError(ErrorCodes.PluginNotAvailable, (e as Error).message);
  }
}

/** STATUS: the shared programs are loaded, or can be (code 50 otherwise). */
async function requireSharedPrograms(deps: PluginDeps, req: PluginRequest): Promise<void> {
  try {
    await (await deps.loadDatapath()).ensureSharedPrograms(req.opts);
  } catch (e) {
    throw new CniError(
      ErrorCodes.PluginNotAvailable,
      `the BPF programs cannot be loaded: ${(e as Error).message}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Reading the request.

/** The plugin's entry, validated: code 7 naming the key, code 2 for an unsupported mode. */
function configOf(raw: Record<string, unknown>): WaggleConfig {
  try {
    return parseWaggleConfig(raw);
  } catch (e) {
    if (!(e instanceof WaggleConfigError)) throw e;
    const code = e.unsupported ? ErrorCodes.UnsupportedField : ErrorCodes.InvalidConfig;
    throw new CniError(code, e.message, e.details);
  }
}

// DEL's config when the entry does not validate: its bpf_root when that is usable, else the
// default; logs to stderr only.
function fallbackConfig(raw: Record<string, unknown>): WaggleConfig {
  const root = raw.bpf_root;
  return {
    ...DEFAULT_CONFIG,
    api: { ...DEFAULT_CONFIG.api },
    excludeNamespaces: [],
    bpfRoot: typeof root === "string" && root.startsWith("/") ? root : DEFAULT_CONFIG.bpfRoot,
    logFile: "",
  };
}

/** The pod's annotations from runtimeConfig, when the runtime passed them (code 6 if malformed). */
function runtimeAnnotations(
  runtimeConfig: Record<string, unknown>,
): Record<string, string> | undefined {
  const v = runtimeConfig[POD_ANNOTATIONS_CAPABILITY];
  if (v === undefined || v === null) return undefined;
  if (
    typeof v !== "object" ||
    Array.isArray(v) ||
    Object.values(v).some((x) => typeof x !== "string")
  ) {
    throw new CniError(
      ErrorCodes.DecodingFailure,
      `runtimeConfig ${POD_ANNOTATIONS_CAPABILITY} is not a map of strings`,
    );
  }
  return v as Record<string, string>;
}

/**
 * The pod's interface and addresses from prevResult: the interface inside the pod's netns
 * (sandbox equal to CNI_NETNS, else any with a sandbox, else one named CNI_IFNAME), and the
 * addresses assigned to it (or to no interface in particular). Code 103 without an address.
 */
export function podInterface(
  prev: CniResult,
  netns: string,
  ifname: string,
): { ifname: string; podIPs: string[] } {
  const interfaces = prev.interfaces ?? [];
  let index = interfaces.findIndex((i) => i.sandbox === netns && netns !== "");
  if (index < 0) index = interfaces.findIndex((i) => !!i.sandbox);
  if (index < 0) index = interfaces.findIndex((i) => i.name === ifname);
  const podIPs = (prev.ips ?? [])
    .filter((ip) => index < 0 || ip.interface === undefined || ip.interface === index)
    .map((ip) => ip.address.slice(0, ip.address.indexOf("/")));
  if (podIPs.length === 0) {
    throw new CniError(
      ErrorCodes.NoPodAddress,
      "prevResult has no IP address for the pod's interface",
      `interfaces: ${JSON.stringify(interfaces)}, ips: ${JSON.stringify(prev.ips ?? [])}`,
    );
  }
  return { ifname: index >= 0 ? interfaces[index].name : ifname, podIPs: [...new Set(podIPs)] };
}

/** The pod's cgroup: from runtimeConfig's cgroupPath, else by pod UID (code 102 when not found). */
function podCgroup(deps: PluginDeps, req: PluginRequest): string {
  const cgroupPath = req.conf.runtimeConfig[CGROUP_PATH_CAPABILITY];
  if (cgroupPath !== undefined && typeof cgroupPath !== "string") {
    throw new CniError(ErrorCodes.DecodingFailure, "runtimeConfig cgroupPath is not a string");
  }
  try {
    return resolvePodCgroup({
      cgroupPath: cgroupPath || undefined,
      podUid: req.pod.uid,
      cgroupRoot: deps.cgroupRoot(),
    });
  } catch (e) {
    if (e instanceof PodCgroupError || (e as { code?: string }).code === "ECGROUP2") {
      throw new CniError(ErrorCodes.PodCgroupNotFound, (e as Error).message);
    }
    throw e;
  }
}

/**
 * The CNI code of a failed attach, by the DatapathError code: a cgroup it cannot use is the
 * pod's (102); a bpf root that is no bpffs is the node's (50, as STATUS says); anything else 104.
 */
function attachErrorCode(datapathCode: unknown): ErrorCode {
  if (datapathCode === "CGROUP") return ErrorCodes.PodCgroupNotFound;
  if (datapathCode === "BPFFS") return ErrorCodes.PluginNotAvailable;
  return ErrorCodes.AttachFailed;
}

/**
 * Reads the pod pins for DEL, CHECK or GC. A bpf root waggle refuses to read (another user
 * could have made or changed it, or it is not on a bpffs) fails that command with its own
 * code, naming why: the pod's programs may still be attached, so it must neither pass nor
 * look like a bug (it was code 999).
 */
function readPins<T>(code: ErrorCode, read: () => T): T {
  try {
    return read();
  } catch (e) {
    const datapathCode = (e as { code?: unknown }).code;
    if (datapathCode === "UNTRUSTED_ROOT" || datapathCode === "BPFFS")
      throw new CniError(code, `the bpf root cannot be read: ${(e as Error).message}`);
    throw e;
  }
}
