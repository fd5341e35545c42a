// Every setting of `waggle install` / `waggle uninstall`: one table that declares the flags,
// their environment twins and defaults, and is what conf/README.md and the manifest test
// are checked against. Precedence: flag, then environment, then default.

import { isAbsolute } from "node:path";
import type { Argv } from "yargs";
import { isLogLevel, type LogLevel, logLevels } from "../base/log";
import { DEFAULT_CONFIG, SOCKET_BYPASS_BACKLOG } from "../mesh/config";

export interface OptionSpec {
  /** Flag name (kebab case); yargs also accepts the camel-case twin. */
  flag: string;
  env: string;
  type: "string" | "number";
  /** Default; undefined means "required" unless `optional`. */
  default?: string | number;
  optional?: boolean;
  describe: string;
  /** Used by uninstall too (uninstall accepts every flag: it shares install's environment). */
  uninstall?: boolean;
}

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The namespace conf/waggle.yaml installs waggle into (the default of --pod-namespace). */
export const WAGGLE_NAMESPACE = "waggle-system";

/** The option table. conf/README.md documents each row; test/unit/manifest.test.ts checks it. */
export const OPTION_SPECS: readonly OptionSpec[] = [
  {
    flag: "cni-bin-dir",
    env: "WAGGLE_CNI_BIN_DIR",
    type: "string",
    default: "/host/opt/cni/bin",
    describe: "The host's CNI plugin directory, as mounted in this container",
    uninstall: true,
  },
  {
    flag: "cni-net-dir",
    env: "WAGGLE_CNI_NET_DIR",
    type: "string",
    default: "/host/etc/cni/net.d",
    describe: "The host's CNI config directory, as mounted in this container",
    uninstall: true,
  },
  {
    flag: "host-cni-net-dir",
    env: "WAGGLE_HOST_CNI_NET_DIR",
    type: "string",
    default: "/etc/cni/net.d",
    describe:
      "The same directory as the host (and so the plugin) sees it; paths in the entry use it",
  },
  {
    flag: "conf-name",
    env: "WAGGLE_CNI_CONF_NAME",
    type: "string",
    default: "auto",
    describe:
      "Config file to chain into; 'auto' picks the runtime's primary (first valid *.conf, *.conflist, *.json by name)",
  },
  {
    flag: "bpf-root",
    env: "WAGGLE_BPF_ROOT",
    type: "string",
    default: DEFAULT_CONFIG.bpfRoot,
    describe:
      "The bpffs directory waggle pins its programs, maps and links under (mounted at the same path as on the host)",
    uninstall: true,
  },
  {
    flag: "binary",
    env: "WAGGLE_BINARY",
    type: "string",
    optional: true,
    describe:
      "The waggle binary to install; default: the running executable (the single-executable build)",
  },
  {
    flag: "kubeconfig-name",
    env: "WAGGLE_KUBECONFIG_NAME",
    type: "string",
    default: "waggle-kubeconfig",
    describe: "File name of the plugin's kubeconfig, written into the CNI config directory",
    uninstall: true,
  },
  {
    flag: "token-file",
    env: "WAGGLE_TOKEN_FILE",
    type: "string",
    default: `${SERVICE_ACCOUNT_DIR}/token`,
    describe:
      "Service account token the kubeconfig carries (watched: rotations rewrite the kubeconfig)",
  },
  {
    flag: "ca-file",
    env: "WAGGLE_CA_FILE",
    type: "string",
    default: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
    describe: "CA bundle the kubeconfig verifies the API server with",
  },
  {
    flag: "kubernetes-service-host",
    env: "KUBERNETES_SERVICE_HOST",
    type: "string",
    describe: "API server address (Kubernetes sets the variable in every pod)",
  },
  {
    flag: "kubernetes-service-port",
    env: "KUBERNETES_SERVICE_PORT",
    type: "number",
    describe: "API server port (Kubernetes sets the variable in every pod)",
  },
  {
    flag: "node-name",
    env: "WAGGLE_NODE_NAME",
    type: "string",
    optional: true,
    describe:
      "This node's name (downward API spec.nodeName); needed to repair pods started before waggle",
  },
  {
    flag: "cgroup-root",
    env: "WAGGLE_CGROUP_ROOT",
    type: "string",
    default: "auto",
    describe:
      "Where pod cgroups are looked up; 'auto' = the cgroup2 mount (from /proc/self/mountinfo)",
  },
  {
    flag: "proc-root",
    env: "WAGGLE_PROC_ROOT",
    type: "string",
    default: "/host/proc",
    describe: "The host's /proc (pod network namespaces are found through their processes)",
  },
  {
    flag: "netns-dir",
    env: "WAGGLE_NETNS_DIR",
    type: "string",
    default: "/var/run/netns",
    describe: "Where the runtime bind-mounts pod network namespaces (as on the host)",
  },
  {
    flag: "health-port",
    env: "WAGGLE_HEALTH_PORT",
    type: "number",
    default: 9821,
    describe: "Port of /healthz, /readyz and /metrics (0: any free port)",
  },
  {
    flag: "health-address",
    env: "WAGGLE_HEALTH_ADDRESS",
    type: "string",
    default: "",
    describe: "Address the health server listens on ('' = every address)",
  },
  {
    flag: "log-level",
    env: "WAGGLE_LOG_LEVEL",
    type: "string",
    default: "info",
    describe: `The installer's log level (${logLevels.join(", ")})`,
    uninstall: true,
  },
  {
    flag: "plugin-log-level",
    env: "WAGGLE_PLUGIN_LOG_LEVEL",
    type: "string",
    default: "info",
    describe: "log_level written into the plugin's config entry",
  },
  {
    flag: "plugin-log-file",
    env: "WAGGLE_PLUGIN_LOG_FILE",
    type: "string",
    default: DEFAULT_CONFIG.logFile,
    describe: "log_file written into the plugin's config entry (a host path)",
  },
  {
    flag: "exclude-namespaces",
    env: "WAGGLE_EXCLUDE_NAMESPACES",
    type: "string",
    default: "kube-system",
    describe: "Comma-separated namespaces the plugin never meshes (entry: exclude_namespaces)",
  },
  {
    flag: "socket-bypass",
    env: "WAGGLE_SOCKET_BYPASS",
    type: "string",
    default: "auto",
    describe:
      "socket_bypass written into the plugin's config entry: true, false, or auto (left out: the kernel's default, see waggle doctor)",
  },
  {
    flag: "socket-bypass-backlog",
    env: "WAGGLE_SOCKET_BYPASS_BACKLOG",
    type: "string",
    default: "auto",
    describe:
      "socket_bypass_backlog written into the plugin's config entry: bytes a bypassed receiver may leave unread before its sender is held on TCP, or auto (left out: 4 MiB)",
  },
  {
    flag: "pod-namespace",
    env: "POD_NAMESPACE",
    type: "string",
    default: WAGGLE_NAMESPACE,
    describe:
      "The namespace waggle runs in (downward API metadata.namespace); always added to exclude_namespaces, so the plugin never meshes waggle's own pods",
  },
  {
    flag: "repair-warn-count",
    env: "WAGGLE_REPAIR_WARN_COUNT",
    type: "number",
    default: 5,
    describe: "Warn (and back off) when the entry had to be put back more than this many times ...",
  },
  {
    flag: "repair-warn-window",
    env: "WAGGLE_REPAIR_WARN_WINDOW",
    type: "number",
    default: 60,
    describe: "... within this many seconds",
  },
];

