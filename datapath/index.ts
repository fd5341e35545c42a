// The datapath's per-pod API: attach a meshed pod (policy into the shared maps, cgroup
// programs and the netns inbound program as pinned bpf_links), detach it, check it, list pods.
// Design and map list: docs/datapath.md. Used by the CNI plugin, `waggle status`, GC and
// the installer (upgradePrograms).
import { existsSync, statSync } from "node:fs";
import {
  attachCgroup,
  attachNetns,
  BpfMap,
  cgroupId,
  Link,
  netnsCookie,
  netnsLinkInfo,
  Program,
  pinCgroupLinks,
  possibleCpus,
  unpin,
  updatePinnedMaps,
} from "ebpf-napi";
import { isoTime } from "../base/iso-time";
import { makeDirectories } from "../base/make-directories";
import { phase } from "../base/phases";
import type { RedirectSettings } from "../mesh/redirect-settings";
import { applyNodeBypass, BYPASS_COUNTER_MAPS, bypassCountersEntries } from "./bypass";
import { decodeNetns, type MapEntry, netnsKey, sumCounters, zeroCounters } from "./encode";
import { DatapathError } from "./errors";
import { addPassthroughV6 } from "./interfaces";
import { type CounterName, MAP_NAMES, POLICY, STORAGE_MAPS } from "./layout";
import { forgetListeners, recordExistingListeners } from "./listeners";
import { attachedContainerIds as pinnedContainerIds, sweepStaging } from "./pins";
import { lockPod } from "./pod-lock";
import { type PodNetwork, type PodState, podState, readPodNetns } from "./pod-state";
import { ALL_PROGRAMS, CGROUP_PROGRAMS, NETNS_PROGRAM, POD_LINKS, paths } from "./programs";
import {
  NEXT_RECORD,
  type PodRecordData,
  RECORD_VERSION,
  readAllRecords,
  readRecord,
  writeRecord,
} from "./record";
import {
  type DatapathOptions,
  ensureSharedPrograms,
  openProgram,
  swapPodPrograms,
  withPinnedPrograms,
} from "./shared";
import { listDir, removeTree } from "./shared-fs";

// The datapath's public entry: everything outside datapath/ imports from here, or, for what
// needs no addon, from ./pins (test/unit/layout.test.ts keeps it so).

// The socket bypass: the node switch, its counters entry, whether the kernel can run it; and
// the program any pinned link runs.
export {
  applyNodeBypass,
  bypassBacklogMax,
  linkProgId,
  nodeBypassSettings,
} from "./bypass";
export {
  addrBytes,
  bytesAddr,
  decodeCidrKey,
  decodePortKey,
  decodePortSet,
  encodeCidrKey,
  encodeIfaceKey,
  encodeIpKey,
  encodeListenerKey,
  encodeListenerQuery,
  encodePolicy,
  encodePortKey,
  encodePortSet,
  expandPortRanges,
  netnsKey,
  policyEntries,
  portRanges,
  sumCounters,
} from "./encode";
// Failures, with a code the plugin maps to its CNI codes.
export { DatapathError, type DatapathErrorCode } from "./errors";
// Following a pod's interfaces, addresses and routes after ADD (the installer).
export { type RefreshOutcome, refreshPod } from "./follow";
export { routeCidr } from "./interfaces";
// The maps' layouts and their keys and values, to read them (status, tests).
export {
  type BypassCounterName,
  CIDR_KEY_FIXED_BITS,
  COUNTER_NAMES,
  type CounterName,
  EXCLUDED_INTERFACE_ROUTES,
  LISTENER_RESULT,
  MAP_CAPACITY,
  MAP_NAMES,
  POLICY,
  STRUCTS,
} from "./layout";
// What needs no addon (re-exported for callers that load the datapath anyway).
export { requireBpffs } from "./pins";
export { type PodNetwork, type PodState, podState } from "./pod-state";
// How redirect settings become a pod's policy (pure; tests and status).
export {
  bareIPs,
  flagNames,
  ipv6Enabled,
  isLoopbackLike,
  isLoopbackRange,
  podPolicy,
  policyCidr,
} from "./policy";
// The pins' names and the per-pod record (status, tests, the bench).
export {
  ALL_PROGRAMS,
  BYPASS_PROGRAM,
  BYPASS_RECV_PROGRAM,
  CGROUP_PROGRAMS,
  containerDirName,
  containerIdOfDir,
  LISTENER_FINDER,
  NETNS_PROGRAM,
  OBJECTS,
  OPTIONAL_OBJECTS,
  POD_LINKS,
  paths,
} from "./programs";
export {
  decodeRecord,
  encodeRecord,
  type PodRecordData,
  RECORD_VERSION,
  readAllRecords,
  readRecord,
  recordedPolicy,
  replaceRecord,
} from "./record";
// What the kernel must offer (`waggle doctor`).
export {
  type AttachTypeNeed,
  BYPASS_KERNEL_FIXES,
  BYPASS_OPEN_DIFFERENCES,
  type BypassSupport,
  bypassSupport,
  DATAPATH_REQUIREMENTS,
  type HelperNeed,
  type KernelFeature,
  type MapTypeNeed,
  type ProgTypeNeed,
  type VersionOnlyFeature,
} from "./requirements";
// The node's shared programs and maps.
export {
  type DatapathOptions,
  ensureSharedPrograms,
  loadSharedPrograms,
  type SharedProgramsOutcome,
  type UpgradeReport,
  upgradePrograms,
} from "./shared";
export { removeTree } from "./shared-fs";

