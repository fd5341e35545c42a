// What can be known and undone about waggle's pins with plain file calls, without the eBPF
// addon: whether a container has state, which containers do, whether the root is a bpffs, and
// a degraded teardown that unlinks a pod's link pins. Nothing here loads the addon, so DEL and
// GC keep working (and kubelet's retried DELs end) on a node where it cannot be extracted.
import { existsSync, statfsSync } from "node:fs";
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
 * Throws a DatapathError "BPFFS" unless `root` is (or would be created) on a bpffs. Checked
 * before anything is created under it: elsewhere pins cannot exist, and mkdir in sysfs or
 * procfs fails in ways that once made the plugin loop.
 */
export function requireBpffs(root: string): void {
  if (onBpffs(root)) return;
  throw new DatapathError(
    "BPFFS",
    `${root} is not on a bpffs: mount one (mount -t bpf bpf /sys/fs/bpf) or set bpf_root to a directory on one`,
  );
}

/** True when the container has any pinned state (a record, links, or a half-done ADD's leftovers). */
export function hasPodState(root: string, containerId: string): boolean {
  return existsSync(paths.pod(root, containerId));
}

/** Container ids with state under root (records or leftover directories), for GC and CHECK. */
export function attachedContainerIds(root: string): string[] {
  return listDir(paths.pods(root)).map(containerIdOfDir);
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