export interface InstallOptions {
  cniBinDir: string;
  cniNetDir: string;
  hostCniNetDir: string;
  /** undefined: pick the primary config automatically. */
  confName?: string;
  bpfRoot: string;
  /** undefined: the running executable, which must then be the single-executable build. */
  binary?: string;
  kubeconfigName: string;
  tokenFile: string;
  caFile: string;
  kubernetesServiceHost: string;
  kubernetesServicePort: number;
  nodeName?: string;
  /** undefined: the detected cgroup2 mount. */
  cgroupRoot?: string;
  procRoot: string;
  netnsDir: string;
  healthPort: number;
  healthAddress: string;
  logLevel: LogLevel;
  /** The namespace waggle itself runs in. */
  podNamespace: string;
  /** excludeNamespaces: the configured list, and always podNamespace. */
  plugin: {
    logLevel: LogLevel;
    logFile: string;
    excludeNamespaces: string[];
    /** socket_bypass of the entry; undefined ("auto"): left out, the kernel's default. */
    socketBypass?: boolean;
    /** socket_bypass_backlog of the entry; undefined ("auto"): left out, the default. */
    socketBypassBacklog?: number;
  };
  repairWarn: { count: number; windowSeconds: number };
}

export type UninstallOptions = Pick<
  InstallOptions,
  "cniBinDir" | "cniNetDir" | "bpfRoot" | "kubeconfigName" | "logLevel"
