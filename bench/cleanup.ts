// Cleaning up after a bench worker that died without tearing down (a crash in native code,
// SIGKILL): everything the worker makes carries its run tag (test/support/names.ts), so the
// supervising process removes exactly that: the pods' and the node's cgroups (killing their
// processes), network namespaces (and any process still inside), bpffs pins, the bench's
// temporary directories. Rule floods and pod iptables rules live in those namespaces.

import { existsSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSync } from "../test/support/command";
import { netnsInode, pidsInNetns } from "../test/support/procs";
import { removeCgroupDirSync, testCgroupParent } from "../test/support/sandbox";

const BPFFS = "/sys/fs/bpf";
const NETNS_DIR = "/run/netns";

/** The prefix of the bench's temporary directories for a run tag. */
export function benchTmpPrefix(tag: string): string {
  return `waggle-bench-${tag}-`;
}

function entries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Removes everything named with `tag`; returns what it removed, and what it could not. */
export function cleanupByTag(tag: string): { removed: string[]; failed: string[] } {
  if (!/^wg[0-9a-z]{3,}$/.test(tag))
    throw new Error(`refusing to clean up with tag ${JSON.stringify(tag)}`);
  const removed: string[] = [];
  const failed: string[] = [];
  const attempt = (what: string, fn: () => void) => {
    try {
      fn();
      removed.push(what);
    } catch (e) {
      failed.push(`${what}: ${(e as Error).message}`);
    }
  };
  const cgroups = testCgroupParent();
  for (const name of entries(cgroups).filter((n) => n.startsWith(tag)))
    attempt(`cgroup ${name}`, () => removeCgroupDirSync(join(cgroups, name)));
  for (const name of entries(NETNS_DIR).filter((n) => n.startsWith(tag))) {
    attempt(`netns ${name}`, () => {
      for (const pid of pidsInNetns(netnsInode(join(NETNS_DIR, name)))) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      runSync("ip", ["netns", "del", name]);
    });
  }
  for (const name of entries(BPFFS).filter((n) => n.startsWith(tag)))
    attempt(`bpffs ${name}`, () => rmSync(join(BPFFS, name), { recursive: true, force: true }));
  for (const name of entries(tmpdir()).filter((n) => n.startsWith(benchTmpPrefix(tag))))
    attempt(`dir ${name}`, () => rmSync(join(tmpdir(), name), { recursive: true, force: true }));
  return { removed, failed };
}
