// `waggle doctor`: checks every prerequisite of this host and says what to do about each one
// missing. Gathering facts (gatherFacts) is separate from judging them (evaluate, pure), so the
// judgement is unit-tested with fixtures and the gathering by running the binary for real.
import { readFileSync, statfsSync } from "node:fs";
import { release } from "node:os";
import { dirname, join } from "node:path";
import type { GlibcNeed } from "../base/build-info";
import type { CliArgs, CliIo } from "../base/cli-io";
import { compareDotted, kernelVersion } from "../base/dotted-version";
import { BYPASS_RECV_PROGRAM, bypassSupport, OPTIONAL_OBJECTS } from "../datapath";
import {
  attachTypeNeeds,
  BPF_FS_MAGIC,
  CAP_BPF,
  CAP_NET_ADMIN,
  CAP_PERFMON,
  CAP_SYS_ADMIN,
  DEFAULT_BPF_ROOT,
  helperNeeds,
  kernelFloor,
  mapTypeNeeds,
  progTypeNeeds,
  remedies,
} from "./prerequisites";

/** Either a value or the error met while finding it out. */
export type Found<T> = { value: T } | { error: string };

/** Everything doctor looks at, gathered from the host. */
export interface DoctorFacts {
  /** Effective capability set (CapEff of /proc/self/status). */
  capabilities: Found<bigint>;
  /** uname release, e.g. "6.18.44-fc-v657". */
  kernelRelease: string;
  /** Mount point of the cgroup2 hierarchy. */
  cgroup2: Found<string>;
  /** The bpffs root waggle pins under, and the filesystem found there. */
  bpffs: { root: string; checkedPath: string; fsType: Found<number> };
  /** glibc the process runs on (null: not glibc) and the floor the shipped files need. */
  glibc: { running: string | null; floor: Found<GlibcNeed | null> };
  /** The addon as loaded (path, libbpf version). */
  addon: Found<{ path: string; libbpf: string }>;
  /** Probe results keyed by check id (see probeChecks); absent when the addon did not load. */
  probes: Record<string, Found<boolean>>;
  /** Each embedded BPF object: loads (verifier accepts every program) or the error. */
  objects: Record<string, Found<number>>;
}

export interface CheckResult {
  /** Stable id: "kernel", "bpffs", "helper:sched_cls:sk_assign", "object:capture", ... */
  id: string;
  ok: boolean;
  /** What was checked. */
  what: string;
  /** What was found. */
  found: string;
  /** What to do, when not ok. */
  remedy?: string;
}

/** One probe doctor runs through the addon. */
export interface ProbeCheck {
  id: string;
  what: string;
  remedy: string;
  run(probes: typeof import("ebpf-napi")): boolean;
}

/** The feature probes, one per program type, attach type, map type and helper waggle uses. */
export function probeChecks(): ProbeCheck[] {
  return [
    ...progTypeNeeds.map((n) => ({
      id: `prog:${n.progType}`,
      what: `program type ${n.progType} (${n.usedFor})`,
      remedy: remedies.probe(n.since, n.config),
      run: (b: typeof import("ebpf-napi")) => b.probeProgType(n.progType),
    })),
    ...attachTypeNeeds.map((n) => ({
      id: `attach:${n.attachType}`,
      what: `attach type ${n.attachType} (${n.usedFor})`,
      remedy: remedies.probe(n.since),
      run: (b: typeof import("ebpf-napi")) => b.probeAttachType(n.attachType),
    })),
    ...mapTypeNeeds.map((n) => ({
      id: `map:${n.mapType}`,
      what: `map type ${n.mapType} (${n.usedFor})`,
      remedy: remedies.probe(n.since),
      run: (b: typeof import("ebpf-napi")) => b.probeMapType(n.mapType),
    })),
    ...helperNeeds.map((n) => ({
      id: `helper:${n.progType}:${n.helper}`,
      what: `helper bpf_${n.helper} in ${n.progType} (${n.usedFor})`,
      remedy: remedies.probe(n.since),
      run: (b: typeof import("ebpf-napi")) => b.probeHelper(n.progType, n.helper),
    })),
  ];
}

