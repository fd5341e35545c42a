// The processes of the bench pods: HAProxy sidecars, nginx and the sockperf server, tuned for
// measuring rather than for proving a path (test/support/haproxy.ts and nginx.ts log every
// connection and request; here nothing is logged per request, limits are raised, and each
// process runs in a cgroup of its own under the pod cgroup, pinned to CPUs, so its CPU time
// can be read per role).
//
// Sidecar (uid/gid 1337, TCP mode, like Envoy's TCP proxy: one upstream connection per
// downstream connection):
//   intercepting modes (iptables, waggle):
//     outbound 127.0.0.1:15001 -> the original destination (SO_ORIGINAL_DST)
//     inbound  0.0.0.0:15006   -> the original destination, from 127.0.0.6 (passthrough)
//   merbridge: the same, with Envoy's listeners where Merbridge depends on them: outbound on
//     0.0.0.0:15001 (Merbridge tells a meshed pod by a listener there, and sends its apps to
//     127.128.x.y:15001), and the inbound listener refuses a connection whose original
//     destination is its own 15006, as Envoy's does (its "virtualInbound-blackhole" chain)
//   explicit mode (no interception; the app calls its sidecar itself):
//     outbound 127.0.0.1:15001 -> <peer>:15006, and 127.0.0.1:15002 -> <peer>:15007 (sockperf)
//     inbound  0.0.0.0:15006 -> <self>:8080 and 0.0.0.0:15007 -> <self>:11111, from 127.0.0.6
// so the explicit path does exactly the hops the intercepting path does, minus interception.
// With TLS (the TLS pod pair of each mode): the sidecar-to-sidecar hop is mutual TLS, like
// Istio's: inbound listeners `ssl crt` with the client certificate required, outbound server
// lines `ssl` with a client certificate, both verified against the run's CA (generateMeshCerts:
// made with openssl into the run's temporary directory, never stored).

import { spawn } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { COMMAND_PATH, runChecked } from "../test/support/command";
import { RUN_TAG } from "../test/support/names";
import { track } from "../test/support/resources";
import {
  killCgroupSync,
  type RunAs,
  type Sandbox,
  SandboxProcess,
  sandboxArgv,
} from "../test/support/sandbox";
import { waitForTcpListener } from "../test/support/sockprobe";
import { benchTmpPrefix } from "./cleanup";

export const APP_PORT = 8080;
export const SOCKPERF_PORT = 11111;
export const OUTBOUND_PORT = 15001;
export const INBOUND_PORT = 15006;
/** explicit mode's second static route, for the sockperf probe. */
export const OUTBOUND_SOCKPERF_PORT = 15002;
export const INBOUND_SOCKPERF_PORT = 15007;
/** Every port something listens on in a bench pod. */
export const LISTENER_PORTS = [
  APP_PORT,
  SOCKPERF_PORT,
  OUTBOUND_PORT,
  INBOUND_PORT,
  OUTBOUND_SOCKPERF_PORT,
  INBOUND_SOCKPERF_PORT,
] as const;
export const PROXY_UID = 1337;
export const APP_UID = 1000;
export const PASSTHROUGH_SOURCE = "127.0.0.6";

/** Roles of the processes, each with its own cgroup under the pod's. */
export type Role = "loadgen" | "sidecar" | "app";

export type SidecarRouting =
  /** envoyListeners: outbound on 0.0.0.0:15001, and a connection to 15006 itself refused (merbridge). */
  | { kind: "intercept"; envoyListeners?: boolean }
  | { kind: "explicit"; peerIp: string; selfIp: string };

/** The files of the mesh's mutual TLS: the CA and one sidecar identity (certificate + key). */
export interface MeshCerts {
  caFile: string;
  /** PEM with the sidecar's certificate and its key (HAProxy's `crt`). */
  identityFile: string;
}

/** HAProxy's TLS words for the inbound bind and the outbound server line (mutual TLS). */
export function sidecarTlsOptions(certs: MeshCerts): { bind: string; server: string } {
  const common = `crt ${certs.identityFile} ca-file ${certs.caFile} verify required`;
  return { bind: `ssl ${common}`, server: `ssl ${common}` };
}

