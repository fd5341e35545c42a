// nginx serving a fixed body inside a pod, as an unprivileged app (uid 1000 by default):
// everything it writes (pid file, temp dirs, access log) lives in its own temp dir, errors go
// to stderr, and the access log has one JSON line per request, so a test sees who called it.
// (The log cannot be /dev/stdout: Node's stdio pipes are sockets, which open() refuses.)

import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { track } from "./resources";
import type { Sandbox, SandboxProcess } from "./sandbox";
import { waitForTcpListener } from "./sockprobe";

export interface NginxOptions {
  /** Default 8080 (an unprivileged app cannot bind below 1024). */
  port?: number;
  /** The response body of every request. */
  body?: string;
  uid?: number;
  gid?: number;
}

/** One request as nginx logged it. */
export interface NginxAccessLine {
  /** The connecting peer: 127.0.0.6:<port> when it came through an inbound sidecar. */
  client: string;
  /** The local address that accepted the connection. */
  server: string;
  request: string;
  status: number;
}

const ACCESS_FORMAT =
  '\'{"client":"$remote_addr:$remote_port","server":"$server_addr:$server_port","request":"$request","status":$status}\'';

/** The configuration text (all paths inside `dir`). */
export function nginxConfig(dir: string, port: number, body: string, ipv6: boolean): string {
  const listen = [`listen ${port};`, ...(ipv6 ? [`listen [::]:${port} ipv6only=on;`] : [])];
  return `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  log_format waggle ${ACCESS_FORMAT};
  access_log ${dir}/access.log waggle;
  default_type text/plain;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    ${listen.join("\n    ")}
    location / { return 200 ${JSON.stringify(body)}; }
  }
}
`;
}

/** A running nginx. */
export class NginxServer {
  constructor(
    readonly process: SandboxProcess,
    readonly port: number,
    readonly body: string,
    readonly accessLogPath: string,
  ) {}

  /** Every request logged so far. */
  requests(): NginxAccessLine[] {
    if (!existsSync(this.accessLogPath)) return [];
    return readFileSync(this.accessLogPath, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as NginxAccessLine);
  }

  /** Waits for a logged request matching `predicate` (nginx logs when a request ends). */
  async waitForRequest(
    predicate: (r: NginxAccessLine) => boolean,
    timeoutMs = 5000,
  ): Promise<NginxAccessLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.requests().find(predicate);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(
          `nginx logged no matching request in ${timeoutMs} ms: ${JSON.stringify(this.requests())}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async stop(): Promise<void> {
    await this.process.kill("SIGTERM");
  }
}

/**
 * Starts nginx in a pod (any sandbox: a test Pod or a CNI-wired one; IPv6 too when it has an
 * IPv6 address) and waits until it listens.
 */
export async function startNginx(
  pod: Sandbox & { readonly ipv6?: string },
  opts: NginxOptions = {},
): Promise<NginxServer> {
  const port = opts.port ?? 8080;
  const body = opts.body ?? `hello from ${pod.label}\n`;
  const uid = opts.uid ?? 1000;
  const gid = opts.gid ?? uid;
  const dir = mkdtempSync(join(tmpdir(), "waggle-nginx-"));
  const tracked = track(`nginx dir ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  chownSync(dir, uid, gid);
  const config = join(dir, "nginx.conf");
  writeFileSync(config, nginxConfig(dir, port, body, pod.ipv6 !== undefined), { mode: 0o644 });
  const proc = pod.spawn("nginx", ["-p", dir, "-c", config, "-e", "stderr"], { uid, gid });
  void proc.exited.then(() => tracked.release());
  try {
    await waitForTcpListener(pod, port, proc);
  } catch (e) {
    await proc.kill("SIGKILL");
    throw new Error(`${(e as Error).message}; nginx ${proc.output()}`);
  }
  return new NginxServer(proc, port, body, join(dir, "access.log"));
}