export interface AttachRequest {
  containerId: string;
  netnsPath: string;
  ifname: string;
  cgroupPath: string;
  /** The pod's addresses, with or without prefix length. */
  podIPs: string[];
  settings: RedirectSettings;
  pod?: { namespace: string; name: string; uid?: string };
}

/** An attached pod: its record, with its counters summed over CPUs (null when the entry is missing). */
export interface AttachedPod extends PodRecordData {
  counters: Record<CounterName, number> | null;
}

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

function checkContainerId(id: string): void {
  if (typeof id !== "string" || !CONTAINER_ID.test(id)) {
    throw new DatapathError(
      "INVALID_ARGUMENT",
      `container id ${JSON.stringify(id)} must be letters, digits, "_", "." or "-"`,
    );
  }
}

function openMap(root: string, name: string): BpfMap {
  return BpfMap.openPinned(paths.map(root, name));
}

/** Runs fn with the shared maps open. */
function withMaps<T>(root: string, fn: (maps: Map<string, BpfMap>) => T): T {
  const maps = new Map<string, BpfMap>();
  try {
    for (const name of Object.values(MAP_NAMES)) {
      if (STORAGE_MAPS.includes(name) || name === MAP_NAMES.redirect) continue;
      maps.set(name, openMap(root, name));
    }
    return fn(maps);
  } finally {
    for (const m of maps.values()) m.close();
  }
}

function errorCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

/**
 * Attaches a meshed pod. On any failure everything already done is undone and a
 * DatapathError is thrown. Attaching a container id again replaces its attachment.
 */
export function attachPod(req: AttachRequest, opts: DatapathOptions): PodRecordData {
  const root = opts.bpfRoot;
  validateRequest(req);
  const { netns, network } = readPod(req);
  phase("attach: pod identified, network read");
  const state = deriveState(req, netns, network);
  phase("attach: state derived");
  const { policy, entries } = state;
  ensureSharedPrograms(opts);
  phase("attach: shared programs checked");
  claimNetns(root, req, netns, opts);
  phase("attach: netns claimed");
  const rec = podRecord(req, netns, state);
  const progsDir = progsDirectory(root);
  // The record goes first: whatever happens next, detachPod can find and undo it. The pod's
  // lock is held until the attachment is complete: refreshPod never interleaves with it.
  const unlock = writePodRecord(root, rec);
  phase("attach: record written");
  try {
    writePodMaps(root, netns, entries);
    phase("attach: maps written");
    pinCgroupProgramLinks(root, req.containerId, req.cgroupPath);
    phase("attach: cgroup links pinned");
    applyNodeBypass(root, opts.socketBypass, opts.socketBypassBacklog);
    if (policy.flags & POLICY.IPV6) addPassthroughV6(req.netnsPath);
    // sockops records the proxy's inbound listener from now on; one that listens already
    // (a pod meshed in place) is looked up once, before inbound capture starts.
    recordExistingListeners(root, {
      netns,
      netnsPath: req.netnsPath,
      addresses: policy.localAddresses,
      port: policy.inboundPort,
    });
    pinLink(root, req.containerId, NETNS_PROGRAM.name, (prog) =>
      attachNetns(prog, req.netnsPath, NETNS_PROGRAM.attachType),
    );
    phase("attach: netns link pinned");
    settleUpgradeRace(root, rec, progsDir);
  } catch (err) {
    rollBack(req.containerId, opts);
    throw new DatapathError(
      "ATTACH",
      `attaching container ${req.containerId} failed (rolled back)`,
      err,
    );
  } finally {
    unlock();
  }
  return rec;
}

