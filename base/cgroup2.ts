// Where the cgroup v2 (unified) hierarchy is mounted on this host.
//
// waggle attaches its socket programs to pod cgroups, which only exist in the unified
// hierarchy. Hosts differ: a unified host mounts it at /sys/fs/cgroup, a hybrid host (v1
// controllers plus v2) typically at /sys/fs/cgroup/unified, and containers may show it
// elsewhere. So the mount point is always read from mountinfo, never assumed.

import { readFileSync } from "node:fs";

/** Thrown when no cgroup2 filesystem is mounted: waggle cannot attach to pods at all. */
export class CgroupV2NotMountedError extends Error {
  readonly code = "ECGROUP2";
  constructor(readonly mountinfoPath: string) {
    super(
      `cgroup v2 is not mounted: waggle needs the unified hierarchy (no cgroup2 entry in ${mountinfoPath}); ` +
        "boot with systemd.unified_cgroup_hierarchy=1, or mount it: mount -t cgroup2 none /sys/fs/cgroup/unified",
    );
    this.name = "CgroupV2NotMountedError";
  }
}

/** One cgroup2 line of mountinfo: where it is mounted and which subtree it shows. */
export interface Cgroup2Mount {
  /** The mount point, unescaped (mountinfo writes space, tab, newline and backslash as \ooo). */
  mountPoint: string;
  /** The cgroup path the mount shows ("/" for the whole hierarchy). */
  root: string;
}

/** Undoes mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
export function unescapeMountinfoField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(Number.parseInt(octal, 8)),
  );
}

/**
 * Every cgroup2 mount in a mountinfo text (proc(5): "id parent major:minor root mountpoint
 * options [optional fields...] - fstype source superoptions"), in file order.
 */
export function parseCgroup2Mounts(mountinfo: string): Cgroup2Mount[] {
  const mounts: Cgroup2Mount[] = [];
  for (const line of mountinfo.split("\n")) {
    const fields = line.trim().split(" ");
    const separator = fields.indexOf("-");
    // At least six fields precede the separator; the filesystem type follows it.
    if (separator < 6 || fields[separator + 1] !== "cgroup2") continue;
    mounts.push({
      root: unescapeMountinfoField(fields[3]),
      mountPoint: unescapeMountinfoField(fields[4]),
    });
  }
  return mounts;
}

/**
 * The mount point of the cgroup2 hierarchy, e.g. /sys/fs/cgroup (unified host) or
 * /sys/fs/cgroup/unified (hybrid host). When several cgroup2 mounts exist, the first one that
 * shows the whole hierarchy (root "/") wins, else the first one.
 * @throws CgroupV2NotMountedError when there is none; the read error when mountinfo is unreadable.
 */
export function cgroup2Root(mountinfoPath = "/proc/self/mountinfo"): string {
  const mounts = parseCgroup2Mounts(readFileSync(mountinfoPath, "utf8"));
  const mount = mounts.find((m) => m.root === "/") ?? mounts[0];
  if (!mount) throw new CgroupV2NotMountedError(mountinfoPath);
  return mount.mountPoint;
}
