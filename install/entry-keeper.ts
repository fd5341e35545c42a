// Keeps waggle's entry in the primary CNI config: a DirWatcher over the config directory
// whose pass is ensureEntry(), with the outcome logged once per change of state and
// reflected in the metrics and in readiness.

import type { Logger } from "../base/log";
import { ChangedMeanwhileError, type EnsureResult, ensureEntry } from "./conf-dir";
import type { InstallMetrics } from "./metrics";
import { DirWatcher, type DirWatcherOptions, type ReconcileOutcome } from "./watch";

export interface EntryKeeperOptions {
  netDir: string;
  entry: Record<string, unknown>;
  confName?: string;
  log: Logger;
  metrics: InstallMetrics;
  /** A file that is invalid and younger than this is taken as being written. */
  settleMs?: number;
  /** Repairs beyond `count` within `windowMs` are a fight (warn, back off). */
  flap: { count: number; windowMs: number };
  /** Called each time the entry comes into place (after not being in place). */
  onInPlace?: () => void;
  /** Overrides for the watcher's timings (tests). */
  timing?: Pick<DirWatcherOptions, "debounceMs" | "maxDelayMs" | "resyncMs" | "retryMs">;
}

/** Retry delay after the config changed under an edit. */
const CHANGED_MEANWHILE_RETRY_MS = 50;

export class EntryKeeper extends DirWatcher {
  private everInPlace = false;
  private lastStatus = "";
  /** The entry is in the file the runtime uses (as of the last pass). */
  inPlace = false;
  /** The file holding the entry (as of the last pass). */
  file?: string;
  repairs = 0;

  constructor(private readonly opts: EntryKeeperOptions) {
    super({
      subject: "CNI config entry",
      dirs: [opts.netDir],
      log: opts.log,
      flap: { ...opts.flap },
      onFlapping: (flapping) => opts.metrics.flapping.set(flapping ? 1 : 0),
      ...opts.timing,
    });
  }

  protected async reconcile(): Promise<ReconcileOutcome> {
    let result: EnsureResult;
    try {
      result = await ensureEntry(this.opts.netDir, this.opts.entry, {
        confName: this.opts.confName,
        settleMs: this.opts.settleMs ?? 1000,
      });
    } catch (err) {
      if (err instanceof ChangedMeanwhileError) {
        this.opts.log.debug("config changed during the edit; looking again", { file: err.file });
        return { repaired: false, retryInMs: CHANGED_MEANWHILE_RETRY_MS };
      }
      throw err;
    }
    const { metrics } = this.opts;
    let repaired = false;
    switch (result.status) {
      case "in-place":
        this.setInPlace(result.file);
        break;
      case "written":
        repaired = this.everInPlace;
        this.setInPlace(result.file);
        if (repaired) {
          this.repairs++;
          metrics.noteRepair(Date.now());
        }
        this.opts.log.info(repaired ? "entry put back" : "entry written", {
          file: result.file,
          was: result.was,
          repairs: this.repairs,
        });
        break;
      case "no-config":
        this.setOut(undefined);
        this.logOnce(`no-config:${result.invalid.join(",")}`, "info", "waiting for a CNI config", {
          dir: this.opts.netDir,
          confName: this.opts.confName ?? "auto",
          invalidFiles: result.invalid,
        });
        break;
      case "unsettled":
        this.setOut(undefined);
        this.opts.log.debug("a config file is being written; looking again", result);
        return { repaired: false, retryInMs: result.retryInMs };
      case "failed":
        this.setOut(undefined);
        this.logOnce(
          `failed:${result.file}:${result.reason}`,
          "error",
          "cannot chain waggle",
          result,
        );
        break;
    }
    if (result.status !== "no-config" && result.status !== "failed") this.lastStatus = "";
    return { repaired };
  }

  private setInPlace(file: string): void {
    const arrived = !this.inPlace;
    this.everInPlace = true;
    this.inPlace = true;
    if (arrived) this.opts.onInPlace?.();
    this.file = file;
    this.opts.metrics.entryInPlace.set(1);
    this.opts.metrics.setConfigFile(file);
  }

  private setOut(file: string | undefined): void {
    this.inPlace = false;
    this.file = file;
    this.opts.metrics.entryInPlace.set(0);
    this.opts.metrics.setConfigFile(file);
  }

  private logOnce(key: string, level: "info" | "error", message: string, meta: object): void {
    if (this.lastStatus === key) return;
    this.lastStatus = key;
    this.opts.log.log(level, message, meta);
  }
}
