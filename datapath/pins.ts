// What can be known and undone about waggle's pins with plain file calls, without the eBPF
// addon: whether the root can be trusted (a bpffs, owned by us, writable by nobody else),
// whether a container has state, which containers do, leftovers of killed loads, and a
// degraded teardown that unlinks a pod's link pins. Nothing here loads the addon, so DEL and
// GC keep working (and kubelet's retried DELs end) on a node where it cannot be extracted.
import { existsSync, lstatSync, statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { DatapathError } from "./errors";
import { containerIdOfDir, paths } from "./programs";
import { listDir, removeTree } from "./shared-fs";

export { DatapathError } from "./errors";

/** Filesystem magic of bpffs (statfs f_type). */
export const BPF_FS_MAGIC = 0xcafe4a11;

/** True when `path` (or, when it does not exist yet, its nearest existing ancestor) is on a bpffs. */
export function onBpffs(path: string): boolean {
  for (let p = path; ; p = dirname(p)) {
    try {
      return statfsSync(p).type === BPF_FS_MAGIC;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT" || p === "/") return false;
    }
  }
}

/**
 * Throws a DatapathError unless `root` can hold waggle's pins and be trusted: on a bpffs
 * ("BPFFS"; checked before anything is created under it: elsewhere pins cannot exist, and
 * mkdir in sysfs or procfs fails in ways that once made the plugin loop), and the root and
 * waggle's directories in it, where they exist, directories owned by this process's user
 * and writable by no one else ("UNTRUSTED_ROOT"). bpffs is often mounted 1777: a user who
 * made waggle's root first could swap its directories for empty ones, and DEL and GC would
 * then succeed while a pod's programs stay attached, invisible.
 */
export function requireBpffs(root: string): void {
  if (!onBpffs(root)) {
    throw new DatapathError(
      "BPFFS",
      `${root} is not on a bpffs: mount one (mount -t bpf bpf /sys/fs/bpf) or set bpf_root to a directory on one`,
    );
  }
  const uid = process.geteuid?.() ?? 0; // a system call: once, not per directory
  for (const dir of [
    root,
    paths.datapath(root),
    paths.maps(root),
    paths.progs(root),
    paths.pods(root),
  ]) {
    const problem = untrustedDirectory(dir, uid);
    if (problem) {
      throw new DatapathError(
        "UNTRUSTED_ROOT",
        `${dir} ${problem}: waggle will not use a bpf root another user could have made or changed; remove it (rm -r ${root}) or choose another bpf_root`,
      );
    }
  }
}

/** Why `dir` cannot be trusted by user `uid`, or null (also when it does not exist yet). */
function untrustedDirectory(dir: string, uid: number): string | null {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch {
    return null;
  }
  if (!st.isDirectory()) return "is not a directory";
  if (st.uid !== uid) return `is owned by uid ${st.uid}, not ${uid}`;
  if (st.mode & 0o022)
    return `is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})`;
  return null;
}

/** True when the container has any pinned state (a record, links, or a half-done ADD's leftovers). */
export function hasPodState(root: string, containerId: string): boolean {
  requireBpffsIfPresent(root);
  return existsSync(paths.pod(root, containerId));
}

/** Container ids with state under root (records or leftover directories), for GC and CHECK. */
export function attachedContainerIds(root: string): string[] {
  requireBpffsIfPresent(root);
  return listDir(paths.pods(root)).map(containerIdOfDir);
}

/**
 * requireBpffs where there is something to read: a root that does not exist holds no state
 * (DEL on a node where waggle never ran, or after uninstall, must succeed).
 */
function requireBpffsIfPresent(root: string): void {
  if (existsSync(root)) requireBpffs(root);
}

/** How old a staging directory must be before it is taken for a killed load's leftover. */
export const STALE_STAGING_MS = 2 * 60 * 1000;

/**
 * Directories a killed first load or upgrade left behind (<root>/staging-*,
 * <root>/datapath/progs-new-* and progs-old-*): each holds pinned programs and maps, kernel
 * memory that nothing else frees. Those older than `olderThanMs` (a load takes well under a
 * second) are leftovers.
 */
export function leftoverStaging(
  root: string,
  olderThanMs = STALE_STAGING_MS,
  now = Date.now(),
): string[] {
  const candidates = [
    ...listDir(root)
      .filter((n) => n.startsWith("staging-"))
      .map((n) => join(root, n)),
    ...listDir(paths.datapath(root))
      .filter((n) => n.startsWith("progs-new-") || n.startsWith("progs-old-"))
      .map((n) => join(paths.datapath(root), n)),
  ];
  return candidates.filter((dir) => {
    try {
      return now - lstatSync(dir).mtimeMs >= olderThanMs;
    } catch {
      return false;
    }
  });
}

/** Removes leftoverStaging(root, olderThanMs); returns what it removed. Never throws. */
export function sweepStaging(root: string, olderThanMs = STALE_STAGING_MS): string[] {
  const removed: string[] = [];
  for (const dir of leftoverStaging(root, olderThanMs)) {
    try {
      removeTree(dir);
      removed.push(dir);
    } catch {
      // gone meanwhile, or in use: the next sweep tries again
    }
  }
  return removed;
}

/**
 * Degraded teardown, for when the addon cannot be used: unlinks every link pin of the pod
 * (the kernel detaches a bpf_link when its last reference goes), so the pod runs none of
 * waggle's programs. The record stays: its map entries can only be removed through the addon,
 * by a later DEL or GC, which find the pod by it. Returns the links unlinked; throws a
 * DatapathError naming the pins it could not remove.
 */
export function unlinkPodLinks(root: string, containerId: string): string[] {
  const dir = paths.pod(root, containerId);
  const unlinked: string[] = [];
  const problems: string[] = [];
  for (const name of listDir(dir)) {
    if (name === "record") continue;
    try {
      removeTree(join(dir, name));
      unlinked.push(name);
    } catch (e) {
      problems.push(`${name}: ${(e as Error).message}`);
    }
  }
  if (problems.length > 0) {
    throw new DatapathError("ATTACH", `unlinking the pod's pins left: ${problems.join("; ")}`);
  }
  return unlinked;
}
