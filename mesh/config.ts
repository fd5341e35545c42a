// waggle's entry in the CNI config list: its keys, istio-cni's names for the same settings
// (current and legacy), defaults and validation. Errors are WaggleConfigErrors naming the key
// (the plugin answers code 7, or code 2 for an istio-cni setting waggle does not implement).
// Keys are snake_case like istio-cni's; the installer writes them (install/plugin-entry.ts).

/** An entry waggle cannot run with; `unsupported`: an istio-cni mode waggle does not implement. */
export class WaggleConfigError extends Error {
  override name = "WaggleConfigError";
  constructor(
    message: string,
    readonly unsupported = false,
    readonly details?: string,
  ) {
    super(message);
  }
}

export const PLUGIN_TYPE = "waggle";

/** The runtime capability carrying the pod's annotations (containerd, CRI-O). */
export const POD_ANNOTATIONS_CAPABILITY = "io.kubernetes.cri.pod-annotations";
/** The runtime capability carrying the pod's cgroup parent. */
export const CGROUP_PATH_CAPABILITY = "cgroupPath";

export type LogLevelSetting = "error" | "warn" | "info" | "debug" | "none";

export interface WaggleConfig {
  /** bpf_root: bpffs directory holding the shared programs and per-pod pins. */
  bpfRoot: string;
  /** log_level (istio-cni: plugin_log_level, legacy log_level). */
  logLevel: LogLevelSetting;
  /** log_file: rotating JSON-lines log; "" logs to stderr only. */
  logFile: string;
  /** log_max_size_mb: size at which the log file rotates. */
  logMaxSizeMB: number;
  /** log_max_files: rotated files kept. */
  logMaxFiles: number;
  /**
   * kubernetes.kubeconfig: for reading pods from the API server; absent: decide from the
   * runtime's pod annotations alone.
   */
  kubeconfig?: string;
  /** exclude_namespaces (istio-cni legacy: kubernetes.exclude_namespaces). */
  excludeNamespaces: string[];
  /** api_attempts, api_retry_interval_ms, api_timeout_ms: reading a pod. */
  api: { attempts: number; intervalMs: number; timeoutMs: number };
  /**
   * socket_bypass: the node's socket bypass switch. Absent: the default for this kernel
   * (datapath/requirements.ts bypassSupport); true: on where the kernel can run it;
   * false: off (new connections use TCP).
   */
  socketBypass?: boolean;
  /**
   * socket_bypass_backlog: bytes a bypassed receiver may leave unread before its senders fall
   * back to TCP, whose window then stops them (SOCKET_BYPASS_BACKLOG). Absent: the default.
   */
  socketBypassBacklog?: number;
}

/**
 * The socket bypass's bound on a receiver's unread bytes (docs/datapath.md, "Flow control"):
 * the default (TCP's autotuned receive buffer goes up to 6 MiB by default; the programs'
 * BYPASS_BACKLOG_DEFAULT in bpf/include/waggle/abi.h is the same), and the range a
 * configuration may ask for: below a few messages every bulk transfer would fall back to
 * TCP at once; the programs keep it in 32 bits.
 */
export const SOCKET_BYPASS_BACKLOG = {
  default: 4 << 20,
  min: 256 << 10,
  max: 2 ** 32 - 1,
} as const;

export const DEFAULT_CONFIG: Readonly<WaggleConfig> = Object.freeze({
  bpfRoot: "/sys/fs/bpf/waggle",
  logLevel: "info",
  logFile: "/var/log/waggle/cni.log",
  logMaxSizeMB: 10,
  logMaxFiles: 5,
  excludeNamespaces: [],
  // istio-cni's 30 attempts 1 s apart; with the timeout the worst case stays under kubelet's
  // 2 minute runtime request timeout.
  api: { attempts: 30, intervalMs: 1000, timeoutMs: 2000 },
});

/** The most time reading a pod may take (attempts x (timeout + interval)): below kubelet's 2 min. */
export const MAX_API_BUDGET_MS = 110_000;

// Keys the runtime or the protocol puts in every plugin's configuration.
const PROTOCOL_KEYS = new Set([
  "cniVersion",
  "name",
  "type",
  "capabilities",
  "runtimeConfig",
  "prevResult",
  "args",
]);