function hasCap(caps: bigint, bit: number): boolean {
  return (caps & (1n << BigInt(bit))) !== 0n;
}

function describeCaps(caps: bigint): string {
  const names: [number, string][] = [
    [CAP_SYS_ADMIN, "CAP_SYS_ADMIN"],
    [CAP_BPF, "CAP_BPF"],
    [CAP_PERFMON, "CAP_PERFMON"],
    [CAP_NET_ADMIN, "CAP_NET_ADMIN"],
  ];
  const held = names.filter(([bit]) => hasCap(caps, bit)).map(([, name]) => name);
  return held.length > 0
    ? held.join(", ")
    : "none of CAP_SYS_ADMIN, CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN";
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** Judges the facts: one result per prerequisite, in a stable order. Pure. */
export function evaluate(facts: DoctorFacts): CheckResult[] {
  const results: CheckResult[] = [];

  if ("error" in facts.capabilities) {
    results.push({
      id: "privileges",
      ok: false,
      what: "privileges to load BPF programs",
      found: facts.capabilities.error,
      remedy: remedies.privileges,
    });
  } else {
    const caps = facts.capabilities.value;
    const ok =
      hasCap(caps, CAP_NET_ADMIN) &&
      (hasCap(caps, CAP_SYS_ADMIN) || (hasCap(caps, CAP_BPF) && hasCap(caps, CAP_PERFMON)));
    results.push({
      id: "privileges",
      ok,
      what: "privileges to load BPF programs",
      found: describeCaps(caps),
      remedy: ok ? undefined : remedies.privileges,
    });
  }

  const floor = kernelFloor();
  const running = kernelVersion(facts.kernelRelease);
  const kernelOk = running !== null && compareDotted(running, floor.version) >= 0;
  results.push({
    id: "kernel",
    ok: kernelOk,
    what: `kernel >= ${floor.version} (for ${floor.setBy.join(", ")})`,
    found: facts.kernelRelease,
    remedy: kernelOk ? undefined : remedies.kernel(floor.version),
  });

  results.push(
    "error" in facts.cgroup2
      ? {
          id: "cgroup2",
          ok: false,
          what: "cgroup v2 mounted",
          found: facts.cgroup2.error,
          remedy: remedies.cgroup2,
        }
      : { id: "cgroup2", ok: true, what: "cgroup v2 mounted", found: facts.cgroup2.value },
  );

  const { root, checkedPath, fsType } = facts.bpffs;
  const bpffsWhat = `bpffs mounted at ${root}`;
  if ("error" in fsType) {
    results.push({
      id: "bpffs",
      ok: false,
      what: bpffsWhat,
      found: fsType.error,
      remedy: remedies.bpffs(root),
    });
  } else {
    const ok = fsType.value === BPF_FS_MAGIC;
    results.push({
      id: "bpffs",
      ok,
      what: bpffsWhat,
      found: ok
        ? `${checkedPath} is bpffs`
        : `${checkedPath} is filesystem ${hex(fsType.value)}, not bpffs (${hex(BPF_FS_MAGIC)})`,
      remedy: ok ? undefined : remedies.bpffs(root),
    });
  }

  results.push(evaluateGlibc(facts.glibc));

  if ("error" in facts.addon) {
    results.push({
      id: "addon",
      ok: false,
      what: "eBPF addon (libbpf) loads",
      found: facts.addon.error,
      remedy: remedies.addon,
    });
  } else {
    results.push({
      id: "addon",
      ok: true,
      what: "eBPF addon (libbpf) loads",
      found: `libbpf ${facts.addon.value.libbpf} from ${facts.addon.value.path}`,
    });
  }

  const addonMissing = "error" in facts.addon ? "not checked: the eBPF addon did not load" : null;
  for (const probe of probeChecks()) {
    const outcome = facts.probes[probe.id];
    if (outcome === undefined || "error" in outcome) {
      results.push({
        id: probe.id,
        ok: false,
        what: probe.what,
        found:
          outcome === undefined ? (addonMissing ?? "not probed") : `probe failed: ${outcome.error}`,
        remedy: outcome === undefined ? remedies.addon : probe.remedy,
      });
    } else {
      results.push({
        id: probe.id,
        ok: outcome.value,
        what: probe.what,
        found: outcome.value ? "supported" : "not supported by this kernel",
        remedy: outcome.value ? undefined : probe.remedy,
      });
    }
  }

  for (const [name, outcome] of Object.entries(facts.objects)) {
    const what = `BPF object ${name}.bpf.o loads (verifier)`;
    const optional = (OPTIONAL_OBJECTS as readonly string[]).includes(name);
    results.push(
      !("error" in outcome)
        ? { id: `object:${name}`, ok: true, what, found: `${outcome.value} program(s) loaded` }
        : optional
          ? {
              id: `object:${name}`,
              ok: true,
              what: `${what} (optional)`,
              found: `not loaded, the datapath leaves it out: ${outcome.error}`,
            }
          : {
              id: `object:${name}`,
              ok: false,
              what,
              found: outcome.error,
              remedy: remedies.objects,
            },
    );
  }

  // optional: never fails doctor, says whether the bypass can run and whether it is on by default
  results.push({
    id: "socket-bypass",
    ok: true,
    what: "socket bypass (optional; plugin config socket_bypass)",
    found: bypassReason(facts),
  });
  return results;
}

/**
 * Whether the socket bypass can run: the kernel's version and BTF (bypassSupport), and then
 * whether the kernel loads the flow control's program. Its CO-RE relocations need fields that
 * arrived in stable updates too (sk_psock's msg_tot_len), which no version number tells; the
 * datapath runs without the object, and the bypass with it.
 */
function bypassReason(facts: DoctorFacts): string {
  const bypass = bypassSupport(facts.kernelRelease);
  const recv = facts.objects[BYPASS_RECV_PROGRAM.object];
  if (!bypass.available || recv === undefined || !("error" in recv)) return bypass.reason;
  return `kernel ${bypass.kernel} refuses the flow control's program (${BYPASS_RECV_PROGRAM.object}.bpf.o: ${recv.error}): bypass unavailable`;
}

function evaluateGlibc(glibc: DoctorFacts["glibc"]): CheckResult {
  const id = "glibc";
  if ("error" in glibc.floor) {
    return {
      id,
      ok: false,
      what: "glibc new enough for the shipped addon and libraries",
      found: `floor unknown: ${glibc.floor.error}`,
      remedy: "rebuild waggle (the build records the floor with objdump -T)",
    };
  }
  const floor = glibc.floor.value;
  if (floor === null) {
    return {
      id,
      ok: true,
      what: "glibc (no shipped file needs it)",
      found: glibc.running ?? "none",
    };
  }
  const what = `glibc >= ${floor.version} (needed by ${floor.file})`;
  if (glibc.running === null) {
    return {
      id,
      ok: false,
      what,
      found: "not a glibc system",
      remedy: remedies.glibc(floor.version),
    };
  }
  const ok = compareDotted(glibc.running, floor.version) >= 0;
  return {
    id,
    ok,
    what,
    found: glibc.running,
    remedy: ok ? undefined : remedies.glibc(floor.version),
  };
}

/** Effective capabilities of this process from /proc/self/status. */
export function effectiveCapabilities(status: string): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!m) throw new Error("no CapEff line in /proc/self/status");
  return BigInt(`0x${m[1]}`);
}

