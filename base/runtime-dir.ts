// Extraction of files the kernel's loader must map from disk (the ebpf-napi addon and the shared
// libraries beside it) into a content-addressed runtime directory.
//
// Rules:
// - never /tmp: candidates are $WAGGLE_RUNTIME_DIR, /var/lib/waggle/runtime, then a directory
//   beside the binary; a candidate that cannot be written, is mounted noexec, or is owned by
//   someone else is skipped;
// - the directory is named after the content id of the files, so two versions never mix;
// - concurrent first runs are safe: each file is written to a unique temporary name in the same
//   directory, fsynced and renamed into place; a completion marker is written the same way, last.
//   Readers use the directory only once the marker exists, so no partial file is ever used.
import {
  accessSync,
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { randomHex } from "./unique-name";

/** A file to place in the runtime directory. */
export interface RuntimeFile {
  name: string;
  /** The bytes; only read when the file has to be written. */
  bytes(): Uint8Array;
}

export interface RuntimeDirOptions {
  /** Content id of `files` (hex); the directory's name. */
  id: string;
  files: RuntimeFile[];
  /** Base directories to try, in order. */
  candidates: string[];
  /** Name of the file that must be mappable executable (the addon). */
  executable: string;
}

export interface RuntimeDir {
  dir: string;
  /** True when this call wrote the files (a first run), false when it found them in place. */
  extracted: boolean;
}

/** Name of the marker written last; its presence means every file is complete. */
export const completeMarker = "COMPLETE";

/** The base directories to try, in order: $WAGGLE_RUNTIME_DIR, /var/lib, beside the binary. */
export function runtimeDirCandidates(env: NodeJS.ProcessEnv, execPath: string): string[] {
  const candidates: string[] = [];
  if (env.WAGGLE_RUNTIME_DIR) candidates.push(env.WAGGLE_RUNTIME_DIR);
  candidates.push("/var/lib/waggle/runtime", join(dirname(execPath), ".waggle-runtime"));
  return candidates;
}

/** Finds or creates the runtime directory in the first usable candidate. */
export function ensureRuntimeDir(opts: RuntimeDirOptions): RuntimeDir {
  if (!/^[0-9a-f]{8,}$/.test(opts.id))
    throw new Error(`invalid runtime id ${JSON.stringify(opts.id)}`);
  if (!opts.files.some((f) => f.name === opts.executable)) {
    throw new Error(`runtime files do not include ${opts.executable}`);
  }
  const rejected: string[] = [];
  for (const base of opts.candidates) {
    try {
      return useCandidate(join(base, opts.id), opts);
    } catch (err) {
      rejected.push(`${base}: ${(err as Error).message}`);
    }
  }
  throw new Error(`no usable runtime directory for the eBPF addon (${rejected.join("; ")})`);
}

function useCandidate(dir: string, opts: RuntimeDirOptions): RuntimeDir {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  checkOwnedDirectory(dir);
  if (isComplete(dir, opts.files)) {
    checkExecutable(join(dir, opts.executable));
    return { dir, extracted: false };
  }
  const executable = join(dir, opts.executable);
  // A noexec mount is found before writing anything when an earlier run left the file, else
  // after writing just that file.
  if (exists(executable) && (statSync(executable).mode & 0o111) !== 0) checkExecutable(executable);
  const ordered = [...opts.files].sort(
    (a, b) => Number(b.name === opts.executable) - Number(a.name === opts.executable),
  );
  for (const [i, file] of ordered.entries()) {
    writeAtomically(dir, file.name, file.bytes(), 0o755);
    if (i === 0) checkExecutable(executable);
  }
  syncDirectory(dir);
  const marker = JSON.stringify({ id: opts.id, files: opts.files.map((f) => f.name) });
  writeAtomically(dir, completeMarker, Buffer.from(`${marker}\n`), 0o644);
  syncDirectory(dir);
  return { dir, extracted: true };
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Complete when the marker exists and every file is still there (someone may have pruned it). */
function isComplete(dir: string, files: RuntimeFile[]): boolean {
  return exists(join(dir, completeMarker)) && files.every((f) => exists(join(dir, f.name)));
}

/**
 * The directory must be a real directory owned by us and writable by nobody else: the files in it
 * are loaded into a root process.
 */
function checkOwnedDirectory(dir: string): void {
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  const euid = process.geteuid?.() ?? st.uid;
  if (st.uid !== euid) throw new Error(`${dir} is owned by uid ${st.uid}, not ${euid}`);
  if ((st.mode & 0o022) !== 0) {
    throw new Error(
      `${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)})`,
    );
  }
}

/**
 * access(X_OK) on a file with execute bits fails with EACCES only on a noexec mount, where the
 * loader could not map it either.
 */
function checkExecutable(path: string): void {
  if ((statSync(path).mode & 0o111) === 0) throw new Error(`${path} lost its execute bits`);
  try {
    accessSync(path, constants.X_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EACCES") throw new Error(`${dirname(path)} is on a noexec mount`);
    throw err;
  }
}

/** Writes `name` in `dir` under a unique temporary name, fsyncs it and renames it into place. */
function writeAtomically(dir: string, name: string, bytes: Uint8Array, mode: number): void {
  const tmp = join(dir, `.${name}.${process.pid}.${randomHex(6)}.tmp`);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    fchmodSync(fd, mode); // whatever the umask
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, join(dir, name));
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
}

/** Makes the renames durable. */
function syncDirectory(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
