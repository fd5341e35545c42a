// mkdir -p done one level at a time, with an explicit mode whatever the umask.
// Node's recursive mkdir never returns for a path where mkdir fails with ENOENT although the
// parent exists (under /proc, or in sysfs at /sys/fs/bpf when no bpffs is mounted there): it
// retries the same level forever. Every directory waggle creates goes through here.
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Creates `dir` and its missing parents, each with `mode` (chmod after mkdir, so the umask
 * cannot widen or narrow it). Directories that already exist are left as they are. Throws
 * the first mkdir error (ENOENT, EACCES, EROFS, ENOSPC...) naming the directory.
 */
export function makeDirectories(dir: string, mode = 0o755): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d) && d !== dirname(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      mkdirSync(d, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw e;
    }
    chmodSync(d, mode);
  }
}
