// Every error code waggle's CNI plugin can print, in one table. Codes 0-99 are the CNI spec's
// well-known codes (SPEC.md, "Error"); 100 and up are waggle's own. The runtime sees the code
// and `msg` in the error JSON on stdout (and kubelet shows them in the pod's events); `details`
// carries the longer explanation. Each entry's doc comment is its documentation.

export const ErrorCodes = {
  /**
   * Incompatible CNI version: the config's `cniVersion` is not one waggle supports
   * (0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0), or the command needs a newer one (CHECK needs 0.4.0
   * or later, GC and STATUS need 1.1.0).
   */
  IncompatibleVersion: 1,
  /**
   * Unsupported field: the config asks for something waggle does not do (an istio-cni key
   * such as `ambient_enabled: true`). The message names the key and its value.
   */
  UnsupportedField: 2,
  /**
   * Invalid environment: a required `CNI_*` variable is missing or malformed (container ID,
   * interface name, `CNI_ARGS` pairs, unknown `CNI_COMMAND`). The message names the variables.
   */
  InvalidEnvironment: 4,
  /** I/O failure reading the configuration from stdin. */
  IoFailure: 5,
  /**
   * Decoding failure: stdin is not a JSON object, or a field has the wrong JSON type, or the
   * `prevResult` does not parse as a result of the config's version.
   */
  DecodingFailure: 6,
  /**
   * Invalid network configuration: a waggle key has a bad value, an unknown key is present,
   * the network name is invalid, or ADD/CHECK came without the `prevResult` a chained plugin
   * needs. The message names the key.
   */
  InvalidConfig: 7,
  /**
   * Invalid network namespace: `CNI_NETNS` is the plugin's own network namespace (the host's),
   * which would capture the node's traffic instead of a pod's.
   */
  InvalidNetns: 8,
  /**
   * Try again later: a transient condition, such as the Kubernetes API server being
   * unreachable (or answering with 5xx / 429) after every retry. Kubelet retries the sandbox.
   */
  TryAgainLater: 11,
  /**
   * STATUS: waggle cannot serve ADD (cgroup v2 missing, or the BPF programs cannot be loaded).
   * Existing pods keep working.
   */
  PluginNotAvailable: 50,
  /**
   * STATUS: waggle cannot serve ADD and existing meshed pods may have lost their redirection
   * (the bpffs holding their pinned state is not mounted).
   */
  LimitedConnectivity: 51,
  /**
   * The pod could not be read from the Kubernetes API server for a reason retrying will not
   * fix: the kubeconfig is missing or invalid, or the server refused (401, 403, 404 ...).
   * ADD fails closed: a meshed pod never starts without its redirection.
   */
  PodLookupFailed: 100,
  /**
   * A pod annotation (or an istio-proxy setting) that decides the redirection is invalid,
   * e.g. a CIDR or a port list that does not parse. The message names the annotation.
   */
  InvalidPodAnnotation: 101,
  /**
   * The pod's cgroup could not be found: no cgroup v2 on the host, the runtime's `cgroupPath`
   * does not exist under the cgroup2 mount, or no cgroup matches `K8S_POD_UID`.
   */
  PodCgroupNotFound: 102,
  /**
   * The `prevResult` gives no usable pod address: no IP for the pod's interface, so inbound
   * capture cannot be keyed.
   */
  NoPodAddress: 103,
  /**
   * Attaching the pod failed (loading or pinning programs, writing its maps, attaching its
   * cgroup links or netns link). Everything done for this pod was rolled back.
   */
  AttachFailed: 104,
  /**
   * CHECK found the pod's redirection incomplete: a pinned program, link or map
   * entry is missing or different. The message lists what is wrong.
   */
  CheckFailed: 105,
  /** DEL could not remove the pod's state (the message names what is left). */
  DetachFailed: 106,
  /** GC could not remove every stale attachment (it kept going; the message lists failures). */
  GcFailed: 107,
  /** An unexpected internal error (a bug): the message carries the exception. */
  Internal: 999,
} as const;

export type ErrorCodeName = keyof typeof ErrorCodes;
export type ErrorCode = (typeof ErrorCodes)[ErrorCodeName];

/** An error that becomes the spec's error JSON: `{cniVersion, code, msg, details}`. */
export class CniError extends Error {
  readonly code: ErrorCode;
  readonly details: string | undefined;

  constructor(code: ErrorCode, msg: string, details?: string, options?: { cause?: unknown }) {
    super(msg, options);
    this.name = "CniError";
    this.code = code;
    this.details = details || undefined;
  }

  /** The spec's error object, in the given protocol version. */
  toJSON(cniVersion: string): {
    cniVersion: string;
    code: number;
    msg: string;
    details?: string;
  } {
    return {
      cniVersion,
      code: this.code,
      msg: this.message,
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** The code's name in the table (for logs and docs): 101 -> "InvalidPodAnnotation". */
export function errorCodeName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCodes)) if (value === code) return name;
  return `code ${code}`;
}