/** The request names a valid container, interface, netns and cgroup directory. */
function validateRequest(req: AttachRequest): void {
  checkContainerId(req.containerId);
  if (!req.ifname || typeof req.ifname !== "string" || req.ifname.length > 15) {
    throw new DatapathError(
      "INVALID_ARGUMENT",
      `interface name ${JSON.stringify(req.ifname)} is invalid`,
    );
  }
  if (!existsSync(req.netnsPath)) {
    throw new DatapathError("NETNS", `network namespace ${req.netnsPath} does not exist`);
  }
  if (!existsSync(`${req.cgroupPath}/cgroup.procs`) || !statSync(req.cgroupPath).isDirectory()) {
    throw new DatapathError("CGROUP", `${req.cgroupPath} is not a cgroup directory`);
  }
}

/**
 * The pod's netns cookie (the key of all its map entries; its cgroup must be identifiable
 * too) and its network now (interfaces, routes of the excluded ones), with one trip into the
 * netns; req.ifname must be in it.
 */
function readPod(req: AttachRequest): { netns: bigint; network: PodNetwork } {
  let pod: { cookie: bigint; network: PodNetwork };
  try {
    pod = readPodNetns(req.netnsPath, req.settings.excludeInterfaces);
    cgroupId(req.cgroupPath);
  } catch (err) {
    throw new DatapathError(
      "NETNS",
      `cannot identify or read ${req.netnsPath} / ${req.cgroupPath}`,
      err,
    );
  }
  if (!pod.network.interfaces.some((i) => i.ifname === req.ifname)) {
    throw new DatapathError("NETNS", `interface ${req.ifname} does not exist in ${req.netnsPath}`);
  }
  return { netns: pod.cookie, network: pod.network };
}

/** The pod's policy, map entries and derived record fields (pod-state.ts, shared with refreshPod). */
function deriveState(req: AttachRequest, netns: bigint, network: PodNetwork): PodState {
  try {
    return podState(netns, req.settings, req.podIPs, network);
  } catch (err) {
    throw new DatapathError("INVALID_ARGUMENT", "the pod's redirect settings are invalid", err);
  }
}

/**
 * The netns is this container's to attach: another container's attachment of it is a conflict;
 * this container's earlier attachment is removed (attaching again replaces it).
 */
function claimNetns(root: string, req: AttachRequest, netns: bigint, opts: DatapathOptions): void {
  // Every attached pod has its netns's policy entry: without one, no record needs reading
  // (reading them all made each ADD cost more with every pod on the node). An ADD killed
  // before writing its maps leaves a record without it; only its own container id ADDs again.
  if (!netnsHasPolicy(root, netns)) {
    if (existsSync(paths.pod(root, req.containerId))) detachPod(req.containerId, opts);
    return;
  }
  const owner = readAllRecords(root).find(
    (r) => r.netnsCookie === netns.toString() && r.containerId !== req.containerId,
  );
  if (owner) {
    throw new DatapathError(
      "CONFLICT",
      `network namespace ${req.netnsPath} is already attached for container ${owner.containerId}`,
    );
  }
  if (existsSync(paths.pod(root, req.containerId))) detachPod(req.containerId, opts);
}