/**
 * Generates the mesh's CA and one sidecar identity signed by it (RSA 2048, Istio's default
 * workload key) with openssl into dir, readable by the proxy user. Returns the files.
 */
export async function generateMeshCerts(dir: string): Promise<MeshCerts> {
  const f = (name: string) => join(dir, name);
  const openssl = (args: string[]) => runChecked("openssl", args);
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=waggle bench mesh CA",
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.pem"),
  ]);
  await openssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=waggle bench sidecar",
    "-keyout",
    f("sidecar.key"),
    "-out",
    f("sidecar.csr"),
  ]);
  await openssl([
    "x509",
    "-req",
    "-days",
    "2",
    "-in",
    f("sidecar.csr"),
    "-CA",
    f("ca.pem"),
    "-CAkey",
    f("ca.key"),
    "-CAcreateserial",
    "-out",
    f("sidecar.crt"),
  ]);
  const identity = readFileSync(f("sidecar.crt"), "utf8") + readFileSync(f("sidecar.key"), "utf8");
  writeFileSync(f("sidecar.pem"), identity, { mode: 0o600 });
  chownSync(f("sidecar.pem"), PROXY_UID, PROXY_UID);
  rmSync(f("ca.key"));
  rmSync(f("sidecar.key"));
  return { caFile: f("ca.pem"), identityFile: f("sidecar.pem") };
}

