// The programs and maps every pod shares: loaded once per node and pinned under
// <bpfRoot>/datapath/{maps,progs}. Concurrent first loads are settled by an atomic rename:
// each loader builds a complete private staging directory and renames it into place; the
// loser's rename fails (the target is not empty) and it discards its copy. So a reader that
// sees <bpfRoot>/datapath sees every pin, and nobody waits on a lock.
import { existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import { BpfObject, Link, Program } from "ebpf-napi";
import { bpfObject } from "../base/assets";
import { makeDirectories } from "../base/make-directories";
import { randomHex } from "../base/unique-name";
import { createBypassLink, swapBypassLink } from "./bypass";
import { DatapathError } from "./errors";
import { MAP_NAMES } from "./layout";
import { requireBpffs, sweepStaging } from "./pins";
import { ALL_PROGRAMS, OBJECTS, OPTIONAL_OBJECTS, POD_LINKS, paths } from "./programs";
import { type PodRecordData, readAllRecords } from "./record";
import { listDir, removeTree } from "./shared-fs";

export interface DatapathOptions {
  /** bpffs directory holding waggle's pins (tests use unique roots). */
  bpfRoot: string;
  /**
   * The node's socket bypass switch (plugin config `socket_bypass`), applied at each attach:
   * false turns it off for new connections; true turns it on where the kernel can run it;
   * absent: the kernel's default (requirements.ts bypassSupport; bypass.ts).
   */
  socketBypass?: boolean;
  /** The bypass's bound on a receiver's unread bytes (plugin config `socket_bypass_backlog`). */
  socketBypassBacklog?: number;
}

/**
 * Loads every object, maps pinned (or reused) under mapsDir, programs pinned under progsDir.
 * An optional object the kernel refuses (OPTIONAL_OBJECTS: no BTF) is left out; what needs
 * it stays off (bypass.ts).
 */
function loadInto(mapsDir: string, progsDir: string): void {
  makeDirectories(mapsDir);
  makeDirectories(progsDir);
  const pinMaps = Object.fromEntries(
    Object.values(MAP_NAMES).map((name) => [name, join(mapsDir, name)]),
  );
  for (const name of OBJECTS) {
    const obj = BpfObject.open(bpfObject(name), { name, pinMaps });
    try {
      try {
        obj.load();
      } catch (err) {
        if (OPTIONAL_OBJECTS.includes(name)) continue;
        throw err;
      }
      for (const prog of obj.programNames()) {
        const p = obj.program(prog);
        try {
          p.pin(join(progsDir, prog));
        } finally {
          p.close();
        }
      }
    } finally {
      obj.close();
    }
  }
}

/** Every shared program and map is pinned (two directory reads, not a lookup per pin). */
function sharedComplete(root: string): boolean {
  const progs = new Set(listDir(paths.progs(root)));
  if (!ALL_PROGRAMS.every((p) => progs.has(p))) return false;
  const maps = new Set(listDir(paths.maps(root)));
  return Object.values(MAP_NAMES).every((m) => maps.has(m));
}

/**
 * What ensureSharedPrograms did: found them pinned, loaded and pinned them, or loaded them
 * but another process pinned its set first (this copy was discarded).
 */
export type SharedProgramsOutcome = "present" | "loaded" | "lost-race";

/**
 * Makes sure the shared programs and maps are loaded and pinned under bpfRoot. Safe to call
 * from many processes at once: exactly one set ends up pinned, the others are discarded.
 */
export function ensureSharedPrograms(opts: DatapathOptions): void {
  loadSharedPrograms(opts);
}

/** ensureSharedPrograms, saying what it did (for logs and tests). */
export function loadSharedPrograms(opts: DatapathOptions): SharedProgramsOutcome {
  const root = opts.bpfRoot;
  requireBpffs(root);
  if (sharedComplete(root)) return "present";
  sweepStaging(root); // a killed earlier load's copy: pinned, so never freed otherwise
  // An upgrade swaps the progs directory by two renames: wait that moment out.
  if (existsSync(paths.datapath(root)) && !retryBriefly(() => sharedComplete(root))) {
    throw new DatapathError(
      "PROGRAMS",
      `${paths.datapath(root)} exists but is incomplete; run "waggle install" (upgradePrograms) to repair it`,
    );
  }
  const staging = join(root, `staging-${process.pid}-${randomHex(4)}`);
  try {
    makeDirectories(root);
    loadInto(join(staging, "maps"), join(staging, "progs"));
    createBypassLink(staging);
  } catch (err) {
    removeTree(staging);
    throw new DatapathError("PROGRAMS", "loading the datapath programs failed", err);
  }
  try {
    renameSync(staging, paths.datapath(root));
  } catch (err) {
    removeTree(staging);
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === "ENOTEMPTY" || code === "EEXIST") && sharedComplete(root)) return "lost-race";
    throw new DatapathError("PROGRAMS", `pinning the datapath under ${root} failed`, err);
  }
  return "loaded";
}

