// waggle's CNI plugin: ADD, DEL, CHECK, GC and STATUS over the skeleton (cni/skel), which owns
// the protocol. ADD decides istio-cni's way whether the pod is meshed and, if so, attaches the
// datapath to its cgroup and interface; the previous result always passes through unchanged.
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
import { buildInfo } from "./build-info";
import { cgroup2Root } from "./cgroup2";
import {
  CGROUP_PATH_CAPABILITY,
  DEFAULT_CONFIG,
  type LogLevelSetting,
  POD_ANNOTATIONS_CAPABILITY,
  parseWaggleConfig,
  type WaggleConfig,
} from "./config";
import type { DatapathOptions, AttachRequest as PodAttachRequest } from "./datapath";
import { PodLookupError, podFactsFromPod, readPod } from "./k8s-pod";
import { PodCgroupError, resolvePodCgroup } from "./pod-cgroup";
import {
  type K8sPodArgs,
  lacksSidecarStatus,
  type PodFacts,
  podFactsFromAnnotations,
  type Skip,
  skipByArgs,
  skipByPod,
} from "./pod-selection";
import {
  InvalidAnnotationError,
  parseRedirectSettings,
  type RedirectSettings,
} from "./redirect-settings";
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
// The datapath, as the plugin uses it (implemented by cni/datapath).

/** bpffs root of waggle's pins, and the attach request (cni/datapath's types). */
export type { AttachRequest as PodAttachRequest, DatapathOptions } from "./datapath";

/** What the datapath keeps per attached pod (the plugin only needs its container ID). */
export interface PodRecord {
  containerId: string;
}

export interface Datapath {
  /** Loads and pins the shared programs and maps once per node, under a lock (idempotent). */
  ensureSharedPrograms(opts: DatapathOptions): void | Promise<void>;
  /** Attaches one pod; on failure rolls back everything it did and throws. */
  attachPod(req: PodAttachRequest, opts: DatapathOptions): PodRecord | Promise<PodRecord>;
  /** Removes a pod's state; succeeds when there is none or its netns is gone. */
  detachPod(containerId: string, opts: DatapathOptions): void | Promise<void>;
  /** Problems with an attached pod's programs, links, filter and map entries; [] when healthy. */
  checkPod(containerId: string, opts: DatapathOptions): string[] | Promise<string[]>;
  listPods(opts: DatapathOptions): PodRecord[] | Promise<PodRecord[]>;
}

/** What the plugin reads and undoes of the pins with plain file calls (cni/datapath/pins). */
export interface Pins {
  /** True when `path` (or its nearest existing ancestor) is on a bpffs. */
  onBpffs(path: string): boolean;
  /** True when the container has any pinned state. */
  hasPodState(bpfRoot: string, containerId: string): boolean;
  /** Container IDs with any state (records or leftovers of a half-done ADD), for GC and CHECK. */
  attachedContainerIds(bpfRoot: string): string[];
  /** Degraded teardown without the addon: unlinks the pod's link pins, keeps its record. */
  unlinkPodLinks(bpfRoot: string, containerId: string): string[];
}

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
    (require("./addon") as typeof import("./addon")).prepareBundledAddon();
    return require("./datapath") as typeof import("./datapath");
  },
  pins: () => require("./datapath/pins") as typeof import("./datapath/pins"),

  cgroupRoot: () => cgroup2Root(),
  readPodFacts: async (opts) => podFactsFromPod(await readPod(opts)),
  openLog: (config, meta) => {
    if (config.level === "none") return { log: SILENT_LOG, close: async () => {} };
    // Required here, not at the top, so VERSION never loads winston.
    const { createLogger, closeLogger } = require("./log") as typeof import("./log");
    // A log file that cannot be written must not fail (or hang) the pod's ADD or DEL:
    // createLogger then logs to stderr only, saying why.
    const logger = createLogger({
      level: config.level,
      file: config.file === "" ? undefined : config.file,
      maxSizeBytes: config.maxSizeMB * 1024 * 1024,
      maxFiles: config.maxFiles,
      stderr: true,
      defaultMeta: meta,
    });
    logger.on("error", () => {}); // a transport failing later is not the pod's failure
    return { log: logger, close: () => boundedClose(closeLogger(logger)) };
  },
};