/** HAProxy's configuration for a bench sidecar (mutual TLS between sidecars when certs are given). */
export function haproxyBenchConfig(
  routing: SidecarRouting,
  statsSocket: string,
  certs?: MeshCerts,
): string {
  const tls = certs ? sidecarTlsOptions(certs) : undefined;
  const inbound = (addr: string) => (tls ? `${addr} ${tls.bind}` : addr);
  const outbound = (addr: string) => (tls ? `${addr} ${tls.server}` : addr);
  const lines = [
    "global",
    "  maxconn 8000",
    "  nbthread 1",
    `  stats socket ${statsSocket} mode 600 level operator`,
    "",
    "defaults",
    "  mode tcp",
    "  timeout connect 2s",
    "  timeout client 30s",
    "  timeout server 30s",
    "",
  ];
  const route = (name: string, bind: string, server: string, rules: string[] = []) =>
    lines.push(
      `frontend ${name}`,
      `  bind ${bind} backlog 4096`,
      ...rules.map((r) => `  ${r}`),
      `  default_backend ${name}`,
      `backend ${name}`,
      `  server upstream ${server}`,
      "",
    );
  if (routing.kind === "intercept") {
    const envoy = routing.envoyListeners === true;
    route("outbound", `${envoy ? "0.0.0.0" : "127.0.0.1"}:${OUTBOUND_PORT}`, outbound("0.0.0.0:0"));
    route(
      "inbound",
      inbound(`0.0.0.0:${INBOUND_PORT}`),
      `0.0.0.0:0 source ${PASSTHROUGH_SOURCE}`,
      // dst_port is the original destination (SO_ORIGINAL_DST) when there is one
      envoy ? [`tcp-request connection reject if { dst_port ${INBOUND_PORT} }`] : [],
    );
  } else {
    route("outbound", `127.0.0.1:${OUTBOUND_PORT}`, outbound(`${routing.peerIp}:${INBOUND_PORT}`));
    route(
      "outbound_sockperf",
      `127.0.0.1:${OUTBOUND_SOCKPERF_PORT}`,
      outbound(`${routing.peerIp}:${INBOUND_SOCKPERF_PORT}`),
    );
    route(
      "inbound",
      inbound(`0.0.0.0:${INBOUND_PORT}`),
      `${routing.selfIp}:${APP_PORT} source ${PASSTHROUGH_SOURCE}`,
    );
    route(
      "inbound_sockperf",
      inbound(`0.0.0.0:${INBOUND_SOCKPERF_PORT}`),
      `${routing.selfIp}:${SOCKPERF_PORT} source ${PASSTHROUGH_SOURCE}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** nginx's configuration: one worker, no logs, keep-alive without limits, a fixed body. */
export function nginxBenchConfig(dir: string, port: number, bodyBytes: number): string {
  if (!Number.isInteger(bodyBytes) || bodyBytes < 1 || bodyBytes > 65536)
    throw new Error(`response body must be 1..65536 bytes, got ${bodyBytes}`);
  const body = "x".repeat(bodyBytes - 1);
  return `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr error;
events { worker_connections 8192; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen ${port} backlog=4096;
    location / { return 200 "${body}\\n"; }
  }
}
`;
}

/** A private directory for a process's files, removed with the run (or at exit). */
export function processDir(label: string, owner?: number): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `${benchTmpPrefix(RUN_TAG)}${label}-`));
  const tracked = track(`bench dir ${path}`, () => rmSync(path, { recursive: true, force: true }));
  if (owner !== undefined) chownSync(path, owner, owner);
  return { path, remove: () => tracked.release() };
}

/**
 * The cgroup of a role inside a pod, or of one process of that role (<pod>/<role>/<name>):
 * a long-running process gets a cgroup of its own so that stopping it kills all of it (nginx's
 * workers too) and its role's cpu.stat still sums everything the role ran.
 */
export function roleCgroup(pod: Sandbox, role: Role, name?: string): string {
  const dir = name === undefined ? join(pod.cgroupDir, role) : join(pod.cgroupDir, role, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface PlacedCommand extends RunAs {
  role: Role;
  /** A cgroup of its own under the role's (long-running processes). */
  name?: string;
  /** taskset CPU list ("0", "1-3"); undefined: not pinned. */
  cpus?: string;
}

/** argv for `sh` that runs cmd in the pod's netns, in the role's cgroup, pinned, as the user. */
export function placedArgv(
  pod: Sandbox,
  place: PlacedCommand,
  cmd: string,
  args: readonly string[],
): string[] {
  const [c, a] =
    place.cpus === undefined ? [cmd, args] : ["taskset", ["-c", place.cpus, cmd, ...args]];
  return sandboxArgv(pod.netnsPath, roleCgroup(pod, place.role, place.name), c, a, place);
}

/** Starts a long-running process placed in a pod (killed with the pod's cgroup). */
export function spawnPlaced(
  pod: Sandbox,
  place: PlacedCommand,
  cmd: string,
  args: readonly string[],
): SandboxProcess {
  const child = spawn("sh", placedArgv(pod, place, cmd, args), {
    env: { ...process.env, PATH: COMMAND_PATH },
    stdio: ["pipe", "pipe", "pipe"],
  });
  return new SandboxProcess(child, `${cmd} (${place.role}) in ${pod.label}`);
}

export interface StartedProcess {
  process: SandboxProcess;
  /** HAProxy's stats socket, for sidecars. */
  statsSocket?: string;
  stop(): Promise<void>;
}

async function started(
  pod: Sandbox,
  place: PlacedCommand,
  proc: SandboxProcess,
  ports: number[],
  dir: { remove(): void } | undefined,
  extra: Partial<StartedProcess> = {},
): Promise<StartedProcess> {
  const stop = async () => {
    // Its whole cgroup: a process whose children outlive it would keep its pipes open.
    killCgroupSync(roleCgroup(pod, place.role, place.name));
    await proc.exited;
    dir?.remove();
  };
  try {
    for (const port of ports) await waitForTcpListener(pod, port, proc, 10_000);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}; ${proc.output()}`);
  }
  return { process: proc, stop, ...extra };
}

export async function startSidecar(
  pod: Sandbox,
  routing: SidecarRouting,
  cpus: string | undefined,
  certs?: MeshCerts,
): Promise<StartedProcess> {
  const dir = processDir("haproxy", PROXY_UID);
  const statsSocket = join(dir.path, "stats.sock");
  const config = join(dir.path, "haproxy.cfg");
  writeFileSync(config, haproxyBenchConfig(routing, statsSocket, certs), { mode: 0o644 });
  const place: PlacedCommand = {
    role: "sidecar",
    name: "haproxy",
    cpus,
    uid: PROXY_UID,
    gid: PROXY_UID,
  };
  const proc = spawnPlaced(pod, place, "haproxy", ["-db", "-f", config]);
  const ports =
    routing.kind === "intercept"
      ? [OUTBOUND_PORT, INBOUND_PORT]
      : [OUTBOUND_PORT, OUTBOUND_SOCKPERF_PORT, INBOUND_PORT, INBOUND_SOCKPERF_PORT];
  return started(pod, place, proc, ports, dir, { statsSocket });
}