>;

/** Thrown for a setting that can't be used; the message names the flag and its variable. */
export class OptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OptionError";
  }
}

/** Declares every flag; those `used` does not read are accepted and said to be ignored. */
function declare(y: Argv, used: (spec: OptionSpec) => boolean): Argv {
  let out = y;
  for (const spec of OPTION_SPECS) {
    const shown = spec.default === undefined ? "" : ` [default: ${JSON.stringify(spec.default)}]`;
    const ignored = used(spec) ? "" : " (accepted and ignored here)";
    // No yargs default: resolve() must see whether the flag was given to prefer it over env.
    out = out.option(spec.flag, {
      type: spec.type,
      describe: `${spec.describe} (env ${spec.env})${shown}${ignored}`,
    });
  }
  return out;
}

export function declareInstallOptions(y: Argv): Argv {
  return declare(y, () => true);
}

/**
 * Uninstall takes every install flag (the uninstall DaemonSet may share the install's
 * arguments and environment) and reads those marked `uninstall`.
 */
export function declareUninstallOptions(y: Argv): Argv {
  return declare(y, (s) => s.uninstall === true);
}

type Raw = Map<string, string | number | undefined>;

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** Flag value, else environment value, else default, for every spec. */
function rawValues(
  specs: readonly OptionSpec[],
  args: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): Raw {
  const raw: Raw = new Map();
  for (const spec of specs) {
    let fromFlag = args[spec.flag] ?? args[camel(spec.flag)];
    // A flag given twice: the last one counts (as on most command lines).
    if (Array.isArray(fromFlag)) fromFlag = fromFlag[fromFlag.length - 1];
    const fromEnv = env[spec.env];
    let value: string | number | undefined;
    if (fromFlag !== undefined) value = fromFlag as string | number;
    else if (fromEnv !== undefined && fromEnv !== "") value = fromEnv;
    else value = spec.default;
    if (spec.type === "number" && value !== undefined) {
      const n = typeof value === "number" ? value : Number(value);
      if (!Number.isInteger(n) || (typeof value === "string" && value.trim() === "")) {
        throw new OptionError(
          `--${spec.flag} (${spec.env}) must be an integer, got ${JSON.stringify(value)}`,
        );
      }
      value = n;
    }
    raw.set(spec.flag, value);
  }
  return raw;
}

function spec(flag: string): OptionSpec {
  const found = OPTION_SPECS.find((s) => s.flag === flag);
  if (!found) throw new Error(`no option ${flag}`);
  return found;
}

function where(flag: string): string {
  return `--${flag} (${spec(flag).env})`;
}

function str(raw: Raw, flag: string): string {
  const v = raw.get(flag);
  if (v === undefined || v === "") {
    if (spec(flag).optional) return "";
    throw new OptionError(`${where(flag)} is required`);
  }
  return String(v);
}

function num(raw: Raw, flag: string, min: number, max: number): number {
  const v = raw.get(flag);
  if (v === undefined) throw new OptionError(`${where(flag)} is required`);
  const n = Number(v);
  if (n < min || n > max) throw new OptionError(`${where(flag)} must be ${min}..${max}, got ${n}`);
  return n;
}

function absolutePath(raw: Raw, flag: string): string {
  const v = str(raw, flag);
  if (!isAbsolute(v))
    throw new OptionError(`${where(flag)} must be an absolute path, got ${JSON.stringify(v)}`);
  return v;
}