// istio-cni keys with no meaning for waggle: accepted and ignored, so an istio-cni entry can
// be converted by changing its type. Exported (with the other key lists) for the docs test.
export const IGNORED_ISTIO_KEYS: ReadonlySet<string> = new Set([
  "cni_agent_run_dir",
  "pod_namespace",
  "log_uds_address",
  "cni_event_address",
  "enablement_selectors",
  "enable_ambient_detection_retry",
  "native_nftables",
]);
export const IGNORED_ISTIO_KUBERNETES_KEYS: ReadonlySet<string> = new Set([
  "k8s_api_root",
  "node_name",
  "cni_bin_dir",
  "intercept_type",
]);

type Raw = Record<string, unknown>;

/**
 * Reads waggle's settings from the request configuration. A setting may be given by more than
 * one of istio-cni's names (current and legacy); the first listed wins and two names with
 * different values are an error:
 * - log level: `log_level`, `plugin_log_level`;
 * - excluded namespaces: `exclude_namespaces`, `kubernetes.exclude_namespaces`;
 * - kubeconfig: `kubernetes.kubeconfig`.
 * istio-cni keys with no meaning for waggle are ignored; `ambient_enabled: true` is code 2.
 */
export function parseWaggleConfig(raw: Raw): WaggleConfig {
  for (const key of Object.keys(raw)) {
    if (PROTOCOL_KEYS.has(key) || key.startsWith("cni.dev/") || IGNORED_ISTIO_KEYS.has(key))
      continue;
    if (!KNOWN_KEYS.has(key))
      invalid(key, `unknown key (waggle knows ${[...KNOWN_KEYS].sort().join(", ")})`);
  }
  if (raw.ambient_enabled !== undefined && raw.ambient_enabled !== false) {
    throw new WaggleConfigError(
      `unsupported field ambient_enabled=${JSON.stringify(raw.ambient_enabled)}`,
      true,
      "waggle redirects sidecar pods only; Istio ambient mode is not supported",
    );
  }
  const k8s = objectAt(raw, "kubernetes");
  for (const key of Object.keys(k8s)) {
    if (!KUBERNETES_KEYS.has(key) && !IGNORED_ISTIO_KUBERNETES_KEYS.has(key)) {
      invalid(`kubernetes.${key}`, "unknown key");
    }
  }

  const logLevel = pick(raw, k8s, ["log_level", "plugin_log_level"]);
  const excludeNamespaces = pick(raw, k8s, ["exclude_namespaces", "kubernetes.exclude_namespaces"]);
  const kubeconfig = pick(raw, k8s, ["kubernetes.kubeconfig"]);

  const config: WaggleConfig = {
    bpfRoot: absolutePath(raw, "bpf_root") ?? DEFAULT_CONFIG.bpfRoot,
    logLevel: logLevel ? parseLogLevel(logLevel.key, logLevel.value) : DEFAULT_CONFIG.logLevel,
    logFile: raw.log_file === "" ? "" : (absolutePath(raw, "log_file") ?? DEFAULT_CONFIG.logFile),
    logMaxSizeMB: integer(raw, "log_max_size_mb", 1, 1024) ?? DEFAULT_CONFIG.logMaxSizeMB,
    logMaxFiles: integer(raw, "log_max_files", 1, 100) ?? DEFAULT_CONFIG.logMaxFiles,
    excludeNamespaces: excludeNamespaces
      ? namespaces(excludeNamespaces.key, excludeNamespaces.value)
      : [],
    api: {
      attempts: integer(raw, "api_attempts", 1, 120) ?? DEFAULT_CONFIG.api.attempts,
      intervalMs: integer(raw, "api_retry_interval_ms", 0, 10_000) ?? DEFAULT_CONFIG.api.intervalMs,
      timeoutMs: integer(raw, "api_timeout_ms", 100, 60_000) ?? DEFAULT_CONFIG.api.timeoutMs,
    },
  };
  if (kubeconfig) {
    if (typeof kubeconfig.value !== "string" || !kubeconfig.value.startsWith("/")) {
      invalid(kubeconfig.key, `must be an absolute path, got ${JSON.stringify(kubeconfig.value)}`);
    }
    config.kubeconfig = kubeconfig.value as string;
  }
  const budget = config.api.attempts * (config.api.timeoutMs + config.api.intervalMs);
  if (budget > MAX_API_BUDGET_MS) {
    invalid(
      "api_attempts",
      `api_attempts x (api_timeout_ms + api_retry_interval_ms) is ${budget} ms; keep it under ${MAX_API_BUDGET_MS} ms (kubelet gives up after 2 minutes)`,
    );
  }
  if (raw.socket_bypass !== undefined) {
    if (typeof raw.socket_bypass !== "boolean") invalid("socket_bypass", "must be true or false");
    config.socketBypass = raw.socket_bypass;
  }
  if (raw.socket_bypass_backlog !== undefined) {
    const v = raw.socket_bypass_backlog;
    const { min, max } = SOCKET_BYPASS_BACKLOG;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
      invalid("socket_bypass_backlog", `must be a whole number of bytes from ${min} to ${max}`);
    config.socketBypassBacklog = v;
  }
  return config;
}