function found<T>(fn: () => T): Found<T> {
  try {
    return { value: fn() };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

/** The nearest existing directory at or above `path` (pins may go in a directory not made yet). */
function nearestExisting(path: string): { path: string; fsType: number } {
  let p = path;
  for (;;) {
    try {
      return { path: p, fsType: statfsSync(p).type };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== "ENOENT" && code !== "ENOTDIR") || dirname(p) === p) throw err;
      p = dirname(p);
    }
  }
}

/** Looks at this host. Never throws: what cannot be found out becomes an error fact. */
export function gatherFacts(opts: { bpfRoot: string }): DoctorFacts {
  const { buildInfo } = require("../base/build-info") as typeof import("../base/build-info");
  const { cgroup2Root } = require("../base/cgroup2") as typeof import("../base/cgroup2");
  const { glibcFloor, glibcNeeds, runningGlibc } =
    require("../base/glibc") as typeof import("../base/glibc");
  const { loadAddon } = require("../base/addon") as typeof import("../base/addon");

  const bpfStat = found(() => nearestExisting(opts.bpfRoot));
  const addon = found(() => loadAddon());
  const facts: DoctorFacts = {
    capabilities: found(() => effectiveCapabilities(readFileSync("/proc/self/status", "utf8"))),
    kernelRelease: release(),
    cgroup2: found(() => cgroup2Root()),
    bpffs: {
      root: opts.bpfRoot,
      checkedPath: "value" in bpfStat ? bpfStat.value.path : opts.bpfRoot,
      fsType: "value" in bpfStat ? { value: bpfStat.value.fsType } : bpfStat,
    },
    glibc: {
      running: runningGlibc(),
      floor: found(() => {
        const baked = buildInfo().glibcFloor;
        if (baked !== null) return baked;
        // Running from a checkout: measure the files that would be shipped.
        if (!("value" in addon)) throw new Error(`addon not found: ${addon.error}`);
        const dir = dirname(addon.value.path);
        const libs = ["libbpf.so.1", "libelf.so.1", "libz.so.1"].map((l) => join(dir, l));
        return glibcFloor(glibcNeeds([process.execPath, addon.value.path, ...libs]));
      }),
    },
    addon:
      "value" in addon
        ? { value: { path: addon.value.path, libbpf: addon.value.libbpfVersion } }
        : addon,
    probes: {},
    objects: {},
  };
  if (!("value" in addon)) return facts;

  const bpf = require("ebpf-napi") as typeof import("ebpf-napi");
  for (const probe of probeChecks()) facts.probes[probe.id] = found(() => probe.run(bpf));

  const { bpfObject, bpfObjectNames } =
    require("../base/assets") as typeof import("../base/assets");
  const names = found(() => bpfObjectNames());
  if ("error" in names) {
    facts.objects["(embedded objects)"] = names;
    return facts;
  }
  for (const name of names.value) {
    facts.objects[name] = found(() => {
      const obj = bpf.BpfObject.open(bpfObject(name), { name });
      try {
        obj.load();
        return obj.programNames().length;
      } finally {
        obj.close();
      }
    });
  }
  return facts;
}