/** What attachPod writes for the pod: every key it adds, every link it pins, its settings. */
export function podRecord(req: AttachRequest, netns: bigint, state: PodState): PodRecordData {
  return {
    version: RECORD_VERSION,
    containerId: req.containerId,
    netnsCookie: netns.toString(),
    netnsPath: req.netnsPath,
    ifname: req.ifname,
    cgroupPath: req.cgroupPath,
    podIPs: state.policy.podIPs,
    ...(req.pod ? { pod: req.pod } : {}),
    ...state.record,
    settings: req.settings,
    links: [...POD_LINKS],
    attachedAt: isoTime(),
  };
}

/**
 * Makes the pod's directory, takes its lock and pins its record; returns the unlock. On failure
 * nothing of the pod is left.
 */
function writePodRecord(root: string, rec: PodRecordData): () => void {
  let unlock: (() => void) | null = null;
  try {
    makeDirectories(paths.pod(root, rec.containerId));
    unlock = lockPod(root, rec.containerId);
    if (!unlock) throw new Error(`${paths.pod(root, rec.containerId)} vanished`);
    writeRecord(root, rec);
    return unlock;
  } catch (err) {
    unlock?.();
    removeTree(paths.pod(root, rec.containerId));
    throw new DatapathError("ATTACH", "writing the pod record failed", err);
  }
}

/**
 * The pod's zeroed counters (the bypass's too) and its policy entries into the shared maps,
 * in one addon call that opens each map once.
 */
function writePodMaps(root: string, netns: bigint, entries: MapEntry[]): void {
  updatePinnedMaps(
    [
      { map: MAP_NAMES.counters, key: netnsKey(netns), value: zeroCounters(possibleCpus()) },
      ...bypassCountersEntries(netns),
      ...entries,
    ].map((e) => ({ pin: paths.map(root, e.map), key: e.key, value: e.value })),
  );
}

/** Attaches a shared program (attach) and pins the link under the pod, which keeps it attached. */
function pinLink(
  root: string,
  containerId: string,
  program: string,
  attach: (prog: Program) => Link,
): void {
  const prog = openProgram(root, program);
  try {
    const link = attach(prog);
    try {
      link.pin(paths.podLink(root, containerId, program));
    } finally {
      link.close(); // unpinned (pin failed) -> detached here
    }
  } finally {
    prog.close();
  }
}

/**
 * Links every cgroup program to the pod's cgroup and pins the links, in one addon call. A
 * program pin missing mid-batch (an upgrade's rename window) goes on link by link through
 * openProgram, which waits for it; any other failure throws with the links before it pinned,
 * as pinLink one by one leaves them, for the caller's rollback.
 */
function pinCgroupProgramLinks(root: string, containerId: string, cgroupPath: string): void {
  const results = pinCgroupLinks(
    CGROUP_PROGRAMS.map((cp) => ({
      progPin: paths.prog(root, cp.name),
      cgroupDir: cgroupPath,
      attachType: cp.attachType,
      linkPin: paths.podLink(root, containerId, cp.name),
    })),
  );
  const failed = results.findIndex((r) => r.status === "failed");
  if (failed < 0) return;
  const result = results[failed];
  if (result?.status === "failed" && result.error.code !== "ENOENT") throw result.error;
  for (const cp of CGROUP_PROGRAMS.slice(failed)) {
    pinLink(root, containerId, cp.name, (prog) => attachCgroup(prog, cgroupPath, cp.attachType));
  }
}

/** True when the shared policy map has an entry for the netns (a pod attached there). */
function netnsHasPolicy(root: string, netns: bigint): boolean {
  const policy = openMap(root, MAP_NAMES.policy);
  try {
    return policy.lookup(netnsKey(netns)) !== null;
  } finally {
    policy.close();
  }
}

/** The identity (device, inode) of the pinned programs' directory; "" when it is missing. */
function progsDirectory(root: string): string {
  const st = statSync(paths.progs(root), { throwIfNoEntry: false });
  return st === undefined ? "" : `${st.dev}:${st.ino}`;
}

/**
 * An upgrade may have swapped the pinned programs while this pod was being attached
 * (upgradePrograms' second pass covers the opposite order): end on the pinned ones. An
 * upgrade replaces the whole progs directory (a rename), so when it is the one the pod's
 * programs were opened from (`progsDir`, taken before), they are the pinned ones already.
 */
