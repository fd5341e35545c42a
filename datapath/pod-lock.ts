// One writer at a time per pod: attachPod, detachPod (CNI plugin processes) and refreshPod
// (the installer following the pod's interfaces) each hold an exclusive flock on the pod's
// bpffs directory while they change its map entries and record, so a refresh can never write
// an entry that a concurrent DEL's record does not name. A holder that dies drops its lock.
// Re-entrant within a process (attachPod's rollback runs detachPod under its own lock).
import { lockPath } from "ebpf-napi";
import { paths } from "./programs";

/** Lock depth and release function by pod directory, for the locks this process holds. */
const held = new Map<string, number>();
const releases = new Map<string, () => void>();

/**
 * Locks the pod's directory; returns the unlock function, or null when the directory does
 * not exist (the pod is not, or no longer, attached).
 */
export function lockPod(root: string, containerId: string): (() => void) | null {
  const dir = paths.pod(root, containerId);
  const depth = held.get(dir) ?? 0;
  if (depth === 0) {
    let release: () => void;
    try {
      release = lockPath(dir);
    } catch (err) {
      if ((err as { code?: string }).code === "ENOENT") return null;
      throw err;
    }
    releases.set(dir, release);
  }
  held.set(dir, depth + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const left = (held.get(dir) ?? 1) - 1;
    if (left > 0) {
      held.set(dir, left);
      return;
    }
    held.delete(dir);
    releases.get(dir)?.();
    releases.delete(dir);
  };
}
