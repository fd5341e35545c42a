// The one error type the addon throws.
import { constants } from "node:os";

/**
 * A failed libbpf/kernel operation. `op` names the operation ("bpf_link_update",
 * "bpf_tc_attach", "netns_cookie", ...), `errno` is the positive errno value and `code` its
 * symbolic name ("EINVAL"). The message reads "<op>: <strerror> (<code>)[: detail]".
 * When a program or object load fails, `log` carries the libbpf/verifier log of that call
 * and the message ends with its tail.
 */
export class BpfError extends Error {
  readonly op: string;
  readonly errno: number;
  readonly code: string;
  readonly log?: string;

  constructor(op: string, errno: number, code: string, message: string, log?: string) {
    super(message);
    this.name = "BpfError";
    this.op = op;
    this.errno = errno;
    this.code = code;
    if (log !== undefined && log !== "") this.log = log;
  }
}

/** A BpfError for bad input caught before any syscall (errno from os.constants.errno). */
export function invalidArgument(op: string, detail: string, code = "EINVAL"): BpfError {
  const errno = (constants.errno as Record<string, number>)[code] ?? 0;
  return new BpfError(op, errno, code, `${op}: ${detail} (${code})`);
}
