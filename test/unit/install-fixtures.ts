// Fixtures for the installer tests: Calico's config shapes, scratch directories, a silent
// (or capturing) logger, and a waiter.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import winston from "winston";
import { createLogger, type Logger } from "../../base/log";
import type { RefreshOutcome } from "../../datapath";
import type { PodFollowPort } from "../../install/pod-follower";

const fixtureDir = join(__dirname, "..", "..", "..", "test", "fixtures", "calico");

/** Calico's config list as its manifests (v3.2x) and the tigera operator write it. */
export const CALICO_SHAPES = {
  manifest: readFileSync(join(fixtureDir, "10-calico.conflist.manifest-v3.2x"), "utf8"),
  operator: readFileSync(join(fixtureDir, "10-calico.conflist.operator"), "utf8"),
} as const;

export const SAMPLE_ENTRY: Record<string, unknown> = {
  type: "waggle",
  log_level: "info",
  kubernetes: {
    kubeconfig: "/etc/cni/net.d/waggle-kubeconfig",
    exclude_namespaces: ["kube-system"],
  },
  capabilities: { "io.kubernetes.cri.pod-annotations": true, cgroupPath: true },
};

/** A fresh directory; call the returned function (in `after`) to remove it. */
export function scratchDir(tag: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `waggle-${tag}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface LogLine {
  level: string;
  message: string;
  [key: string]: unknown;
}

/** A logger that keeps its lines in memory (and writes them nowhere else). */
export function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = createLogger({ level: "debug" });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() !== "") lines.push(JSON.parse(line) as LogLine);
      }
      done();
    },
  });
  log.add(new winston.transports.Stream({ stream: sink }));
  log.silent = false;
  return { log, lines };
}

/** Polls `condition` every 10 ms until true; rejects after `timeoutMs`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - start;
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A PodFollowPort over pods in memory and a watcher whose changes the test reports. */
export class FakeFollowPort implements PodFollowPort {
  pods = new Map<string, string>(); // containerId -> netns path
  refreshed: string[] = [];
  watches = new Map<number, string>(); // watch id -> netns path
  onChange: (id: number) => void = () => {};
  closed = false;
  failWatch = new Set<string>();
  failRefresh = new Set<string>();
  failList = false;
  outcome: RefreshOutcome = { status: "applied", added: 0, removed: 0 };
  private nextId = 1;

  constructor(readonly dir: string) {}

  podsDir = () => this.dir;
  podIds = () => {
    if (this.failList) throw new Error("bpffs unreadable");
    return [...this.pods.keys()];
  };
  podNetns = (_root: string, id: string) => this.pods.get(id) ?? null;
  refreshPod = (_root: string, id: string): RefreshOutcome => {
    this.refreshed.push(id);
    if (this.failRefresh.has(id)) throw new Error("netns unreadable");
    return this.outcome;
  };
  watcher = (onChange: (id: number) => void) => {
    this.onChange = onChange;
    return {
      add: (path: string) => {
        if (this.failWatch.has(path)) throw new Error("ENOENT");
        const id = this.nextId++;
        this.watches.set(id, path);
        return id;
      },
      remove: (id: number) => {
        this.watches.delete(id);
      },
      close: () => {
        this.closed = true;
      },
    };
  };
  /** Reports a change in the netns at path, as the native watcher would. */
  change(path: string): void {
    for (const [id, p] of this.watches) if (p === path) this.onChange(id);
  }
}
