// Installs the waggle binary into the host's CNI plugin directory. The runtime may exec it
// at any moment (a pod starting), so it is replaced atomically: a complete, fsynced, 0755
// temporary file renamed over the old one. An exec sees the old file or the new one, never
// a partial one, and never gets ETXTBSY (nothing ever writes to the file it executes).
// BinaryKeeper puts it back when something removes or replaces it.

import { createHash } from "node:crypto";
import { createReadStream, promises as fs } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../base/log";
import { PLUGIN_TYPE } from "../mesh/config";
import { copyFileAtomic } from "./atomic-file";
import { DirWatcher, type DirWatcherOptions, type ReconcileOutcome } from "./watch";

export const PLUGIN_BINARY_MODE = 0o755;

/** The installed binary's path: `<dir>/<plugin type>`, where runtimes look for it. */
export function pluginBinaryPath(binDir: string): string {
  return join(binDir, PLUGIN_TYPE);
}

/** The running executable when it is the waggle single-executable build, else undefined. */
export function runningWaggleBinary(): string | undefined {
  try {
    const sea = require("node:sea") as typeof import("node:sea");
    return sea.isSea() ? process.execPath : undefined;
  } catch {
    return undefined;
  }
}

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** True when `target` exists with the same bytes as `source` and the plugin's mode. */
async function sameBinary(source: string, target: string): Promise<boolean> {
  try {
    const [s, t] = await Promise.all([fs.stat(source), fs.stat(target)]);
    if (!t.isFile() || s.size !== t.size || (t.mode & 0o7777) !== PLUGIN_BINARY_MODE) return false;
    const [a, b] = await Promise.all([sha256(source), sha256(target)]);
    return a === b;
  } catch {
    return false;
  }
}

/**
 * Puts `source` at `<binDir>/waggle` (atomically, mode 0755, owned by root when run as
 * root). "unchanged" when the same bytes are already there: no rename, no churn.
 */
export async function installBinary(
  source: string,
  binDir: string,
): Promise<"installed" | "unchanged"> {
  const sourceStat = await fs.stat(source).catch((err: Error) => {
    throw new Error(`cannot read the waggle binary ${source}: ${err.message}`);
  });
  if (!sourceStat.isFile()) throw new Error(`the waggle binary ${source} is not a regular file`);
  const dirStat = await fs.stat(binDir).catch((err: Error) => {
    throw new Error(
      `CNI bin dir ${binDir} is not usable: ${err.message} (is the host directory mounted?)`,
    );
  });
  if (!dirStat.isDirectory()) throw new Error(`CNI bin dir ${binDir} is not a directory`);
  const target = pluginBinaryPath(binDir);
  if (await sameBinary(source, target)) return "unchanged";
  await copyFileAtomic(source, target, { mode: PLUGIN_BINARY_MODE });
  return "installed";
}

export interface BinaryKeeperOptions {
  source: string;
  binDir: string;
  log: Logger;
  timing?: Pick<DirWatcherOptions, "debounceMs" | "resyncMs" | "retryMs">;
}

/**
 * Keeps the binary installed: puts it back when something deletes or replaces it (another
 * installer, a node cleanup). A file it installed itself (same inode, mode) is not re-read.
 */
export class BinaryKeeper extends DirWatcher {
  private installedIno?: number;

  constructor(private readonly opts: BinaryKeeperOptions) {
    super({
      subject: "plugin binary",
      dirs: [opts.binDir],
      log: opts.log,
      flap: { count: 5, windowMs: 60_000 },
      ...opts.timing,
    });
  }

  /** Installs now (errors are the caller's); start() then keeps it installed. */
  async install(): Promise<"installed" | "unchanged"> {
    const result = await installBinary(this.opts.source, this.opts.binDir);
    this.installedIno = (await fs.stat(pluginBinaryPath(this.opts.binDir))).ino;
    return result;
  }

  protected async reconcile(): Promise<ReconcileOutcome> {
    const target = pluginBinaryPath(this.opts.binDir);
    const current = await fs.stat(target).catch(() => undefined);
    const mode = current ? current.mode & 0o7777 : undefined;
    if (current?.ino === this.installedIno && mode === PLUGIN_BINARY_MODE)
      return { repaired: false };
    if ((await this.install()) === "unchanged") return { repaired: false };
    this.opts.log.info("binary put back", { path: target });
    return { repaired: true };
  }
}
