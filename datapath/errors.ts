// The one error type the datapath module throws.

/** What went wrong, for callers that map errors to CNI codes or retries. */
export type DatapathErrorCode =
  | "INVALID_ARGUMENT" // bad input: nothing was done
  | "NETNS" // the network namespace cannot be used
  | "CGROUP" // the cgroup cannot be used
  | "CONFLICT" // another container already owns this netns
  | "BPFFS" // the bpf root is not on a bpffs: nothing was done
  | "UNTRUSTED_ROOT" // the bpf root or a directory in it is not ours alone: nothing was done
  | "PROGRAMS" // loading/pinning the shared programs failed
  // A kernel attach, map write or pin removal failed. From attachPod: everything it had done
  // was rolled back. From detachPod, unlinkPodLinks or removeDatapath: the message names what
  // is left behind (a later DEL, GC or uninstall retries it).
  | "ATTACH";

export class DatapathError extends Error {
  readonly code: DatapathErrorCode;
  /** The underlying error (often an ebpf-napi BpfError with errno/code). */
  override readonly cause?: unknown;

  constructor(code: DatapathErrorCode, message: string, cause?: unknown) {
    super(cause instanceof Error ? `${message}: ${cause.message}` : message);
    this.name = "DatapathError";
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}
