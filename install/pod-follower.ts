// Following meshed pods after their ADD (the installer's long-running side of
// datapath/follow.ts): every attached pod's netns is watched over rtnetlink (links,
// addresses, routes); a change there re-derives the pod's entries (refreshPod). Pods are
// found from their records: at start (each refreshed once, covering changes made while the
// installer was down), on inotify of the pods directory (a new ADD, a DEL) and by a scan
// every `scanMs`; every pod is refreshed again every `resyncMs`. A watch is dropped with its
// record, so the watch never keeps a deleted pod's netns alive for longer than that.
import { type FSWatcher, watch } from "node:fs";
import type { Logger } from "../base/log";
import type { RefreshOutcome } from "../datapath";

/** One watch per netns; onChange gets the id `add` returned. */
export interface NetnsWatch {
  add(netnsPath: string): number;
  remove(id: number): void;
  close(): void;
}

/** What the follower needs from the datapath (bound in datapath-binding.ts). */
export interface PodFollowPort {
  /** The directory holding one entry per attached pod (watched for changes). */
  podsDir(bpfRoot: string): string;
  /** The container ids of the attached pods (a directory listing: cheap). */
  podIds(bpfRoot: string): string[];
  /** The netns path an attached pod's record names (null: not attached, unreadable). */
  podNetns(bpfRoot: string, containerId: string): string | null;
  refreshPod(bpfRoot: string, containerId: string): RefreshOutcome;
  watcher(onChange: (id: number) => void): NetnsWatch;
}

export interface PodFollowerOptions {
  bpfRoot: string;
  port: PodFollowPort;
  log: Logger;
  /** Scan for pods attached or detached (besides inotify). */
  scanMs?: number;
  /** Refresh every pod although nothing was reported (a lost notification, a bug). */
  resyncMs?: number;
}

interface Followed {
  netnsPath: string;
  watchId: number;
}

export class PodFollower {
  private readonly pods = new Map<string, Followed>();
  private readonly byWatch = new Map<number, string>();
  private readonly pending = new Set<string>();
  private watcher?: NetnsWatch;
  private dirWatch?: FSWatcher;
  private timers: NodeJS.Timeout[] = [];
  private flushScheduled = false;
  private stopped = false;
  /** Refreshes done, by outcome (tests, logs). */
  readonly counts = { applied: 0, changed: 0, skipped: 0, failed: 0 };

  constructor(private readonly opts: PodFollowerOptions) {}

  /** Watches every attached pod and refreshes each once. */
  start(): void {
    const { port, scanMs = 1000, resyncMs = 300_000 } = this.opts;
    this.watcher = port.watcher((id) => this.changed(id));
    this.scan(true);
    this.timers.push(
      setInterval(() => this.scan(false), scanMs).unref(),
      setInterval(() => this.scan(true), resyncMs).unref(),
    );
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.dirWatch?.close();
    this.watcher?.close();
    this.pods.clear();
    this.byWatch.clear();
  }

  /** The container ids followed now. */
  followed(): string[] {
    return [...this.pods.keys()];
  }

  /** Finds pods attached and detached since the last scan; `all`: refresh every pod. */
  private scan(all: boolean): void {
    if (this.stopped || !this.watcher) return;
    const { port, bpfRoot, log } = this.opts;
    this.watchDir();
    let ids: string[];
    try {
      ids = port.podIds(bpfRoot);
    } catch (err) {
      log.warn("listing attached pods failed", { error: (err as Error).message });
      return;
    }
    const seen = new Set(ids);
    for (const containerId of ids) {
      const known = this.pods.get(containerId);
      if (known && !all) continue;
      const netnsPath = this.netnsOf(containerId);
      if (known && known.netnsPath === netnsPath) {
        this.refresh(containerId);
        continue;
      }
      if (known) this.forget(containerId); // attached again, elsewhere
      if (netnsPath === null) continue;
      try {
        // the watch first: a change after it is reported, one before it is in the refresh
        const watchId = this.watcher.add(netnsPath);
        this.pods.set(containerId, { netnsPath, watchId });
        this.byWatch.set(watchId, containerId);
      } catch (err) {
        log.debug("not following pod: its netns cannot be watched", {
          containerId,
          netnsPath,
          error: (err as Error).message,
        });
        continue;
      }
      this.refresh(containerId);
    }
    for (const containerId of [...this.pods.keys()])
      if (!seen.has(containerId)) this.forget(containerId);
  }

  private netnsOf(containerId: string): string | null {
    try {
      return this.opts.port.podNetns(this.opts.bpfRoot, containerId);
    } catch {
      return null; // a damaged record: DEL removes it; nothing to follow
    }
  }

  /** inotify on the pods directory (it may not exist before the first ADD). */
  private watchDir(): void {
    if (this.dirWatch) return;
    try {
      this.dirWatch = watch(this.opts.port.podsDir(this.opts.bpfRoot), () => this.scan(false));
      this.dirWatch.on("error", () => {
        this.dirWatch?.close();
        this.dirWatch = undefined;
      });
    } catch {
      // not there yet: the next scan tries again
    }
  }

  private forget(containerId: string): void {
    const f = this.pods.get(containerId);
    if (!f) return;
    this.watcher?.remove(f.watchId);
    this.byWatch.delete(f.watchId);
    this.pods.delete(containerId);
    this.pending.delete(containerId);
  }

  private changed(watchId: number): void {
    const containerId = this.byWatch.get(watchId);
    if (!containerId || this.stopped) return;
    this.pending.add(containerId);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // one refresh per pod for the messages that arrived together (a new interface comes
    // with its addresses and routes)
    setImmediate(() => {
      this.flushScheduled = false;
      const ids = [...this.pending];
      this.pending.clear();
      for (const id of ids) this.refresh(id);
    });
  }

  private refresh(containerId: string): void {
    if (this.stopped) return;
    const { port, bpfRoot, log } = this.opts;
    try {
      const outcome = port.refreshPod(bpfRoot, containerId);
      if (outcome.status === "skipped") {
        this.counts.skipped++;
        log.debug("pod not followed", { containerId, reason: outcome.reason });
        return;
      }
      this.counts.applied++;
      if (outcome.added + outcome.removed > 0) {
        this.counts.changed++;
        log.info("pod's entries follow its interfaces", {
          containerId,
          added: outcome.added,
          removed: outcome.removed,
        });
      }
    } catch (err) {
      this.counts.failed++;
      log.warn("following the pod's interfaces failed; its entries are unchanged", {
        containerId,
        error: (err as Error).message,
      });
    }
  }
}
