// Memory per bypassed connection: N idle connections held open through a mode's whole path
// (client app -> client sidecar -> server sidecar -> nginx, each used for one request, then
// left idle), the kernel's slab memory read from /proc/meminfo just before they open and once
// they are all open. Samples of waggle and waggle-redirect alternate in one run, so the
// difference per connection is what the bypass adds (psocks, sockhash entries, socket
// storage: all kmalloc'd, none charged to a memory cgroup, so only the machine-wide Slab sees
// them; other work on the machine moves it too, which the spread over samples shows).

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { killCgroupSync, type SandboxProcess } from "../test/support/sandbox";
import type { BenchCluster, ModeDeployment } from "./cluster";
import type { ModeName } from "./modes";
import { APP_UID, type PlacedCommand, processDir, roleCgroup, spawnPlaced } from "./sidecars";
import { pairedRatios, roundOrder, type Spread, spread } from "./stats";

/** The /proc/meminfo fields a sample reads (kB). */
export const MEMINFO_FIELDS = ["Slab", "SUnreclaim", "MemAvailable"] as const;
export type MeminfoField = (typeof MEMINFO_FIELDS)[number];
export type Meminfo = Record<MeminfoField, number>;

/** Parses the fields of /proc/meminfo the bench reads, in kB; throws when one is missing. */
export function parseMeminfo(text: string): Meminfo {
  const out: Partial<Meminfo> = {};
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line.trim());
    if (m && (MEMINFO_FIELDS as readonly string[]).includes(m[1]))
      out[m[1] as MeminfoField] = Number(m[2]);
  }
  for (const f of MEMINFO_FIELDS)
    if (out[f] === undefined) throw new Error(`/proc/meminfo has no ${f}`);
  return out as Meminfo;
}

/** One sample: N connections of one mode, kernel memory before and with them open. */
export interface MemorySample {
  mode: ModeName;
  round: number;
  connections: number;
  before: Meminfo;
  open: Meminfo;
  /** Messages the mode's two pods bypassed while the connections opened and made their request. */
  bypassMsgs: number;
}

/** Slab bytes per connection of a sample (each connection is the path's 3 hops, 6 sockets). */
export function slabBytesPerConnection(s: MemorySample): number {
  return ((s.open.Slab - s.before.Slab) * 1024) / s.connections;
}

export interface MemorySummary {
  connections: number;
  rounds: number;
  /** Slab bytes per connection by mode over its samples. */
  perConnection: Partial<Record<ModeName, Spread>>;
  /** waggle minus waggle-redirect, per round (paired), bytes per connection. */
  bypassExtra: Spread | null;
  /** waggle / waggle-redirect, per round. */
  bypassRatio: Spread | null;
}

/** Summarises samples: per-mode spreads and the paired difference the bypass makes. */
export function summarizeMemory(samples: readonly MemorySample[]): MemorySummary | null {
  if (samples.length === 0) return null;
  const modes = [...new Set(samples.map((s) => s.mode))];
  const perConnection: Partial<Record<ModeName, Spread>> = {};
  for (const m of modes)
    perConnection[m] = spread(samples.filter((s) => s.mode === m).map(slabBytesPerConnection));
  const byRound = (m: ModeName) =>
    new Map(samples.filter((s) => s.mode === m).map((s) => [s.round, slabBytesPerConnection(s)]));
  const on = byRound("waggle");
  const off = byRound("waggle-redirect");
  const diffs = [...on].filter(([r]) => off.has(r)).map(([r, v]) => v - (off.get(r) as number));
  const ratios = pairedRatios(on, off);
  return {
    connections: samples[0].connections,
    rounds: new Set(samples.map((s) => s.round)).size,
    perConnection,
    bypassExtra: diffs.length > 0 ? spread(diffs) : null,
    bypassRatio: ratios.length > 0 ? spread(ratios) : null,
  };
}

/**
 * The idle-connection holder (the client pod's app): opens N connections to host:port one by
 * one, makes one HTTP request on each and reads its whole response, prints "ready N", then
 * holds them until stdin closes; each line "again" on stdin makes one more request on every
 * connection, answered with "again N".
 */