const SILENT_LOG: PluginLog = { error() {}, warn() {}, info() {}, debug() {} };

/** Flushing the log never holds the runtime up for more than this. */
const LOG_CLOSE_TIMEOUT_MS = 2000;

function boundedClose(closing: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, LOG_CLOSE_TIMEOUT_MS);
    timer.unref();
  });
  return Promise.race([closing, timeout]).finally(() => clearTimeout(timer));
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
  inv: Invocation,
  containerId: string,
): Promise<"removed" | "links-unlinked"> {
  let datapath: Datapath;
  try {
    datapath = await deps.loadDatapath();
  } catch (e) {
    if ((e as Error).name !== "AddonUnavailableError") throw e;
    const unlinked = deps.pins().unlinkPodLinks(inv.opts.bpfRoot, containerId);
    inv.log.warn("the eBPF addon cannot be used: unlinked the pod's links, its map entries stay", {
      containerId,
      unlinked,
      error: (e as Error).message,
    });
    return "links-unlinked";
  }
  await datapath.detachPod(containerId, inv.opts);
  return "removed";
}

// ---------------------------------------------------------------------------------------------
// The plugin.

/** CNI_ARGS keys waggle reads (containerd and CRI-O send them, with IgnoreUnknown=1). */
export const K8S_ARGS = [
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
];

/** What ADD decided for a pod. */
type Decision = { skip: Skip } | { settings: RedirectSettings; facts: PodFacts };

interface Invocation {
  config: WaggleConfig;
  pod: K8sPodArgs;
  log: PluginLog;
  opts: DatapathOptions;
}

/**
 * The plugin's handlers over `deps`. Every handler logs its decision once ("skipped",
 * "attached", "detached", "check failed", "removed by GC", "failed") with the container and
 * pod as fields.
 */
