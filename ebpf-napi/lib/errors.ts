// The one error type the addon throws.
import { constants } from "node:os";
import { getSystemErrorMessage, getSystemErrorName } from "node:util";

/** How many trailing log lines a load failure's message carries (the full log is in `.log`). */
const LOG_TAIL_LINES = 12;

/**
 * A failed libbpf/kernel operation. `op` names the operation ("bpf_link_update",
 * "bpf_tc_attach", "open_netns", ...), `errno` is the positive errno value and `code` its
 * symbolic name ("EINVAL"). The message reads "<op>: <strerror> (<code>)[: <detail>]".
 * When a program or object load fails, `log` carries the libbpf/verifier log of that call
 * and the message ends with its last lines.
 */
export class BpfError extends Error {
  readonly op: string;
  readonly errno: number;
  readonly code: string;
  readonly log?: string;

  constructor(op: string, errno: number, description: string, detail = "", log = "") {
    const code = errnoCode(errno);
    let message = `${op}: ${description} (${code})`;
    if (detail !== "") message += `: ${detail}`;
    if (log !== "") message += `\n${logTail(log)}`;
    super(message);
    this.name = "BpfError";
    this.op = op;
    this.errno = errno;
    this.code = code;
    if (log !== "") this.log = log;
  }
}

/** libbpf's own error codes (LIBBPF_ERRNO__*), which are not system errnos. */
const LIBBPF_ERRNO_BASE = 4000;
const LIBBPF_CODES = [
  "LIBELF",
  "FORMAT",
  "KVERSION",
  "ENDIAN",
  "INTERNAL",
  "RELOC",
  "LOAD",
  "VERIFY",
  "PROG2BIG",
  "KVER",
  "PROGTYPE",
  "WRNGPID",
  "INVSEQ",
  "NLPARSE",
];

/**
 * The platform's errno names by value. libuv names only the errors it maps (getSystemErrorName
 * calls ENOLINK, which a severed bpf link returns, "Unknown system error -67"); Node's
 * os.constants.errno has every name of the platform. Where two names share a value (EAGAIN and
 * EWOULDBLOCK) the first listed wins, libuv's choice.
 */
const ERRNO_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);
}

function errnoCode(errno: number): string {
  const libbpf = LIBBPF_CODES[errno - LIBBPF_ERRNO_BASE];
  if (libbpf !== undefined) return `LIBBPF_ERRNO__${libbpf}`;
  try {
    const name = getSystemErrorName(-errno);
    if (!name.startsWith("Unknown")) return name;
  } catch {
    // not an errno libuv knows
  }
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

function logTail(log: string): string {
  return log.trimEnd().split("\n").slice(-LOG_TAIL_LINES).join("\n");
}

/** A BpfError for bad input caught before any syscall (errno taken from its code). */
export function invalidArgument(op: string, detail: string, code = "EINVAL"): BpfError {
  const errno = errnoByCode(code);
  // libuv spells descriptions in lower case; strerror (the addon's side) capitalises them.
  const description = getSystemErrorMessage(-errno).replace(/^./, (c) => c.toUpperCase());
  return new BpfError(op, errno, description, detail);
}

function errnoByCode(code: string): number {
  for (let errno = 1; errno < 200; errno++) {
    if (errnoCode(errno) === code) return errno;
  }
  throw new Error(`unknown errno code ${code}`);
}
