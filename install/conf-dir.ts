// The CNI config directory as a runtime sees it, and waggle's entry in it: which file is the
// primary (the first valid one by name, as containerd/libcni pick it), putting the entry in
// place there, and taking it out of every file again. The text edits are conflist.ts's.

import { promises as fs, type Stats } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "./atomic-file";
import {
  type ConfigCheck,
  checkConfig,
  compareConfNames,
  confFormatOf,
  conflistNameFor,
  conflistToConf,
  confToConflist,
  type EntryState,
  entryState,
  withEntry,
  withoutEntry,
} from "./conflist";

/** A config file as read, with what libcni would make of it. */
export interface ConfCandidate {
  name: string;
  path: string;
  text: string;
  stat: Stats;
  check: ConfigCheck;
}

export interface DirSelection {
  /** The file a runtime uses, if any file is valid. */
  primary?: ConfCandidate;
  /** Files ahead of the primary (or all files, when there is none) that are not valid. */
  invalidAhead: ConfCandidate[];
}

/** Names of the files a runtime considers, in its order (libcni ConfFiles + sort.Strings). */
export async function listConfNames(dir: string): Promise<string[]> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return entries
    .filter((e) => !e.isDirectory() && confFormatOf(e.name) !== null)
    .map((e) => e.name)
    .sort(compareConfNames);
}

/** Reads one candidate; undefined when it vanished meanwhile. */
async function readCandidate(dir: string, name: string): Promise<ConfCandidate | undefined> {
  const path = join(dir, name);
  try {
    const stat = await fs.stat(path);
    const text = await fs.readFile(path, "utf8");
    let check = checkConfig(name, text);
    if (check.valid && check.loadsPluginDir) check = await withPluginDir(dir, check);
    return { name, path, text, stat, check };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "EISDIR") return undefined; // a symlink to a directory
    throw err;
  }
}

/**
 * libcni completes a list with the plugins in `<dir>/<network name>/*.conf`; a list is
 * invalid when one of them is, or when it ends up with no plugin at all.
 */
async function withPluginDir(
  dir: string,
  check: ConfigCheck & { valid: true },
): Promise<ConfigCheck> {
  const pluginDir = join(dir, check.networkName);
  let names: string[] = [];
  if (check.networkName !== "" && !check.networkName.includes("/")) {
    names = (await listConfNames(pluginDir)).filter((n) => n.endsWith(".conf"));
  }
  for (const name of names) {
    const plugin = checkConfig(name, await fs.readFile(join(pluginDir, name), "utf8"));
    if (!plugin.valid) return { valid: false, reason: `plugin file ${name}: ${plugin.reason}` };
  }
  if (check.inlinePlugins + names.length === 0)
    return { valid: false, reason: "no plugin configs found" };
  return { ...check, loadsPluginDir: names.length > 0 };
}

/** The primary config, the way a runtime picks it: the first valid file by name. */
export async function selectPrimary(dir: string): Promise<DirSelection> {
  const invalidAhead: ConfCandidate[] = [];
  for (const name of await listConfNames(dir)) {
    const candidate = await readCandidate(dir, name);
    if (!candidate) continue;
    if (candidate.check.valid) return { primary: candidate, invalidAhead };
    invalidAhead.push(candidate);
  }
  return { invalidAhead };
}

export type EnsureResult =
  /** The entry was already in place: nothing written. */
  | { status: "in-place"; file: string }
  /** The entry was put in place; `was` says what the file held before. */
  | { status: "written"; file: string; was: EntryState | "single-plugin file" }
  /** No valid config exists yet: wait for one. */
  | { status: "no-config"; invalid: string[] }
  /** A file that may be the primary is being written (not valid and recently modified). */
  | { status: "unsettled"; file: string; retryInMs: number }
  /** The primary can't take the entry; waiting for it to change is all that helps. */
  | { status: "failed"; file: string; reason: string };

export interface EnsureOptions {
  /** Use this file instead of picking the primary (a `.conf` name also finds its conversion). */
  confName?: string;
  /** A file that is not valid and was modified less than this long ago is being written. */
  settleMs: number;
  /** Current time (ms since epoch); tests pin it. */
  now?: number;
}

/** Puts `entry` in place in the primary config (see EnsureResult for the outcomes). */
export async function ensureEntry(
  dir: string,
  entry: Record<string, unknown>,
  options: EnsureOptions,
): Promise<EnsureResult> {
  const now = options.now ?? Date.now();
  let target: ConfCandidate | undefined;
  let invalid: ConfCandidate[];
  if (options.confName) {
    const named = await readNamed(dir, options.confName);
    target = named?.check.valid ? named : undefined;
    invalid = named && !named.check.valid ? [named] : [];
  } else {
    const selection = await selectPrimary(dir);
    target = selection.primary;
    invalid = selection.invalidAhead;
  }
  // A truncated or half-rewritten file is invalid for a moment: never act before it settles,
  // or the entry would go into a file the runtime is about to stop using.
  for (const candidate of invalid) {
    const age = now - candidate.stat.mtimeMs;
    if (age < options.settleMs) {
      return {
        status: "unsettled",
        file: candidate.name,
        // mtime may run slightly ahead of Date.now() (a coarser kernel clock)
        retryInMs: Math.min(options.settleMs, Math.max(1, Math.ceil(options.settleMs - age))),
      };
    }
  }
  if (!target) return { status: "no-config", invalid: invalid.map((c) => c.name) };
  if (!target.check.valid) throw new Error("unreachable: target is valid");

  if (target.check.format === "conf") return convert(dir, target, entry);
  if (target.check.loadsPluginDir) {
    return {
      status: "failed",
      file: target.name,
      reason: `plugins from ${join(dir, target.check.networkName)}/ run after the list's own: waggle can't be last`,
    };
  }
  const was = entryState(target.text, entry);
  if (was === "current") return { status: "in-place", file: target.name };
  await writeLike(target, withEntry(target.text, entry));
  return { status: "written", file: target.name, was };
}