function settleUpgradeRace(root: string, rec: PodRecordData, progsDir: string): void {
  if (progsDir !== "" && progsDirectory(root) === progsDir) return;
  withPinnedPrograms(root, (progs) => {
    const problem = swapPodPrograms(root, rec, progs, { linksUpdated: 0 });
    if (problem) throw new Error(problem);
  });
}

/** Undoes a failed attach; best effort: the record stays only if its own removal failed. */
function rollBack(containerId: string, opts: DatapathOptions): void {
  try {
    detachPod(containerId, opts);
  } catch {
    // the caller reports the attach's failure, not the rollback's
  }
}

/**
 * Removes everything attachPod did for the container: links, map entries, pins. Idempotent;
 * succeeds for unknown containers and vanished netns. Throws only when something that
 * exists could not be removed. Returns false when there was nothing to remove.
 */
export function detachPod(containerId: string, opts: DatapathOptions): boolean {
  const root = opts.bpfRoot;
  checkContainerId(containerId);
  const dir = paths.pod(root, containerId);
  if (!existsSync(dir)) return false;
  const unlock = lockPod(root, containerId);
  if (!unlock) return false; // detached meanwhile
  try {
    detachLocked(root, containerId, dir);
  } finally {
    unlock();
  }
  return true;
}

/** detachPod's work, under the pod's lock. */
function detachLocked(root: string, containerId: string, dir: string): void {
  const problems: string[] = [];
  let rec: PodRecordData | null = null;
  try {
    rec = readRecord(root, containerId);
  } catch (err) {
    problems.push(`record unreadable: ${(err as Error).message}`);
  }

  // links first: the pod stops being captured before its policy disappears
  for (const name of listDir(dir)) {
    if (name === "record" || name === NEXT_RECORD) continue; // removed with the directory
    const pin = `${dir}/${name}`;
    try {
      const link = Link.openPinned(pin);
      try {
        link.detach();
      } catch (err) {
        if (errorCode(err) !== "ENOLINK") throw err;
      } finally {
        link.close();
      }
      unpin(pin);
    } catch (err) {
      if (errorCode(err) !== "ENOENT") problems.push(`link ${name}: ${(err as Error).message}`);
    }
  }

  if (rec && existsSync(paths.maps(root))) {
    const r = rec;
    try {
      withMaps(root, (maps) => {
        const netns = BigInt(r.netnsCookie);
        const podIps = maps.get(MAP_NAMES.podIps) as BpfMap;
        for (const hex of r.keys.podIps) {
          const key = Buffer.from(hex, "hex");
          const owner = podIps.lookup(key);
          if (owner && decodeNetns(owner) === netns) podIps.delete(key); // another pod may own it now
        }
        (maps.get(MAP_NAMES.policy) as BpfMap).delete(netnsKey(netns));
        for (const hex of r.keys.ports)
          (maps.get(MAP_NAMES.ports) as BpfMap).delete(Buffer.from(hex, "hex"));
        for (const hex of r.keys.cidrs)
          (maps.get(MAP_NAMES.cidrs) as BpfMap).delete(Buffer.from(hex, "hex"));
        for (const hex of r.keys.ifaces)
          (maps.get(MAP_NAMES.ifaces) as BpfMap).delete(Buffer.from(hex, "hex"));
        forgetListeners(maps.get(MAP_NAMES.listeners) as BpfMap, netns);
        (maps.get(MAP_NAMES.counters) as BpfMap).delete(netnsKey(netns));
        for (const { map } of BYPASS_COUNTER_MAPS)
          (maps.get(map) as BpfMap).delete(netnsKey(netns));
      });
    } catch (err) {
      problems.push(`map entries: ${(err as Error).message}`);
    }
  }

  if (problems.length > 0) {
    throw new DatapathError(
      "ATTACH",
      `detaching container ${containerId} left: ${problems.join("; ")}`,
    );
  }
  removeTree(dir);
}

