// Keeps something in place that lives in watched directories: runs a reconcile pass when
// they change (inotify through fs.watch, debounced: a burst of writes is one pass), when a
// pass asks to look again later (a file still being written), and on a slow timer in case
// an event was lost. Never polls in a loop, never runs two passes at once, and backs off
// with a warning when something keeps undoing what the passes put back.

import { type FSWatcher, promises as fs, watch } from "node:fs";
import type { Logger } from "../base/log";

export interface ReconcileOutcome {
  /** This pass had to put something back that had been in place (a repair). */
  repaired: boolean;
  /** Look again after this long even without an event. */
  retryInMs?: number;
}

export interface DirWatcherOptions {
  /** What the watcher keeps in place (for logs): "CNI config entry", "kubeconfig". */
  subject: string;
  dirs: string[];
  log: Logger;
  /** Quiet time after the last event before a pass. */
  debounceMs?: number;
  /** Longest a stream of events can delay a pass. */
  maxDelayMs?: number;
  /** A pass at least this often, events or not. */
  resyncMs?: number;
  /** Retry delay after a failed pass or while a directory is missing. */
  retryMs?: number;
  /** More than `count` repairs within `windowMs` is a fight: warn and back off. */
  flap?: { count: number; windowMs: number; maxBackoffMs?: number };
  /** Called on every flap-state change. */
  onFlapping?: (flapping: boolean) => void;
  now?: () => number;
}

/** Longest wait between retries of a failing pass. */
const MAX_FAILURE_DELAY_MS = 30_000;

interface Watched {
  dir: string;
  ino?: number;
  watcher?: FSWatcher;
}

/** Subclasses say what a pass does (reconcile); this class decides when passes run. */
export abstract class DirWatcher {
  private readonly watchOpts: Required<Omit<DirWatcherOptions, "onFlapping" | "flap">> &
    Pick<DirWatcherOptions, "onFlapping"> & {
      flap: { count: number; windowMs: number; maxBackoffMs: number };
    };
  private readonly watched: Watched[];
  private timer?: NodeJS.Timeout;
  private timerDue = 0;
  private burstStart = 0;
  private resync?: NodeJS.Timeout;
  private running?: Promise<void>;
  private rerun = false;
  private stopped = true;
  private repairTimes: number[] = [];
  private backoffMs = 0;
  private lastRepair = 0;
  private warnedAt = Number.NEGATIVE_INFINITY;
  private flappingNow = false;
  private failureDelayMs = 0;
  private lastFailure?: string;
  /** Passes run so far (tests and metrics). */
  passes = 0;

  constructor(options: DirWatcherOptions) {
    this.watchOpts = {
      debounceMs: 100,
      maxDelayMs: 1000,
      resyncMs: 60_000,
      retryMs: 1000,
      now: Date.now,
      ...options,
      flap: { count: 5, windowMs: 60_000, maxBackoffMs: 30_000, ...options.flap },
    };
    this.watched = options.dirs.map((dir) => ({ dir }));
  }

  get flapping(): boolean {
    return this.flappingNow;
  }

  /** One pass: put things back where needed. Throwing means "retry later". */
  protected abstract reconcile(): Promise<ReconcileOutcome>;

  /** Starts watching and runs the first pass; resolves once that pass is done. */
  async start(): Promise<void> {
    this.stopped = false;
    this.resync = setInterval(() => this.kick(0), this.watchOpts.resyncMs);
    this.schedule(0);
    await this.settled();
  }

  /** Stops watching; resolves once a running pass has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resync);
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.watched) this.unwatch(w);
    await this.running;
  }

  /** Asks for a pass `delayMs` from now (debounced with events). */
  kick(delayMs = this.watchOpts.debounceMs): void {
    this.schedule(delayMs);
  }

  /** Resolves when no pass is running or due within the debounce time. */
  async settled(): Promise<void> {
    while (
      this.running ||
      (this.timer && this.timerDue - this.watchOpts.now() <= this.watchOpts.debounceMs)
    ) {
      await (this.running ??
        new Promise((r) => setTimeout(r, Math.max(1, this.timerDue - this.watchOpts.now()))));
    }
  }

  private onEvent(): void {
    const now = this.watchOpts.now();
    if (!this.timer) this.burstStart = now;
    // Trailing debounce, but a steady stream of events can't hold a pass off forever.
    const latest = this.burstStart + this.watchOpts.maxDelayMs;
    this.schedule(
      this.watchOpts.debounceMs,
      Math.min(now + this.watchOpts.debounceMs, latest),
      true,
    );
  }