/** The named file, or (for a `.conf`/`.json` name) the list waggle converted it into. */
async function readNamed(dir: string, name: string): Promise<ConfCandidate | undefined> {
  const file = await readCandidate(dir, name);
  if (file || confFormatOf(name) !== "conf") return file;
  const converted = await readCandidate(dir, conflistNameFor(name));
  return converted && conflistToConf(converted.text)?.fileName === name ? converted : undefined;
}

/** A `.conf`/`.json` primary becomes a `.conflist` (with the entry); the original goes away. */
async function convert(
  dir: string,
  conf: ConfCandidate,
  entry: Record<string, unknown>,
): Promise<EnsureResult> {
  const list = confToConflist({ fileName: conf.name, text: conf.text }, entry);
  const listPath = join(dir, list.fileName);
  const existing = await readCandidate(dir, list.fileName);
  if (existing && conflistToConf(existing.text)?.fileName !== conf.name) {
    return {
      status: "failed",
      file: conf.name,
      reason: `converting it to a list would overwrite ${list.fileName}, which waggle did not write`,
    };
  }
  await writeFileAtomic(listPath, list.text, {
    mode: conf.stat.mode & 0o7777,
    uid: conf.stat.uid,
    gid: conf.stat.gid,
  });
  // The original sorts before its list: it must go, or the runtime keeps using it.
  await removeIfUnchanged(conf);
  return { status: "written", file: list.fileName, was: "single-plugin file" };
}

/** Writes `text` over a candidate, keeping its mode and owner; gives up if it changed. */
async function writeLike(candidate: ConfCandidate, text: string): Promise<void> {
  await writeFileAtomic(candidate.path, text, {
    mode: candidate.stat.mode & 0o7777,
    uid: candidate.stat.uid,
    gid: candidate.stat.gid,
    beforeRename: () => assertUnchanged(candidate),
  });
}

/** Thrown when a file changed between reading and replacing it; retry soon. */
export class ChangedMeanwhileError extends Error {
  constructor(readonly file: string) {
    super(`${file} changed while waggle was editing it`);
    this.name = "ChangedMeanwhileError";
  }
}

async function assertUnchanged(candidate: ConfCandidate): Promise<void> {
  let now: Stats;
  try {
    now = await fs.stat(candidate.path);
  } catch {
    throw new ChangedMeanwhileError(candidate.name);
  }
  const before = candidate.stat;
  if (now.ino !== before.ino || now.size !== before.size || now.mtimeMs !== before.mtimeMs) {
    throw new ChangedMeanwhileError(candidate.name);
  }
}

async function removeIfUnchanged(candidate: ConfCandidate): Promise<void> {
  await assertUnchanged(candidate);
  await fs.unlink(candidate.path);
}

/** What removeEntries() did to one file. */
export interface RemovedFrom {
  file: string;
  /** "entry removed", or the name of the single-plugin file put back. */
  action: "entry removed" | "restored";
  restored?: string;
}

/**
 * Takes waggle out of every config file in `dir`: entries are cut out of lists (the rest of
 * each file byte for byte as it was), lists waggle converted go back to the original file.
 */
export async function removeEntries(dir: string): Promise<RemovedFrom[]> {
  const done: RemovedFrom[] = [];
  for (const name of await listConfNames(dir)) {
    const candidate = await readCandidate(dir, name);
    if (!candidate || confFormatOf(name) !== "conflist") continue;
    const original = conflistToConf(candidate.text);
    const keep = {
      mode: candidate.stat.mode & 0o7777,
      uid: candidate.stat.uid,
      gid: candidate.stat.gid,
    };
    if (original) {
      // Put the original back first: it sorts first, so the runtime switches to it at once.
      await writeFileAtomic(join(dir, original.fileName), original.text, keep);
      await removeIfUnchanged(candidate);
      done.push({ file: name, action: "restored", restored: original.fileName });
      continue;
    }
    let cleaned: string;
    try {
      cleaned = withoutEntry(candidate.text);
    } catch {
      continue; // not a list waggle could have edited
    }
    if (cleaned === candidate.text) continue;
    await writeLike(candidate, cleaned);
    done.push({ file: name, action: "entry removed" });
  }
  return done;
}

/** True when the file a runtime uses (or the named one) has waggle's current entry. */
export async function entryInPlace(
  dir: string,
  entry: Record<string, unknown>,
  confName?: string,
): Promise<boolean> {
  const target = confName ? await readNamed(dir, confName) : (await selectPrimary(dir)).primary;
  if (!target?.check.valid || target.check.format !== "conflist") return false;
  return entryState(target.text, entry) === "current";
}