export async function startNginx(
  pod: Sandbox,
  bodyBytes: number,
  cpus: string | undefined,
): Promise<StartedProcess> {
  const dir = processDir("nginx", APP_UID);
  const config = join(dir.path, "nginx.conf");
  writeFileSync(config, nginxBenchConfig(dir.path, APP_PORT, bodyBytes), { mode: 0o644 });
  const place: PlacedCommand = { role: "app", name: "nginx", cpus, uid: APP_UID, gid: APP_UID };
  const proc = spawnPlaced(pod, place, "nginx", ["-p", dir.path, "-c", config, "-e", "stderr"]);
  return started(pod, place, proc, [APP_PORT], dir);
}

export async function startSockperfServer(
  pod: Sandbox,
  args: readonly string[],
  cpus: string | undefined,
): Promise<StartedProcess> {
  const place: PlacedCommand = { role: "app", name: "sockperf", cpus, uid: APP_UID, gid: APP_UID };
  const proc = spawnPlaced(pod, place, "sockperf", args);
  return started(pod, place, proc, [SOCKPERF_PORT], undefined);
}

/** One row of HAProxy's `show stat` (CSV), by column name. */
export type HaproxyStatRow = Record<string, string>;

/** Parses `show stat` output: "# pxname,svname,..." header then one CSV row per proxy/server. */
export function parseHaproxyStat(text: string): HaproxyStatRow[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const header = lines.find((l) => l.startsWith("# "));
  if (!header) throw new Error(`no header in HAProxy stats: ${text.slice(0, 200)}`);
  const names = header.slice(2).split(",");
  return lines
    .filter((l) => !l.startsWith("#"))
    .map((l) => {
      const values = l.split(",");
      return Object.fromEntries(names.map((n, i) => [n, values[i] ?? ""]));
    });
}

/** Connection errors of a sidecar: failed upstream connects and aborted sessions, summed over backends. */
export interface SidecarErrors {
  /** Sessions handled by the backends (stot). */
  sessions: number;
  /** Failed connects to the upstream (econ). */
  connectErrors: number;
  /** Errors on the response side (eresp). */
  responseErrors: number;
  /** Sessions aborted by the client (cli_abrt) / by the server (srv_abrt). */
  clientAborts: number;
  serverAborts: number;
}

export function sidecarErrors(rows: HaproxyStatRow[]): SidecarErrors {
  const backends = rows.filter((r) => r.svname === "BACKEND");
  const sum = (k: string) => backends.reduce((a, r) => a + (Number(r[k]) || 0), 0);
  return {
    sessions: sum("stot"),
    connectErrors: sum("econ"),
    responseErrors: sum("eresp"),
    clientAborts: sum("cli_abrt"),
    serverAborts: sum("srv_abrt"),
  };
}

/** a + sign * b, field by field (sign -1: the delta between two readings). */
export function combineSidecarErrors(
  a: SidecarErrors,
  b: SidecarErrors,
  sign: 1 | -1,
): SidecarErrors {
  return {
    sessions: a.sessions + sign * b.sessions,
    connectErrors: a.connectErrors + sign * b.connectErrors,
    responseErrors: a.responseErrors + sign * b.responseErrors,
    clientAborts: a.clientAborts + sign * b.clientAborts,
    serverAborts: a.serverAborts + sign * b.serverAborts,
  };
}

/** Sends one command to a HAProxy stats socket and returns the answer. */
export function haproxyCommand(
  socketPath: string,
  command: string,
  timeoutMs = 5000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path: socketPath });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`HAProxy stats socket ${socketPath}: no answer to ${command}`));
    }, timeoutMs);
    sock.on("connect", () => sock.end(`${command}\n`));
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`HAProxy stats socket ${socketPath}: ${e.message}`));
    });
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString());
    });
  });
}
