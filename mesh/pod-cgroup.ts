// Where a pod's cgroup is in the cgroup2 hierarchy: from the runtime's `cgroupPath`
// capability (a cgroupfs path or a systemd slice name), else found by the pod UID.
import { readdirSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";

/** The pod cgroup could not be determined; the message says what was tried. */
export class PodCgroupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PodCgroupError";
  }
}

export interface PodCgroupRequest {
  /** runtimeConfig.cgroupPath, when the runtime passed it. */
  cgroupPath?: string;
  /** K8S_POD_UID from CNI_ARGS. */
  podUid?: string;
  /** The cgroup2 mount point (cgroup2Root()). */
  cgroupRoot: string;
}

/**
 * The pod cgroup's directory under the cgroup2 mount. The runtime's cgroupPath wins: a path
 * (cgroupfs driver, "/kubepods/burstable/pod<uid>", or a systemd path with "/") is taken
 * relative to the mount; a bare slice name ("kubepods-burstable-pod<uid>.slice", optionally in
 * libcontainer's "slice:prefix:name" form) is expanded the way systemd nests slices. Without
 * it, the cgroup is looked up by K8S_POD_UID (findPodCgroupByUid).
 * @throws PodCgroupError when the directory does not exist or nothing matches.
 */
export function resolvePodCgroup(req: PodCgroupRequest): string {
  const root = resolve(req.cgroupRoot);
  if (req.cgroupPath) {
    const rel = cgroupPathToRelative(req.cgroupPath);
    const dir = resolve(root, `.${sep}${rel}`);
    if (dir !== root && !dir.startsWith(root + sep)) {
      throw new PodCgroupError(
        `cgroupPath ${JSON.stringify(req.cgroupPath)} leaves the cgroup2 mount ${root}`,
      );
    }
    if (!isDirectory(dir)) {
      throw new PodCgroupError(
        `the pod cgroup ${dir} (from runtimeConfig cgroupPath ${JSON.stringify(req.cgroupPath)}) does not exist under the cgroup2 mount`,
      );
    }
    return dir;
  }
  if (!req.podUid) {
    throw new PodCgroupError(
      "cannot find the pod cgroup: the runtime passed no cgroupPath (declare the cgroupPath capability) and CNI_ARGS has no K8S_POD_UID",
    );
  }
  const found = findPodCgroupByUid(root, req.podUid);
  if (!found) {
    throw new PodCgroupError(
      `no cgroup for pod UID ${req.podUid} under ${root} (looked for pod${req.podUid} and *-pod${systemdUid(req.podUid)}.slice)`,
    );
  }
  return found;
}

/** A cgroupPath as a path relative to the cgroup2 mount. */
export function cgroupPathToRelative(cgroupPath: string): string {
  if (cgroupPath.includes("/")) return cgroupPath.replace(/^\/+/, "");
  const slice = cgroupPath.split(":")[0];
  if (slice.endsWith(".slice")) return expandSlice(slice);
  return cgroupPath;
}

/**
 * systemd's nesting of a slice name: "a-b-c.slice" lives at "a.slice/a-b.slice/a-b-c.slice";
 * "-.slice" is the root. Dashes inside a name component are escaped by whoever made it
 * (kubelet writes a pod UID's dashes as underscores).
 * @throws PodCgroupError for a name systemd would reject (empty component, "/" in it).
 */
export function expandSlice(name: string): string {
  if (!name.endsWith(".slice") || name.includes("/")) {
    throw new PodCgroupError(`${JSON.stringify(name)} is not a systemd slice name`);
  }
  if (name === "-.slice") return "";
  const base = name.slice(0, -".slice".length);
  const parts = base.split("-");
  if (parts.some((p) => p === "")) {
    throw new PodCgroupError(
      `${JSON.stringify(name)} is not a valid systemd slice name (empty component)`,
    );
  }
  const levels: string[] = [];
  for (let i = 1; i <= parts.length; i++) levels.push(`${parts.slice(0, i).join("-")}.slice`);
  return levels.join("/");
}

const UID = /^[0-9a-fA-F][0-9a-fA-F-]*$/;
/** Another pod's cgroup (cgroupfs or systemd name): not searched further. */
const OTHER_POD = /^pod[0-9a-fA-F]|-pod[0-9a-fA-F_]+\.slice$/;
/** How deep under the mount a pod cgroup can be (kind nests kubelet.slice/.../pod). */
const MAX_DEPTH = 5;

/**
 * Finds the pod's cgroup by UID: a directory named "pod<uid>" (cgroupfs driver) or ending in
 * "-pod<uid with _ for ->.slice" (systemd driver). Searches breadth-first, at most MAX_DEPTH
 * levels: below the mount only into kubelet's trees (names containing "kubepods" or
 * "kubelet"), and never into other pods' cgroups, so the containers of a busy node are not
 * walked.
 */
export function findPodCgroupByUid(cgroupRoot: string, uid: string): string | undefined {
  if (!UID.test(uid)) return undefined;
  const cgroupfsName = `pod${uid}`;
  const systemdSuffix = `-pod${systemdUid(uid)}.slice`;
  let level = [resolve(cgroupRoot)];
  for (let depth = 1; depth <= MAX_DEPTH && level.length > 0; depth++) {
    const next: string[] = [];
    for (const dir of level) {
      for (const entry of subdirectories(dir)) {
        if (entry === cgroupfsName || entry.endsWith(systemdSuffix)) return join(dir, entry);
        if (depth === 1 ? /kubepods|kubelet/.test(entry) : !OTHER_POD.test(entry))
          next.push(join(dir, entry));
      }
    }
    level = next;
  }
  return undefined;
}

/** The path of a pod cgroup relative to the mount, for logs ("kubepods/burstable/pod..."). */
export function relativeCgroup(cgroupRoot: string, dir: string): string {
  return relative(resolve(cgroupRoot), dir);
}

function systemdUid(uid: string): string {
  return uid.replace(/-/g, "_");
}

function subdirectories(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