/**
 * Calls `ready` until it returns true, for at most about half a second (an upgrade's
 * directory swap takes microseconds); false when it never did.
 */
function retryBriefly(ready: () => boolean): boolean {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (ready()) return true;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  return ready();
}

/** Opens a shared program by name (retrying briefly across an upgrade's directory swap). */
export function openProgram(root: string, name: string): Program {
  let prog = null as Program | null;
  let error: unknown;
  retryBriefly(() => {
    try {
      prog = Program.openPinned(paths.prog(root, name), name);
      return true;
    } catch (err) {
      error = err;
      return (err as { code?: string }).code !== "ENOENT"; // only a missing pin is worth a wait
    }
  });
  if (!prog) throw new DatapathError("PROGRAMS", `shared program ${name} is not pinned`, error);
  return prog;
}

export interface UpgradeReport {
  /** "loaded": nothing was pinned, this build's datapath was loaded; "upgraded": swapped in. */
  action: "loaded" | "upgraded";
  /** Attached pods looked at. */
  pods: number;
  /** Pod links (cgroup and netns) whose program was swapped (bpf_link_update, atomic per hook). */
  linksUpdated: number;
  /** Pods left running their old programs, by container id (see skipReasons). */
  skipped: string[];
  /** Why each skipped pod was skipped: its cgroup or netns is gone (DEL pending), or an error. */
  skipReasons: Record<string, string>;
  /** The node's bypass link got the new program, or was made (an older version had none). */
  bypassLinkUpdated: boolean;
  /** Programs whose instructions differ from those they replaced (by tag); [] = same code. */
  changedPrograms: string[];
  /** The pinned program ids before and after, by name (`bpftool prog show id N`). */
  programIds: Record<string, { from: number | null; to: number }>;
  durationMs: number;
}

/** Id and tag of each pinned shared program (null where a pin is missing). */
function pinnedPrograms(root: string): Map<string, { id: number; tag: string } | null> {
  return new Map(
    ALL_PROGRAMS.map((name) => {
      try {
        const p = Program.openPinned(paths.prog(root, name));
        try {
          const { id, tag } = p.info();
          return [name, { id, tag }];
        } finally {
          p.close();
        }
      } catch {
        return [name, null];
      }
    }),
  );
}

/** Opens every pinned shared program, runs fn with them by name, closes them. */
export function withPinnedPrograms<T>(root: string, fn: (progs: Map<string, Program>) => T): T {
  const progs = new Map<string, Program>();
  try {
    for (const name of ALL_PROGRAMS) progs.set(name, openProgram(root, name));
    return fn(progs);
  } finally {
    for (const p of progs.values()) p.close();
  }
}

/**
 * Puts `progs` into one pod's links wherever they run another program, counting what it
 * swapped; returns why the pod cannot be swapped, or null.
 */