/** Top-level keys waggle reads. */
export const KNOWN_KEYS: ReadonlySet<string> = new Set([
  "bpf_root",
  "log_level",
  "plugin_log_level",
  "log_file",
  "log_max_size_mb",
  "log_max_files",
  "exclude_namespaces",
  "kubernetes",
  "api_attempts",
  "api_retry_interval_ms",
  "api_timeout_ms",
  "ambient_enabled",
  "socket_bypass",
  "socket_bypass_backlog",
]);

/** Keys waggle reads inside the `kubernetes` block (istio-cni's layout). */
export const KUBERNETES_KEYS: ReadonlySet<string> = new Set(["kubeconfig", "exclude_namespaces"]);

function invalid(key: string, problem: string): never {
  throw new WaggleConfigError(`invalid waggle config: ${key}: ${problem}`);
}

function objectAt(raw: Raw, key: string): Raw {
  const v = raw[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) invalid(key, "must be an object");
  return v as Raw;
}

// The first of several names for one setting that is present; "kubernetes.x" reads the legacy
// block. Two present names with different values are an error.
function pick(raw: Raw, legacy: Raw, names: string[]): { key: string; value: unknown } | undefined {
  const present = names
    .map((key) => ({
      key,
      value: key.startsWith("kubernetes.") ? legacy[key.slice(11)] : raw[key],
    }))
    .filter((e) => e.value !== undefined && e.value !== null);
  for (const other of present.slice(1)) {
    if (JSON.stringify(other.value) !== JSON.stringify(present[0].value)) {
      invalid(
        present[0].key,
        `conflicts with ${other.key} (${JSON.stringify(present[0].value)} vs ${JSON.stringify(other.value)})`,
      );
    }
  }
  return present[0];
}

// waggle's levels, plus istio-cni's names ("fatal" is error, "none" turns logging off).
function parseLogLevel(key: string, value: unknown): LogLevelSetting {
  const v = typeof value === "string" ? value.toLowerCase() : value;
  if (v === "error" || v === "warn" || v === "info" || v === "debug" || v === "none") return v;
  if (v === "warning") return "warn";
  if (v === "fatal") return "error";
  return invalid(
    key,
    `must be one of error, warn, info, debug, none; got ${JSON.stringify(value)}`,
  );
}

function absolutePath(raw: Raw, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !v.startsWith("/"))
    invalid(key, `must be an absolute path, got ${JSON.stringify(v)}`);
  return v as string;
}

function integer(raw: Raw, key: string, min: number, max: number): number | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    invalid(key, `must be an integer ${min}-${max}, got ${JSON.stringify(v)}`);
  }
  return v as number;
}

function namespaces(key: string, v: unknown): string[] {
  // istio-cni's installer writes a list; accept its comma-separated form too.
  const list =
    typeof v === "string"
      ? v
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "")
      : v;
  if (!Array.isArray(list) || list.some((n) => typeof n !== "string" || n === "")) {
    invalid(key, `must be a list of namespace names, got ${JSON.stringify(v)}`);
  }
  return list as string[];
}