/** Problems with a pod's attachment (missing program, link, map entry); [] when healthy. */
export function checkPod(containerId: string, opts: DatapathOptions): string[] {
  const root = opts.bpfRoot;
  checkContainerId(containerId);
  let rec: PodRecordData | null;
  try {
    rec = readRecord(root, containerId);
  } catch (err) {
    return [`pod record unreadable: ${(err as Error).message}`];
  }
  if (!rec) return [`container ${containerId} is not attached (no record under ${root})`];
  const problems: string[] = [];
  const progIds = new Map<string, number>();
  for (const name of ALL_PROGRAMS) {
    try {
      const p = Program.openPinned(paths.prog(root, name));
      progIds.set(name, p.info().id);
      p.close();
    } catch {
      problems.push(`shared program ${name} is not pinned`);
    }
  }
  let cgid: bigint | null = null;
  try {
    cgid = cgroupId(rec.cgroupPath);
  } catch {
    problems.push(`cgroup ${rec.cgroupPath} is gone`);
  }
  for (const cp of CGROUP_PROGRAMS) {
    const pin = paths.podLink(root, containerId, cp.name);
    try {
      const link = Link.openPinned(pin);
      try {
        const info = link.info();
        if (cgid !== null && info.cgroupId !== cgid)
          problems.push(`link ${cp.name} is not on ${rec.cgroupPath}`);
        if (info.attachType !== cp.attachType)
          problems.push(`link ${cp.name} has attach type ${info.attachType}`);
        const pinned = progIds.get(cp.name);
        if (pinned !== undefined && info.progId !== pinned)
          problems.push(`link ${cp.name} runs program ${info.progId}, not the pinned ${pinned}`);
      } finally {
        link.close();
      }
    } catch {
      problems.push(`link ${cp.name} is missing`);
    }
  }
  problems.push(...checkNetnsLink(root, rec, progIds.get(NETNS_PROGRAM.name)));
  try {
    const r = rec;
    withMaps(root, (maps) => {
      const netns = BigInt(r.netnsCookie);
      if (!(maps.get(MAP_NAMES.policy) as BpfMap).lookup(netnsKey(netns)))
        problems.push("policy entry is missing");
      if (!(maps.get(MAP_NAMES.counters) as BpfMap).lookup(netnsKey(netns)))
        problems.push("counters entry is missing");
      const podIps = maps.get(MAP_NAMES.podIps) as BpfMap;
      for (const hex of r.keys.podIps) {
        const v = podIps.lookup(Buffer.from(hex, "hex"));
        if (!v || decodeNetns(v) !== netns) problems.push(`pod IP entry ${hex} is missing`);
      }
      const missing = (name: string, keys: string[]) =>
        keys.filter((hex) => !(maps.get(name) as BpfMap).lookup(Buffer.from(hex, "hex"))).length;
      const ports = missing(MAP_NAMES.ports, r.keys.ports);
      if (ports > 0) problems.push(`${ports} port entries are missing`);
      const cidrs = missing(MAP_NAMES.cidrs, r.keys.cidrs);
      if (cidrs > 0) problems.push(`${cidrs} CIDR entries are missing`);
      const ifaces = missing(MAP_NAMES.ifaces, r.keys.ifaces);
      if (ifaces > 0) problems.push(`${ifaces} interface entries are missing`);
    });
  } catch (err) {
    problems.push(`shared maps: ${(err as Error).message}`);
  }
  return problems;
}

/** Problems with the pod's netns link (inbound capture): [] when it runs `pinnedProg` there. */
function checkNetnsLink(
  root: string,
  rec: PodRecordData,
  pinnedProg: number | undefined,
): string[] {
  const name = NETNS_PROGRAM.name;
  let netnsIno: number;
  try {
    netnsIno = statSync(rec.netnsPath).ino;
  } catch {
    return [`network namespace ${rec.netnsPath} is gone`];
  }
  let link: Link;
  try {
    link = Link.openPinned(paths.podLink(root, rec.containerId, name));
  } catch {
    return [`link ${name} is missing`];
  }
  try {
    const problems: string[] = [];
    const info = link.info();
    const netns = netnsLinkInfo(link);
    if (netns.netnsIno === 0) problems.push(`link ${name} is detached from its network namespace`);
    else if (netns.netnsIno !== netnsIno) problems.push(`link ${name} is not on ${rec.netnsPath}`);
    if (netns.attachType !== NETNS_PROGRAM.attachType)
      problems.push(`link ${name} has attach type ${netns.attachType}`);
    if (pinnedProg !== undefined && info.progId !== pinnedProg)
      problems.push(`link ${name} runs program ${info.progId}, not the pinned ${pinnedProg}`);
    return problems;
  } catch (err) {
    return [`link ${name}: ${(err as Error).message}`];
  } finally {
    link.close();
  }
}