export function createPlugin(deps: PluginDeps, closers: (() => Promise<void>)[] = []): CniPlugin {
  // Reads the config and CNI_ARGS and opens the log. When either is invalid the failure is
  // still logged (to stderr: the config's log settings are unknown). DEL is lenient: a config
  // or CNI_ARGS that does not validate must not keep a pod from being torn down, so it goes
  // on with the config's bpf_root (or the default) and logs a warning.
  const begin = (req: CniRequest, lenient = false): Invocation => {
    const meta: Record<string, unknown> = { command: req.env.command };
    if (req.env.containerId) meta.containerId = req.env.containerId;
    const problems: string[] = [];
    let config: WaggleConfig;
    let args: Map<string, string>;
    try {
      config = parseWaggleConfig(req.conf.raw);
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
    for (const problem of problems) {
      log.warn("invalid request; going on with what can be read", {
        error: problem,
        bpfRoot: config.bpfRoot,
      });
    }
    return { config, pod, log, opts: { bpfRoot: config.bpfRoot } };
  };

  // Logs a failure once, as the decision of the invocation, and rethrows it.
  const failed = (log: PluginLog, e: unknown): never => {
    const err =
      e instanceof CniError
        ? e
        : new CniError(ErrorCodes.Internal, String((e as Error)?.message ?? e));
    log.error("failed", { code: err.code, error: err.message, details: err.details });
    throw err;
  };

  const decide = async (req: CniRequest, inv: Invocation): Promise<Decision> => {
    const byArgs = skipByArgs(inv.pod, inv.config.excludeNamespaces);
    if (byArgs) return { skip: byArgs };
    const annotations = runtimeAnnotations(req.conf.runtimeConfig);
    if (annotations && lacksSidecarStatus(annotations)) {
      return {
        skip: {
          rule: "no-sidecar-status",
          reason: "no sidecar.istio.io/status in the runtime's pod annotations: not injected",
        },
      };
    }
    let facts: PodFacts;
    if (inv.config.kubeconfig) {
      facts = await podFromApi(inv);
      if (annotations) facts = { ...facts, annotations };
    } else if (annotations) {
      facts = annotationError(() => podFactsFromAnnotations(annotations));
    } else {
      throw new CniError(
        ErrorCodes.InvalidConfig,
        "cannot tell whether the pod is meshed: the runtime passed no pod annotations and no kubeconfig is configured",
        `declare the ${POD_ANNOTATIONS_CAPABILITY} capability in waggle's entry, or set kubernetes.kubeconfig`,
      );
    }
    const byPod = skipByPod(facts);
    if (byPod) return { skip: byPod };
    const settings = annotationError(() =>
      parseRedirectSettings(facts.annotations, facts.proxy, (m) => inv.log.warn(m)),
    );
    return { settings, facts };
  };

  const podFromApi = async (inv: Invocation): Promise<PodFacts> => {
    const { namespace = "", name = "" } = inv.pod;
    try {
      return await deps.readPodFacts({
        kubeconfigPath: inv.config.kubeconfig as string,
        namespace,
        name,
        attempts: inv.config.api.attempts,
        intervalMs: inv.config.api.intervalMs,
        timeoutMs: inv.config.api.timeoutMs,
        onRetry: (attempt, err) =>
          inv.log.debug("reading the pod failed; retrying", { attempt, error: err.message }),
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
  };

  return {
    // A getter: building the line may run git (in a checkout), needed only without CNI_COMMAND.
    get about() {
      const info = buildInfo();
      return `waggle CNI plugin ${info.version} (${info.commit})`;
    },

    async add(req) {
      const inv = begin(req);
      try {
        const prev = req.conf.prevResult;
        if (!prev) {
          throw new CniError(
            ErrorCodes.InvalidConfig,
            "waggle is a chained plugin: ADD needs a prevResult",
            "put waggle after the primary plugin (e.g. calico) in the config list",
          );
        }
        const decision = await decide(req, inv);
        if ("skip" in decision) {
          inv.log.info("skipped", { rule: decision.skip.rule, reason: decision.skip.reason });
          return passThrough(req.conf);
        }
        const { ifname, podIPs } = podInterface(prev, req.env.netns, req.env.ifname);
        const cgroupPath = podCgroup(req.conf.runtimeConfig, inv.pod.uid, deps);
        const datapath = await requireDatapath(deps);
        try {
          await datapath.ensureSharedPrograms(inv.opts);
          await datapath.attachPod(
            {
              containerId: req.env.containerId,
              netnsPath: req.env.netns,
              ifname,
              cgroupPath,
              podIPs,
              settings: decision.settings,
              pod: {
                namespace: inv.pod.namespace as string,
                name: inv.pod.name as string,
                uid: inv.pod.uid,
              },
            },
            inv.opts,
          );
        } catch (e) {
          if (e instanceof CniError) throw e;
          throw new CniError(
            attachErrorCode((e as { code?: unknown }).code),
            `attaching the pod failed: ${(e as Error).message}`,
          );
        }
        inv.log.info("attached", {
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
      } catch (e) {
        return failed(inv.log, e);
      }
    },

    async del(req) {
      const inv = begin(req, true);
      try {
        const attached = readPins(ErrorCodes.DetachFailed, () =>
          deps.pins().hasPodState(inv.opts.bpfRoot, req.env.containerId),
        );
        if (!attached) {
          inv.log.debug("nothing attached", { netns: req.env.netns || undefined });
          return;
        }
        try {
          await removePodState(deps, inv, req.env.containerId);
        } catch (e) {
          throw new CniError(
            ErrorCodes.DetachFailed,
            `removing the pod's state failed: ${(e as Error).message}`,
          );
        }
        inv.log.info("detached", { netns: req.env.netns || undefined });
      } catch (e) {
        failed(inv.log, e);
      }
    },

    async check(req) {
      const inv = begin(req);
      try {
        if (!req.conf.prevResult) {
          throw new CniError(ErrorCodes.InvalidConfig, "CHECK needs a prevResult");
        }
        const attached = readPins(ErrorCodes.CheckFailed, () =>
          deps.pins().hasPodState(inv.opts.bpfRoot, req.env.containerId),
        );
        if (attached) {
          const datapath = await requireDatapath(deps);
          const problems = await datapath.checkPod(req.env.containerId, inv.opts);
          if (problems.length > 0) {
            throw new CniError(
              ErrorCodes.CheckFailed,
              `the pod's redirection is incomplete: ${problems.join("; ")}`,
            );
          }
          inv.log.debug("checked: attached and healthy");
          return;
        }
        // Nothing attached: correct only if ADD would have skipped the pod.
        const decision = await decide(req, inv);
        if (!("skip" in decision)) {
          throw new CniError(
            ErrorCodes.CheckFailed,
            `the pod is meshed but waggle has no state for container ${req.env.containerId}`,
          );
        }
        inv.log.debug("checked: not meshed", { rule: decision.skip.rule });
      } catch (e) {
        failed(inv.log, e);
      }
    },

    async gc(req: GcRequest) {
      const inv = begin(req);
      try {
        // waggle keeps one attachment per container (the pod's interface), so an attachment
        // is valid when its container is listed, whatever the ifname.
        const valid = new Set(req.validAttachments.map((a) => a.containerID));
        const failures: string[] = [];
        let removed = 0;
        const attached = readPins(ErrorCodes.GcFailed, () =>
          deps.pins().attachedContainerIds(inv.opts.bpfRoot),
        );
        for (const containerId of attached) {
          if (valid.has(containerId)) continue;
          try {
            await removePodState(deps, inv, containerId);
            removed++;
            inv.log.info("removed by GC", { containerId });
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
        inv.log.debug("GC done", { removed, kept: valid.size });
      } catch (e) {
        failed(inv.log, e);
      }
    },

    async status(req) {
      const inv = begin(req);
      try {
        if (!deps.pins().onBpffs(inv.config.bpfRoot)) {
          throw new CniError(
            ErrorCodes.LimitedConnectivity,
            `no bpffs at ${inv.config.bpfRoot}: meshed pods' pinned state is gone and new pods cannot be attached`,
            "mount it: mount -t bpf bpf /sys/fs/bpf",
          );
        }
        try {
          deps.cgroupRoot();
        } catch (e) {
          throw new CniError(ErrorCodes.PluginNotAvailable, (e as Error).message);
        }
        try {
          await (await deps.loadDatapath()).ensureSharedPrograms(inv.opts);
        } catch (e) {
          throw new CniError(
            ErrorCodes.PluginNotAvailable,
            `the BPF programs cannot be loaded: ${(e as Error).message}`,
          );
        }
        inv.log.debug("ready");
      } catch (e) {
        failed(inv.log, e);
      }
    },
  };
}

/**
 * Runs one CNI invocation of waggle's plugin: the binary's entry point (cni/main.ts) calls this
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
    await Promise.all(closers.map((close) => close()));
  }
}

// ---------------------------------------------------------------------------------------------
// Reading the request.

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

function podCgroup(
  runtimeConfig: Record<string, unknown>,
  podUid: string | undefined,
  deps: PluginDeps,
): string {
  const cgroupPath = runtimeConfig[CGROUP_PATH_CAPABILITY];
  if (cgroupPath !== undefined && typeof cgroupPath !== "string") {
    throw new CniError(ErrorCodes.DecodingFailure, "runtimeConfig cgroupPath is not a string");
  }
  try {
    return resolvePodCgroup({
      cgroupPath: cgroupPath || undefined,
      podUid,
      cgroupRoot: deps.cgroupRoot(),
    });
  } catch (e) {
    if (e instanceof PodCgroupError || (e as { code?: string }).code === "ECGROUP2") {
      throw new CniError(ErrorCodes.PodCgroupNotFound, (e as Error).message);
    }
    throw e;
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

function annotationError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof InvalidAnnotationError)
      throw new CniError(ErrorCodes.InvalidPodAnnotation, e.message);
    throw e;
  }
}