export function swapPodPrograms(
  root: string,
  rec: PodRecordData,
  progs: Map<string, Program>,
  report: { linksUpdated: number },
): string | null {
  // A pod whose cgroup or netns is gone has defunct links (bpf_link_update: ENOLINK) and
  // runs nothing.
  if (!existsSync(rec.cgroupPath)) return `cgroup ${rec.cgroupPath} is gone`;
  if (!existsSync(rec.netnsPath)) return `netns ${rec.netnsPath} is gone`;
  for (const name of POD_LINKS) {
    const pin = paths.podLink(root, rec.containerId, name);
    if (!existsSync(pin)) continue; // checkPod reports it; attachPod restores it
    const link = Link.openPinned(pin);
    try {
      const prog = progs.get(name) as Program;
      if (link.info().progId !== prog.info().id) {
        link.update(prog);
        report.linksUpdated++;
      }
    } finally {
      link.close();
    }
  }
  return null;
}

/**
 * Loads the programs of this build against the pinned maps (which must be compatible) and
 * swaps them into every pod's links (bpf_link_update, atomic per hook); then the new programs
 * take the place of the old pins. Loads the whole datapath when nothing is pinned yet. A pod
 * that cannot be swapped (cgroup or netns gone, an error) is skipped and named in the report;
 * it never stops the others.
 */
export function upgradePrograms(opts: DatapathOptions): UpgradeReport {
  const started = performance.now();
  const root = opts.bpfRoot;
  requireBpffs(root);
  sweepStaging(root);
  const report: UpgradeReport = {
    action: "upgraded",
    pods: 0,
    linksUpdated: 0,
    skipped: [],
    skipReasons: {},
    bypassLinkUpdated: false,
    changedPrograms: [],
    programIds: {},
    durationMs: 0,
  };
  const finish = (before: ReturnType<typeof pinnedPrograms>) => {
    for (const [name, now] of pinnedPrograms(root)) {
      const was = before.get(name) ?? null;
      if (!now)
        throw new DatapathError("PROGRAMS", `program ${name} is not pinned after the upgrade`);
      report.programIds[name] = { from: was?.id ?? null, to: now.id };
      if (was?.tag !== now.tag) report.changedPrograms.push(name);
    }
    report.durationMs = Math.round((performance.now() - started) * 10) / 10;
    return report;
  };
  if (!existsSync(paths.datapath(root))) {
    loadSharedPrograms(opts);
    report.action = "loaded";
    return finish(new Map());
  }
  const before = pinnedPrograms(root);
  const fresh = join(paths.datapath(root), `progs-new-${randomHex(4)}`);
  try {
    loadInto(paths.maps(root), fresh);
  } catch (err) {
    removeTree(fresh);
    throw new DatapathError(
      "PROGRAMS",
      "loading the new programs against the pinned maps failed",
      err,
    );
  }
  const progs = new Map(ALL_PROGRAMS.map((n) => [n, Program.openPinned(join(fresh, n))]));
  try {
    const swapPods = () => {
      report.pods = 0;
      report.skipped = [];
      report.skipReasons = {};
      for (const rec of readAllRecords(root)) {
        report.pods++;
        let reason: string | null;
        try {
          reason = swapPodPrograms(root, rec, progs, report);
        } catch (err) {
          reason = (err as Error).message;
        }
        if (reason !== null) {
          report.skipped.push(rec.containerId);
          report.skipReasons[rec.containerId] = reason;
        }
      }
    };
    swapPods();
    report.bypassLinkUpdated = swapBypassLink(root, fresh);
    const old = join(paths.datapath(root), `progs-old-${randomHex(4)}`);
    if (existsSync(paths.progs(root))) renameSync(paths.progs(root), old);
    renameSync(fresh, paths.progs(root));
    removeTree(old);
    // a pod attached with the old programs while we swapped: catch it now
    swapPods();
  } finally {
    for (const p of progs.values()) p.close();
    removeTree(fresh);
  }
  return finish(before);
}
