// HAProxy as an Istio-style sidecar inside a pod, for end-to-end capture tests.
//
// It runs as the proxy uid/gid (default 1337) in the pod's netns and cgroup, in TCP mode:
//   outbound  127.0.0.1:15001 -> the connection's original destination
//   inbound   0.0.0.0:15006   -> the original destination, from source 127.0.0.6
// A server address of 0.0.0.0:0 makes HAProxy connect to the destination of the accepted
// connection, which on Linux builds with netfilter support (`haproxy -vv`: +NETFILTER,
// +TPROXY) it reads with getsockopt(SOL_IP, SO_ORIGINAL_DST). The inbound side binds the
// passthrough source as Envoy does (row O2), so its calls to the app are not captured again.
//
// IPv4 only: HAProxy 2.6 asks SO_ORIGINAL_DST for IPv4 sockets only and uses getsockname()
// for IPv6 ones, so an IPv6 sidecar would forward every connection to itself ([::1]:15001).
//
// Each connection is logged as one JSON line on stdout when it starts (option logasap):
// {"frontend", "client", "accepted", "server", "source"}, so a test can prove the path.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { track } from "./resources";
import type { Sandbox, SandboxProcess } from "./sandbox";
import { waitForTcpListener } from "./sockprobe";

export interface HaproxyOptions {
  uid?: number;
  gid?: number;
  outboundPort?: number;
  inboundPort?: number;
}

/** One logged connection. */
export interface HaproxyLogLine {
  /** "outbound" or "inbound". */
  frontend: string;
  /** The client's address and port. */
  client: string;
  /** The frontend address as HAProxy sees it (the original destination once read). */
  accepted: string;
  /** Where HAProxy connected to. */
  server: string;
  /** The source address of that connection. */
  source: string;
}

/** The log line format: one JSON object per connection, written when it is established. */
const LOG_FORMAT =
  '{"frontend":"%f","client":"%ci:%cp","accepted":"%fi:%fp","server":"%si:%sp","source":"%bi:%bp"}';

/** The configuration text of a sidecar. */
export function haproxySidecarConfig(
  opts: Required<Pick<HaproxyOptions, "outboundPort" | "inboundPort">>,
): string {
  return `global
  log stdout format raw local0 info
  maxconn 1024

defaults
  mode tcp
  log global
  option logasap
  log-format '${LOG_FORMAT}'
  timeout connect 3s
  timeout client 30s
  timeout server 30s

frontend outbound
  bind 127.0.0.1:${opts.outboundPort}
  default_backend original_destination

frontend inbound
  bind 0.0.0.0:${opts.inboundPort}
  default_backend passthrough

backend original_destination
  server original 0.0.0.0:0

backend passthrough
  server original 0.0.0.0:0 source 127.0.0.6
`;
}

/** A running HAProxy sidecar. */
export class HaproxySidecar {
  constructor(
    readonly process: SandboxProcess,
    readonly configPath: string,
  ) {}

  /** Every connection logged so far. */
  connections(): HaproxyLogLine[] {
    return this.process.stdoutLines
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as HaproxyLogLine);
  }

  /** Waits for a logged connection matching `predicate`. */
  async waitForConnection(
    predicate: (c: HaproxyLogLine) => boolean,
    timeoutMs = 5000,
  ): Promise<HaproxyLogLine> {
    const line = await this.process.waitForLine(
      (l) => l.startsWith("{") && predicate(JSON.parse(l)),
      timeoutMs,
    );
    return JSON.parse(line) as HaproxyLogLine;
  }

  async stop(): Promise<void> {
    await this.process.kill("SIGTERM");
  }
}

/**
 * Starts a sidecar in a pod (any sandbox: a test Pod or a CNI-wired one) and waits until both
 * listeners are up.
 */
export async function startHaproxySidecar(
  pod: Sandbox,
  opts: HaproxyOptions = {},
): Promise<HaproxySidecar> {
  const config = {
    outboundPort: opts.outboundPort ?? 15001,
    inboundPort: opts.inboundPort ?? 15006,
  };
  const dir = mkdtempSync(join(tmpdir(), "waggle-haproxy-"));
  const tracked = track(`haproxy config ${dir}`, () =>
    rmSync(dir, { recursive: true, force: true }),
  );
  chmodSync(dir, 0o755);
  const configPath = join(dir, "haproxy.cfg");
  writeFileSync(configPath, haproxySidecarConfig(config), { mode: 0o644 });
  const uid = opts.uid ?? 1337;
  // -db: foreground, no master process, logs to stdout; the pid is HAProxy's.
  const proc = pod.spawn("haproxy", ["-db", "-f", configPath], { uid, gid: opts.gid ?? uid });
  void proc.exited.then(() => tracked.release());
  try {
    await waitForTcpListener(pod, config.outboundPort, proc);
    await waitForTcpListener(pod, config.inboundPort, proc);
  } catch (e) {
    await proc.kill("SIGKILL");
    throw new Error(`${(e as Error).message}; haproxy ${proc.output()}`);
  }
  return new HaproxySidecar(proc, configPath);
}