/** One line per check: "ok  " or "FAIL", what, what was found, and the remedy when failed. */
export function formatResults(results: CheckResult[]): string {
  const lines = results.map(
    (r) =>
      `${r.ok ? "ok  " : "FAIL"} ${r.what}: ${r.found}${r.remedy ? ` -- remedy: ${r.remedy}` : ""}`,
  );
  const failed = results.filter((r) => !r.ok);
  lines.push(
    failed.length === 0
      ? `waggle doctor: all ${results.length} prerequisites met`
      : `waggle doctor: ${failed.length} of ${results.length} prerequisites missing: ${failed.map((r) => r.id).join(", ")}`,
  );
  return `${lines.join("\n")}\n`;
}

export async function runDoctor(args: CliArgs, io: CliIo): Promise<number> {
  const bpfRoot = typeof args.bpfRoot === "string" ? args.bpfRoot : DEFAULT_BPF_ROOT;
  const results = evaluate(gatherFacts({ bpfRoot }));
  const failed = results.filter((r) => !r.ok).map((r) => r.id);
  if (args.json) {
    io.out(`${JSON.stringify({ ok: failed.length === 0, failed, checks: results }, null, 2)}\n`);
  } else {
    io.out(formatResults(results));
  }
  return failed.length === 0 ? 0 : 1;
}
