// The programs and maps every pod shares: loaded once per node and pinned under
// <bpfRoot>/datapath/{maps,progs}. Concurrent first loads are settled by an atomic rename:
// each loader builds a complete private staging directory and renames it into place; the
// loser's rename fails (the target is not empty) and it discards its copy. So a reader that
// sees <bpfRoot>/datapath sees every pin, and nobody waits on a lock.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { BpfObject, Link, Program, tcAttach, tcQuery } from "ebpf-napi";
import { bpfObject } from "../assets";
import { DatapathError } from "./errors";
import { MAP_NAMES } from "./layout";
import { ALL_PROGRAMS, CGROUP_PROGRAMS, OBJECTS, paths, TC_PROGRAM, TC_SLOT } from "./programs";
import { readAllRecords } from "./record";
import { removeTree } from "./shared-fs";

export interface DatapathOptions {
  /** bpffs directory holding waggle's pins (tests use unique roots). */
  bpfRoot: string;
}

/** Loads every object, maps pinned (or reused) under mapsDir, programs pinned under progsDir. */
function loadInto(mapsDir: string, progsDir: string): void {
  mkdirSync(mapsDir, { recursive: true });
  mkdirSync(progsDir, { recursive: true });
  const pinMaps = Object.fromEntries(
    Object.values(MAP_NAMES).map((name) => [name, join(mapsDir, name)]),
  );
  for (const name of OBJECTS) {
    const obj = BpfObject.open(bpfObject(name), { name, pinMaps });
    try {
      obj.load();
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

function sharedComplete(root: string): boolean {
  const progs = paths.progs(root);
  const maps = paths.maps(root);
  return (
    existsSync(progs) &&
    ALL_PROGRAMS.every((p) => existsSync(join(progs, p))) &&
    Object.values(MAP_NAMES).every((m) => existsSync(join(maps, m)))
  );
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
  if (sharedComplete(root)) return "present";
  if (existsSync(paths.datapath(root))) {
    throw new DatapathError(
      "PROGRAMS",
      `${paths.datapath(root)} exists but is incomplete; run "waggle install" (upgradePrograms) to repair it`,
    );
  }
  const staging = join(root, `staging-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    mkdirSync(root, { recursive: true });
    loadInto(join(staging, "maps"), join(staging, "progs"));
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

/** Opens a shared program by name (retrying briefly across an upgrade's directory swap). */
export function openProgram(root: string, name: string): Program {
  for (let attempt = 0; ; attempt++) {
    try {
      return Program.openPinned(paths.prog(root, name));
    } catch (err) {
      if ((err as { code?: string }).code !== "ENOENT" || attempt >= 50) {
        throw new DatapathError("PROGRAMS", `shared program ${name} is not pinned`, err);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

export interface UpgradeReport {
  pods: number;
  linksUpdated: number;
  tcUpdated: number;
  /** Pods whose TC filter could not be replaced (netns gone), by container id. */
  skipped: string[];
}

/**
 * Loads the programs of this build against the pinned maps (which must be compatible) and
 * swaps them into every pod's links (bpf_link_update, atomic per hook) and TC filters
 * (replace in place); then the new programs take the place of the old pins. Loads the
 * whole datapath when nothing is pinned yet.
 */
export function upgradePrograms(opts: DatapathOptions): UpgradeReport {
  const root = opts.bpfRoot;
  const report: UpgradeReport = { pods: 0, linksUpdated: 0, tcUpdated: 0, skipped: [] };
  if (!existsSync(paths.datapath(root))) {
    ensureSharedPrograms(opts);
    return report;
  }
  const fresh = join(paths.datapath(root), `progs-new-${randomBytes(4).toString("hex")}`);
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
      for (const rec of readAllRecords(root)) {
        report.pods++;
        for (const cp of CGROUP_PROGRAMS) {
          const pin = paths.podLink(root, rec.containerId, cp.name);
          if (!existsSync(pin)) continue;
          const link = Link.openPinned(pin);
          try {
            const prog = progs.get(cp.name) as Program;
            if (link.info().progId !== prog.info().id) {
              link.update(prog);
              report.linksUpdated++;
            }
          } finally {
            link.close();
          }
        }
        for (const t of rec.tc) {
          if (!existsSync(rec.netnsPath)) {
            if (!report.skipped.includes(rec.containerId)) report.skipped.push(rec.containerId);
            continue;
          }
          const prog = progs.get(TC_PROGRAM.name) as Program;
          const slot = {
            netns: rec.netnsPath,
            ifname: t.ifname,
            direction: "ingress" as const,
            ...TC_SLOT,
          };
          try {
            if (tcQuery(slot) !== prog.info().id) {
              tcAttach({ ...slot, prog, replace: true });
              report.tcUpdated++;
            }
          } catch {
            if (!report.skipped.includes(rec.containerId)) report.skipped.push(rec.containerId);
          }
        }
      }
    };
    swapPods();
    const old = join(paths.datapath(root), `progs-old-${randomBytes(4).toString("hex")}`);
    renameSync(paths.progs(root), old);
    renameSync(fresh, paths.progs(root));
    removeTree(old);
    // a pod attached with the old programs while we swapped: catch it now
    report.pods = 0;
    swapPods();
  } finally {
    for (const p of progs.values()) p.close();
    removeTree(fresh);
  }
  return report;
}