function plainFileName(raw: Raw, flag: string): string {
  const v = str(raw, flag);
  if (v.includes("/") || v === "." || v === "..") {
    throw new OptionError(`${where(flag)} must be a file name, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** A namespace name: an RFC 1123 label, as Kubernetes requires. */
function namespaceName(raw: Raw, flag: string): string {
  const v = str(raw, flag);
  if (v.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v)) {
    throw new OptionError(
      `${where(flag)} must be a namespace name (lower-case letters, digits and '-', at most 63), got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

function level(raw: Raw, flag: string): LogLevel {
  const v = str(raw, flag);
  if (!isLogLevel(v))
    throw new OptionError(
      `${where(flag)} must be one of ${logLevels.join(", ")}, got ${JSON.stringify(v)}`,
    );
  return v;
}

/** "true" / "false" -> the entry's socket_bypass; "auto" -> nothing (the kernel's default). */
function socketBypass(raw: Raw, flag: string): { socketBypass?: boolean } {
  const v = str(raw, flag);
  if (v === "auto") return {};
  if (v === "true" || v === "false") return { socketBypass: v === "true" };
  throw new OptionError(`${where(flag)} must be true, false or auto, got ${JSON.stringify(v)}`);
}

/** Bytes -> the entry's socket_bypass_backlog; "auto" -> nothing (the default bound). */
function socketBypassBacklog(raw: Raw, flag: string): { socketBypassBacklog?: number } {
  const v = str(raw, flag);
  if (v === "auto") return {};
  const n = Number(v);
  const { min, max } = SOCKET_BYPASS_BACKLOG;
  if (!/^[0-9]+$/.test(v) || n < min || n > max)
    throw new OptionError(
      `${where(flag)} must be auto or bytes from ${min} to ${max}, got ${JSON.stringify(v)}`,
    );
  return { socketBypassBacklog: n };
}

/** The install settings from parsed flags and the environment. Throws OptionError. */
export function resolveInstallOptions(
  args: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): InstallOptions {
  const raw = rawValues(OPTION_SPECS, args, env);
  const confName = str(raw, "conf-name");
  const binary = str(raw, "binary");
  const nodeName = str(raw, "node-name");
  const podNamespace = namespaceName(raw, "pod-namespace");
  const excluded = str(raw, "exclude-namespaces")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  return {
    cniBinDir: absolutePath(raw, "cni-bin-dir"),
    cniNetDir: absolutePath(raw, "cni-net-dir"),
    hostCniNetDir: absolutePath(raw, "host-cni-net-dir"),
    confName: confName === "auto" ? undefined : plainFileName(raw, "conf-name"),
    bpfRoot: absolutePath(raw, "bpf-root"),
    binary: binary === "" ? undefined : absolutePath(raw, "binary"),
    kubeconfigName: plainFileName(raw, "kubeconfig-name"),
    tokenFile: absolutePath(raw, "token-file"),
    caFile: absolutePath(raw, "ca-file"),
    kubernetesServiceHost: str(raw, "kubernetes-service-host"),
    kubernetesServicePort: num(raw, "kubernetes-service-port", 1, 65535),
    nodeName: nodeName === "" ? undefined : nodeName,
    cgroupRoot: str(raw, "cgroup-root") === "auto" ? undefined : absolutePath(raw, "cgroup-root"),
    procRoot: absolutePath(raw, "proc-root"),
    netnsDir: absolutePath(raw, "netns-dir"),
    healthPort: num(raw, "health-port", 0, 65535),
    healthAddress: String(raw.get("health-address") ?? ""),
    logLevel: level(raw, "log-level"),
    podNamespace,
    plugin: {
      logLevel: level(raw, "plugin-log-level"),
      logFile: absolutePath(raw, "plugin-log-file"),
      excludeNamespaces: [...new Set([...excluded, podNamespace])],
      ...socketBypass(raw, "socket-bypass"),
      ...socketBypassBacklog(raw, "socket-bypass-backlog"),
    },
    repairWarn: {
      count: num(raw, "repair-warn-count", 1, 1_000_000),
      windowSeconds: num(raw, "repair-warn-window", 1, 86_400),
    },
  };
}

/** The uninstall settings (a subset of install's). Throws OptionError. */
export function resolveUninstallOptions(
  args: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): UninstallOptions {
  const raw = rawValues(
    OPTION_SPECS.filter((s) => s.uninstall),
    args,
    env,
  );
  return {
    cniBinDir: absolutePath(raw, "cni-bin-dir"),
    cniNetDir: absolutePath(raw, "cni-net-dir"),
    bpfRoot: absolutePath(raw, "bpf-root"),
    kubeconfigName: plainFileName(raw, "kubeconfig-name"),
    logLevel: level(raw, "log-level"),
  };
}

/** Defaults by flag, for the manifest and docs tests. */
export function optionDefault(flag: string): string | number | undefined {
  return spec(flag).default;
}