  private schedule(delayMs: number, dueAt?: number, replace = false): void {
    if (this.stopped) return;
    const now = this.watchOpts.now();
    let due = dueAt ?? now + delayMs;
    // While backing off from a fight, no pass before the backoff has passed.
    if (this.backoffMs > 0) due = Math.max(due, this.lastRepair + this.backoffMs);
    if (this.timer) {
      if (!replace && this.timerDue <= due) return;
      clearTimeout(this.timer);
    }
    this.timerDue = due;
    this.timer = setTimeout(() => this.fire(), Math.max(0, due - now));
  }

  private fire(): void {
    this.timer = undefined;
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.rerun) {
        this.rerun = false;
        this.schedule(this.watchOpts.debounceMs);
      }
    });
  }

  private async pass(): Promise<void> {
    this.passes++;
    const missing = await this.watchDirs();
    let outcome: ReconcileOutcome;
    try {
      outcome = await this.reconcile();
    } catch (err) {
      // Retry with a growing delay; say so when the reason changes, not on every retry.
      const message = (err as Error).message;
      this.failureDelayMs = Math.min(
        MAX_FAILURE_DELAY_MS,
        this.failureDelayMs * 2 || this.watchOpts.retryMs,
      );
      if (message !== this.lastFailure) {
        this.lastFailure = message;
        this.watchOpts.log.warn(`${this.watchOpts.subject}: pass failed, retrying`, {
          error: message,
          retryInMs: this.failureDelayMs,
        });
      }
      this.schedule(this.failureDelayMs);
      return;
    }
    if (this.lastFailure !== undefined) {
      this.watchOpts.log.info(`${this.watchOpts.subject}: pass succeeded again`);
      this.lastFailure = undefined;
    }
    this.failureDelayMs = 0;
    if (outcome.repaired) this.noteRepair();
    else this.calmDown();
    if (outcome.retryInMs !== undefined) this.schedule(outcome.retryInMs);
    if (missing) this.schedule(this.watchOpts.retryMs);
  }

  private noteRepair(): void {
    const now = this.watchOpts.now();
    const { count, windowMs, maxBackoffMs } = this.watchOpts.flap;
    this.lastRepair = now;
    this.repairTimes = this.repairTimes.filter((t) => now - t < windowMs);
    this.repairTimes.push(now);
    const flapping = this.repairTimes.length > count;
    if (flapping) {
      this.backoffMs = Math.min(maxBackoffMs, this.backoffMs > 0 ? this.backoffMs * 2 : 1000);
      if (now - this.warnedAt >= windowMs) {
        this.warnedAt = now;
        this.watchOpts.log.warn(
          `${this.watchOpts.subject} keeps being undone: put back ${this.repairTimes.length} times in ` +
            `${Math.round(windowMs / 1000)} s; something else rewrites it. Backing off.`,
          { repairs: this.repairTimes.length, windowMs, backoffMs: this.backoffMs },
        );
      }
    } else {
      this.backoffMs = 0;
    }
    if (flapping !== this.flappingNow) {
      this.flappingNow = flapping;
      this.watchOpts.onFlapping?.(flapping);
    }
  }

  /** A whole window without a repair ends a fight. */
  private calmDown(): void {
    if (!this.flappingNow || this.watchOpts.now() - this.lastRepair < this.watchOpts.flap.windowMs)
      return;
    this.backoffMs = 0;
    this.repairTimes = [];
    this.flappingNow = false;
    this.watchOpts.onFlapping?.(false);
  }

  /** (Re)creates a watcher for every directory; true when one is missing. */
  private async watchDirs(): Promise<boolean> {
    let missing = false;
    for (const w of this.watched) {
      let ino: number | undefined;
      try {
        ino = (await fs.stat(w.dir)).ino;
      } catch {
        missing = true;
      }
      if (w.watcher && w.ino === ino) continue;
      this.unwatch(w);
      if (ino === undefined || this.stopped) continue;
      try {
        const watcher = watch(w.dir, { persistent: true }, () => this.onEvent());
        watcher.on("error", (err) => {
          this.watchOpts.log.warn(`${this.watchOpts.subject}: watching ${w.dir} failed`, {
            error: err.message,
          });
          this.unwatch(w);
          this.schedule(this.watchOpts.retryMs);
        });
        w.watcher = watcher;
        w.ino = ino;
      } catch (err) {
        this.watchOpts.log.warn(`${this.watchOpts.subject}: cannot watch ${w.dir}`, {
          error: (err as Error).message,
        });
        missing = true;
      }
    }
    return missing;
  }

  private unwatch(w: Watched): void {
    w.watcher?.close();
    w.watcher = undefined;
    w.ino = undefined;
  }
}
