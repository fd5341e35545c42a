// What /proc says about processes: which netns and cgroup each is in, and who descends
// from whom. Used by teardown (kill whatever still holds a netns) and by the leak checks.

import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";

/** Every pid currently in /proc. */
export function listPids(): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

/** The inode of a network namespace file (/run/netns/X or /proc/<pid>/ns/net). */
export function netnsInode(path: string): number {
  return statSync(path).ino;
}

/** The netns inode of a process, or undefined when it exited or is not readable. */
export function netnsInodeOfPid(pid: number): number | undefined {
  try {
    const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/net`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The cgroup v2 path of a process ("/waggle-test/x" from the "0::" line), or undefined. */
export function cgroupOfPid(pid: number): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("0::"));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

/** The parent pid of a process, or undefined when it exited. */
export function parentOfPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may contain spaces: fields follow the last ")".
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** The command line of a process, space separated, or "" when it exited. */
export function commandOfPid(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/** All processes descending from `ancestor` (children, grandchildren...), not itself. */
export function descendantsOf(ancestor: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of listPids()) {
    const parent = parentOfPid(pid);
    if (parent === undefined) continue;
    const list = children.get(parent) ?? [];
    list.push(pid);
    children.set(parent, list);
  }
  const found: number[] = [];
  const queue = [...(children.get(ancestor) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** Processes (other than this one) whose network namespace has the given inode. */
export function pidsInNetns(inode: number): number[] {
  return listPids().filter((pid) => pid !== process.pid && netnsInodeOfPid(pid) === inode);
}

/** True while the process exists (and is not a zombie we could reap). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
