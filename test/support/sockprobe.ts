// Typed wrapper of sockprobe.py (see its docstring): listeners and client probes run inside
// a sandbox (pod or node) as a chosen uid/gid, and every socket's view comes back as JSON.

import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { track } from "./resources";
import type { RunAs, Sandbox, SandboxProcess } from "./sandbox";

/** The script in the source tree (out/test/support -> test/support). */
export const SOCKPROBE_SOURCE = join(
  __dirname,
  "..",
  "..",
  "..",
  "test",
  "support",
  "sockprobe.py",
);

let readableCopy: string | undefined;

/**
 * A copy of the script every uid can read: the checkout may live below a directory other
 * users cannot enter (e.g. /root), and probes run as uid 1000 or 1337. Made once per process.
 */
export function sockprobePath(): string {
  if (readableCopy && existsSync(readableCopy)) return readableCopy;
  const dir = mkdtempSync(join(tmpdir(), "waggle-sockprobe-"));
  chmodSync(dir, 0o755);
  const path = join(dir, "sockprobe.py");
  copyFileSync(SOCKPROBE_SOURCE, path);
  chmodSync(path, 0o755);
  track(`sockprobe copy ${dir}`, () => rmSync(dir, { recursive: true, force: true }), {
    runScoped: true,
  });
  readableCopy = path;
  return path;
}
/** The system interpreter: readable by every uid (a pyenv shim under /root is not). */
export const PYTHON = "/usr/bin/python3";

export type Proto = "tcp" | "udp";

/** "10.0.0.2:80" or "[fd00::2]:80". */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface ListenerSpec {
  /** Reported in every record, e.g. "pod:outbound". */
  name: string;
  proto: Proto;
  /** HOST:PORT, see hostPort. */
  addr: string;
}

/** What a TCP listener saw for one accepted connection. */
export interface AcceptRecord {
  event: "accept";
  listener: string;
  proto: "tcp";
  /** getsockname of the accepted socket. */
  local: string;
  peer: string;
  /** getsockopt SO_ORIGINAL_DST (IP6T_SO_ORIGINAL_DST), or null with the errno name below. */
  originalDst: string | null;
  originalDstError: string | null;
}

/** What a UDP listener saw for one datagram (local: the datagram's destination). */
export interface DatagramRecord {
  event: "datagram";
  listener: string;
  proto: "udp";
  local: string;
  peer: string;
  payload: string;
}

export type ListenerRecord = AcceptRecord | DatagramRecord;

export interface ProbeSpec {
  proto?: Proto;
  /** HOST:PORT to connect (TCP) or send to (UDP). */
  to: string;
  /** Source address to bind first ("127.0.0.6", "[::6]:0"). */
  bind?: string;
  /** Seconds; defaults 3 (TCP) and 1.5 (UDP). */
  timeout?: number;
  payload?: string;
}

export interface ProbeResult {
  proto: Proto;
  to: string;
  /** TCP: connected/refused/timeout/error; UDP: replied/timeout/error. */
  result: "connected" | "replied" | "refused" | "timeout" | "error";
  errno?: string;
  /** The client socket's own address. */
  local?: string;
  /** TCP: getpeername as the client sees it. */
  peer?: string;
  /** The listener's record, sent back to the client (null: connected but no sockprobe reply). */
  reply?: ListenerRecord | null;
  /** UDP: where the reply came from. */
  replyFrom?: string;
}

/** A running `sockprobe.py listen` process. */
export class ProbeListeners {
  constructor(
    readonly process: SandboxProcess,
    readonly specs: readonly ListenerSpec[],
  ) {}

  /** Every accept/datagram record printed so far. */
  records(): ListenerRecord[] {
    return this.process.stdoutLines
      .map((l) => JSON.parse(l) as { event: string })
      .filter((r): r is ListenerRecord => r.event === "accept" || r.event === "datagram");
  }

  async stop(): Promise<void> {
    await this.process.kill("SIGKILL");
  }
}

function parseLine<T>(line: string, what: string): T {
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${what}: not a JSON line: ${line}`);
  }
}

/** Starts listeners inside a sandbox and waits until all are bound; throws naming a bind failure. */
export async function startListeners(
  sandbox: Sandbox,
  specs: readonly ListenerSpec[],
  as: RunAs = {},
): Promise<ProbeListeners> {
  const proc = sandbox.spawn(
    PYTHON,
    [sockprobePath(), "listen", ...specs.map((s) => JSON.stringify(s))],
    as,
  );
  try {
    const line = await proc.waitForLine((l) => /"event":"(ready|error)"/.test(l));
    const first = parseLine<{ event: string }>(line, "sockprobe listen");
    if (first.event !== "ready") throw new Error(`sockprobe listen in ${sandbox.label}: ${line}`);
  } catch (e) {
    await proc.kill("SIGKILL");
    throw e;
  }
  return new ProbeListeners(proc, specs);
}

/** Runs client probes in order, in one process, inside a sandbox as the given identity. */
export async function probe(
  sandbox: Sandbox,
  specs: readonly ProbeSpec[],
  as: RunAs = {},
): Promise<ProbeResult[]> {
  const stdout = await sandbox.execChecked(
    PYTHON,
    [sockprobePath(), "connect", ...specs.map((s) => JSON.stringify(s))],
    {
      ...as,
      timeoutMs: 30_000,
    },
  );
  const results = stdout
    .trim()
    .split("\n")
    .map((l) => parseLine<ProbeResult>(l, "sockprobe connect"));
  if (results.length !== specs.length)
    throw new Error(
      `sockprobe connect: ${specs.length} probes, ${results.length} results: ${stdout}`,
    );
  return results;
}

export interface HttpResult {
  result: "ok" | "error";
  status?: number;
  body?: string;
  error?: string;
}

/** An HTTP GET from inside a sandbox as the given identity. */
export async function httpGet(
  sandbox: Sandbox,
  url: string,
  as: RunAs = {},
  timeoutSeconds = 5,
): Promise<HttpResult> {
  const stdout = await sandbox.execChecked(
    PYTHON,
    [sockprobePath(), "http-get", url, String(timeoutSeconds)],
    as,
  );
  return parseLine<HttpResult>(stdout.trim(), "sockprobe http-get");
}

/**
 * Waits until something listens on a TCP port inside a sandbox (polls `ss`); gives up early
 * when the process that should listen has exited.
 */
export async function waitForTcpListener(
  sandbox: Sandbox,
  port: number,
  server?: SandboxProcess,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out = await sandbox.execChecked("ss", ["-Hltn", `sport = :${port}`]);
    if (out.trim()) return;
    if (server && !server.running) {
      throw new Error(`${server.description} exited before listening on port ${port}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `nothing listens on TCP port ${port} in ${sandbox.label} after ${timeoutMs} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