export const IDLE_HOLDER_PY = `import os, socket, sys, resource
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
def request(s, i):
    s.sendall(b"GET / HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n")
    buf = b""
    while b"\\r\\n\\r\\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection %d closed before the response headers" % i)
        buf += chunk
    head, _, body = buf.partition(b"\\r\\n\\r\\n")
    length = 0
    for line in head.split(b"\\r\\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection %d closed mid-body" % i)
        body += chunk
held = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    request(s, i)
    held.append(s)
print("ready %d" % len(held), flush=True)
for line in sys.stdin:
    if line.strip() == "again":
        for i, s in enumerate(held):
            request(s, i)
        print("again %d" % len(held), flush=True)
`;

const SETTLE_MS = 500;
const DRAIN_MS = 1500;

function readMeminfo(): Meminfo {
  return parseMeminfo(readFileSync("/proc/meminfo", "utf8"));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Connections held open through a deployment's whole path by the idle holder, run as the
 * client pod's app (in a cgroup of its own under the load generator's).
 */
export class HeldConnections {
  private constructor(
    private readonly cgroup: string,
    private readonly proc: SandboxProcess,
    readonly count: number,
  ) {}

  /** Writes the idle holder into dir (readable by the app's user); returns its path. */
  static script(dir: string): string {
    const script = join(dir, "idle-holder.py");
    writeFileSync(script, IDLE_HOLDER_PY, { mode: 0o644 });
    return script;
  }

  /** Opens `count` connections, one request made on each; resolves once all are open. */
  static async open(
    d: ModeDeployment,
    script: string,
    count: number,
    loadCpus: string | undefined,
  ): Promise<HeldConnections> {
    const [host, port] = d.httpTarget.split(":");
    const place: PlacedCommand = {
      role: "loadgen",
      name: "idle",
      cpus: loadCpus,
      uid: APP_UID,
      gid: APP_UID,
    };
    const proc = spawnPlaced(d.client.sandbox, place, "python3", [
      script,
      host,
      port,
      String(count),
    ]);
    const held = new HeldConnections(
      roleCgroup(d.client.sandbox, place.role, place.name),
      proc,
      count,
    );
    try {
      await proc.waitForLine((l) => l === `ready ${count}`, 120_000);
    } catch (e) {
      await held.close();
      throw e;
    }
    return held;
  }

  /** One more request on each connection (once per holder). */
  async again(): Promise<void> {
    this.proc.child.stdin.write("again\n");
    await this.proc.waitForLine((l) => l === `again ${this.count}`, 30_000);
  }

  /** Kills the holder: every connection closes. */
  async close(): Promise<void> {
    killCgroupSync(this.cgroup);
    await this.proc.exited;
  }
}

/**
 * Measures memory per connection in waggle and waggle-redirect, alternating, `rounds` samples
 * each of `connections` idle connections. bypassMsgs reads the two pods' counters.
 */
export async function measureConnectionMemory(
  cluster: BenchCluster,
  opts: {
    connections: number;
    rounds: number;
    loadCpus: string | undefined;
    bypassMsgs: (d: ModeDeployment) => number;
    log: (line: string) => void;
  },
): Promise<MemorySample[]> {
  const dir = processDir("idle", APP_UID);
  const script = HeldConnections.script(dir.path);
  const modes: ModeName[] = ["waggle-redirect", "waggle"];
  const samples: MemorySample[] = [];
  try {
    for (let round = 0; round < opts.rounds; round++) {
      for (const mode of roundOrder(modes, round)) {
        const d = cluster.deployment(mode);
        await sleep(DRAIN_MS);
        const msgsBefore = opts.bypassMsgs(d);
        const before = readMeminfo();
        const held = await HeldConnections.open(d, script, opts.connections, opts.loadCpus);
        try {
          await sleep(SETTLE_MS);
          const open = readMeminfo();
          const sample: MemorySample = {
            mode,
            round,
            connections: opts.connections,
            before,
            open,
            bypassMsgs: opts.bypassMsgs(d) - msgsBefore,
          };
          samples.push(sample);
          opts.log(
            `    memory round ${round + 1} ${mode.padEnd(15)} ${(slabBytesPerConnection(sample) / 1024).toFixed(2)} KiB slab per connection (${opts.connections} idle connections, ${sample.bypassMsgs} messages bypassed)`,
          );
        } finally {
          await held.close();
        }
      }
    }
  } finally {
    dir.remove();
  }
  return samples;
}