/** The cookie of a network namespace, in decimal as pod records keep it (netnsCookie). */
export function netnsCookieOf(netnsPath: string): string {
  return netnsCookie(netnsPath).toString();
}

/**
 * A view of this module for a caller that takes the datapath as a dependency (the plugin, the
 * installer), so it can be tested with a fake: the functions it names, with their own
 * parameters and results, which a fake may also answer asynchronously.
 */
export type DatapathView<K extends keyof DatapathModule> = {
  [F in K]: (
    ...args: Parameters<DatapathModule[F]>
  ) => ReturnType<DatapathModule[F]> | Promise<ReturnType<DatapathModule[F]>>;
};

/** This module's functions, by name (the public entry: what callers may take a view of). */
type DatapathModule = {
  [F in keyof typeof import("./index") as typeof import("./index")[F] extends (
    ...args: never[]
  ) => unknown
    ? F
    : never]: typeof import("./index")[F];
};

/** Every attached pod with its policy summary and counters. */
export function listPods(opts: DatapathOptions): AttachedPod[] {
  const root = opts.bpfRoot;
  const records = readAllRecords(root);
  if (records.length === 0 || !existsSync(paths.maps(root))) {
    return records.map((r) => ({ ...r, counters: null }));
  }
  const counters = openMap(root, MAP_NAMES.counters);
  // absent when the datapath was loaded by a version without the bypass (or its flow control)
  const [bypass, flow] = BYPASS_COUNTER_MAPS.map(({ map }) =>
    existsSync(paths.map(root, map)) ? openMap(root, map) : null,
  );
  try {
    return records.map((r) => {
      const key = netnsKey(BigInt(r.netnsCookie));
      const v = counters.lookup(key);
      const sums = v
        ? sumCounters(v, bypass?.lookup(key) ?? null, flow?.lookup(key) ?? null)
        : null;
      return {
        ...r,
        counters: sums
          ? (Object.fromEntries(Object.entries(sums).map(([k, n]) => [k, Number(n)])) as Record<
              CounterName,
              number
            >)
          : null,
      };
    });
  } finally {
    counters.close();
    bypass?.close();
    flow?.close();
  }
}

/**
 * Entries per shared map, by map name (socket storage has no keys to walk and is left out),
 * for status output and leak checks.
 */
export function mapEntryCounts(opts: DatapathOptions): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of Object.values(MAP_NAMES)) {
    if (STORAGE_MAPS.includes(name)) continue;
    const map = openMap(opts.bpfRoot, name);
    try {
      let n = 0;
      for (const _ of map.keys()) n++;
      out[name] = n;
    } finally {
      map.close();
    }
  }
  return out;
}

/** Container ids with state under bpfRoot (records or leftover directories), for GC. */
export function attachedContainerIds(opts: DatapathOptions): string[] {
  return pinnedContainerIds(opts.bpfRoot);
}

/**
 * Removes everything waggle holds under bpfRoot: every pod's attachment (links, map entries,
 * records), then the shared programs and maps, then the emptied root.
 * Keeps the shared pins (and throws) when a pod could not be detached, so no attached pod
 * is left pointing at programs that are gone. Used by `waggle uninstall`.
 */
export function removeDatapath(opts: DatapathOptions): { pods: number } {
  const ids = attachedContainerIds(opts);
  const failures: string[] = [];
  for (const id of ids) {
    try {
      detachPod(id, opts);
    } catch (err) {
      failures.push(`${id}: ${(err as Error).message}`);
    }
  }
  if (failures.length > 0) {
    throw new DatapathError(
      "ATTACH",
      `could not detach every pod (shared programs kept): ${failures.join("; ")}`,
    );
  }
  removeTree(paths.datapath(opts.bpfRoot));
  sweepStaging(opts.bpfRoot, 0); // uninstall: every staging copy goes, however young
  for (const dir of [paths.pods(opts.bpfRoot), opts.bpfRoot]) {
    if (listDir(dir).length === 0) removeTree(dir);
  }
  return { pods: ids.length };
}
