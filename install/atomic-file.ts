// Replacing a file so that no reader (a runtime loading a CNI config, an exec of the plugin
// binary) ever sees it partly written: write a temporary file in the same directory, give it
// its final mode and owner, fsync, rename over the target, fsync the directory.

import { constants, promises as fs } from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomHex } from "../base/unique-name";

export interface AtomicWriteOptions {
  /** Permission bits of the new file (not subject to the umask). */
  mode: number;
  /** Owner of the new file; unchanged (the writer's) when absent. */
  uid?: number;
  gid?: number;
  /**
   * Runs just before the rename; throwing aborts the write and removes the temporary file
   * (used to give up when the target changed since it was read).
   */
  beforeRename?: () => Promise<void>;
}

/**
 * The temporary name for `target`: hidden, and ending in a suffix no CNI runtime loads
 * (Go's filepath.Ext of it is ".waggle-tmp-..." , never .conf/.conflist/.json).
 */
export function temporaryNameFor(target: string): string {
  const suffix = `${process.pid}-${randomHex(6)}`;
  return join(dirname(target), `.${basename(target)}.waggle-tmp-${suffix}`);
}

/** Writes `data` to `target` atomically. */
export async function writeFileAtomic(
  target: string,
  data: string | Buffer,
  options: AtomicWriteOptions,
): Promise<void> {
  await replaceAtomically(target, options, async (temp) => {
    const handle = await fs.open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      0o600,
    );
    try {
      await handle.writeFile(data);
      await finish(handle, options);
    } finally {
      await handle.close();
    }
  });
}

/** Copies `source` to `target` atomically. */
export async function copyFileAtomic(
  source: string,
  target: string,
  options: AtomicWriteOptions,
): Promise<void> {
  await replaceAtomically(target, options, async (temp) => {
    await fs.copyFile(source, temp, constants.COPYFILE_EXCL);
    const handle = await fs.open(temp, constants.O_RDWR);
    try {
      await finish(handle, options);
    } finally {
      await handle.close();
    }
  });
}

async function finish(handle: fs.FileHandle, options: AtomicWriteOptions): Promise<void> {
  if (options.uid !== undefined || options.gid !== undefined) {
    await handle.chown(options.uid ?? -1, options.gid ?? -1);
  }
  // After chown: chown clears set-id bits, and the mode must be exactly what was asked.
  await handle.chmod(options.mode);
  await handle.sync();
}

async function replaceAtomically(
  target: string,
  options: AtomicWriteOptions,
  fill: (temp: string) => Promise<void>,
): Promise<void> {
  const temp = temporaryNameFor(target);
  try {
    await fill(temp);
    await options.beforeRename?.();
    await fs.rename(temp, target);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw err;
  }
  await syncDirectory(dirname(target));
}

/** fsync of a directory, so a rename or unlink in it survives a crash. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes `path` if present and syncs its directory; true when something was removed. */
export async function removeFile(path: string): Promise<boolean> {
  try {
    await fs.unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  await syncDirectory(dirname(path));
  return true;
}
