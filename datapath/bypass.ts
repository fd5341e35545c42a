// Socket bypass (docs/datapath.md, "Socket bypass"): the node's sk_msg link on the
// waggle_bypass sockhash (pinned under <bpfRoot>/datapath/links, updated in place by
// upgradePrograms), its flow control's tracepoint link beside it while the switch is on (replaced by upgrades), the
// node switch and backlog bound in waggle_node, and each pod's bypass counters entry.
// Which sockets join is decided in BPF (bpf/include/waggle/bypass.h); nothing here touches
// live connections: a socket stays in the map, and keeps its program, until it closes.
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  attachSockmap,
  attachTracing,
  BpfMap,
  Link,
  Program,
  possibleCpus,
  updatePinnedMaps,
} from "ebpf-napi";
import { randomHex } from "../base/unique-name";
import { SOCKET_BYPASS_BACKLOG } from "../mesh/config";
import { netnsKey, zeroCounters } from "./encode";
import { MAP_NAMES, NODE, STRUCTS } from "./layout";
import { BYPASS_PROGRAM, BYPASS_RECV_PROGRAM, paths } from "./programs";
import { type BypassSupport, bypassSupport } from "./requirements";

/**
 * Attaches the pinned flow control program (progPath) as a tracing link and pins it at `pin`,
 * atomically in place of a link pinned there before (rename over it: the old link goes with
 * its last holder, so reads are never untracked for longer than the swap).
 */
function pinRecvLink(progPath: string, pin: string): void {
  const prog = Program.openPinned(progPath);
  try {
    const link = attachTracing(prog, BYPASS_RECV_PROGRAM.attachType);
    const staged = `${pin}-new-${randomHex(4)}`;
    try {
      link.pin(staged);
      renameSync(staged, pin);
    } finally {
      link.close();
      rmSync(staged, { force: true });
    }
  } finally {
    prog.close();
  }
}

/**
 * Makes the node's bypass link from the pinned program (in progsDir, by default `datapath`'s
 * progs directory) and map: the bypass program on the sockhash, pinned under `datapath`'s
 * links directory. It costs nothing while no socket is in the map. The flow control's
 * tracepoint link, which runs on every socket read of the node, is made only while the node's
 * switch is on (applyNodeBypass). Returns false, attaching nothing, when the flow control
 * program is not pinned (the kernel could not load it: no BTF) or the kernel has no sockmap
 * links (before 6.10): no bypass without both.
 */
export function createBypassLink(datapath: string, progsDir = join(datapath, "progs")): boolean {
  const recvProg = join(progsDir, BYPASS_RECV_PROGRAM.name);
  if (!existsSync(recvProg)) return false;
  const linksDir = join(datapath, "links");
  mkdirSync(linksDir, { recursive: true });
  const prog = Program.openPinned(join(progsDir, BYPASS_PROGRAM.name));
  const map = BpfMap.openPinned(join(datapath, "maps", BYPASS_PROGRAM.map));
  try {
    let link: Link;
    try {
      link = attachSockmap(prog, map, BYPASS_PROGRAM.attachType);
    } catch (err) {
      if ((err as { code?: string }).code === "EINVAL") return false; // no sockmap links
      throw err;
    }
    try {
      link.pin(join(linksDir, BYPASS_PROGRAM.name));
    } finally {
      link.close();
    }
    return true;
  } finally {
    prog.close();
    map.close();
  }
}

/**
 * True when the node can run the bypass: its sockhash link is pinned and the flow control's
 * program is loaded (its tracepoint link follows the switch).
 */
export function bypassLinkPinned(root: string): boolean {
  return (
    existsSync(paths.link(root, BYPASS_PROGRAM.name)) &&
    existsSync(paths.prog(root, BYPASS_RECV_PROGRAM.name))
  );
}

/** The program id a pinned link runs (null when nothing is pinned there). */
export function linkProgId(pin: string): number | null {
  if (!existsSync(pin)) return null;
  const link = Link.openPinned(pin);
  try {
    return link.info().progId;
  } finally {
    link.close();
  }
}

/**
 * Puts the programs of `progsDir` (an upgrade's freshly pinned set) into the node's bypass
 * links: the sockhash's in place (bpf_link_update; sockets already in the map keep the
 * program they joined with), the flow control's by pinning a new link over the old (tracing
 * links cannot be updated; reads in the instant between are simply not tracked, an
 * underestimate the next read corrects). Creates both when an older version left them out.
 * Returns whether a link's program changed or a link was made.
 */
export function swapBypassLink(root: string, progsDir: string): boolean {
  const pin = paths.link(root, BYPASS_PROGRAM.name);
  const recvPin = paths.link(root, BYPASS_RECV_PROGRAM.name);
  const recvProg = join(progsDir, BYPASS_RECV_PROGRAM.name);
  if (!existsSync(pin) || !existsSync(recvProg))
    return createBypassLink(paths.datapath(root), progsDir);
  let changed = false;
  const prog = Program.openPinned(join(progsDir, BYPASS_PROGRAM.name));
  try {
    const link = Link.openPinned(pin);
    try {
      if (link.info().progId !== prog.info().id) {
        link.update(prog);
        changed = true;
      }
    } finally {
      link.close();
    }
  } finally {
    prog.close();
  }
  // the flow control's link exists only while the switch is on
  if (!existsSync(recvPin)) return changed;
  const recv = Program.openPinned(recvProg);
  try {
    if (linkProgId(recvPin) !== recv.info().id) {
      pinRecvLink(recvProg, recvPin);
      changed = true;
    }
  } finally {
    recv.close();
  }
  return changed;
}

/** The node's bypass state as the datapath runs it and why. */
export interface BypassState {
  /** The programs let sockets join (waggle_node has NODE_BYPASS). */
  enabled: boolean;
  /** The kernel check (requirements.ts). */
  support: BypassSupport;
  /** The bypass link is pinned. */
  linked: boolean;
  /** The switch asked for: true, false, or undefined (bypassSupport().defaultOn). */
  requested: boolean | undefined;
  /** Bytes a bypassed receiver may leave unread before its senders fall back to TCP. */
  backlogMax: number;
}

/** The backlog bound to write: the one asked for (within SOCKET_BYPASS_BACKLOG), or the default. */
export function bypassBacklogMax(requested: number | undefined): number {
  const { min, max } = SOCKET_BYPASS_BACKLOG;
  if (requested === undefined) return SOCKET_BYPASS_BACKLOG.default;
  if (!Number.isInteger(requested) || requested < min || requested > max)
    throw new RangeError(
      `socket bypass backlog ${requested} is not a whole number from ${min} to ${max}`,
    );
  return requested;
}

/**
 * Decides and writes the node switch and the backlog bound (`backlog` bytes, absent: the
 * default): on when asked for (absent: the kernel's default) and
 * the kernel can run the bypass and the link exists; off otherwise. Programs read it at each
 * connection's established time: switching off keeps live connections bypassed (moving a
 * bypassed direction back onto TCP mid-stream is what the design avoids), new ones use TCP.
 */
export function applyNodeBypass(
  root: string,
  requested: boolean | undefined,
  backlog?: number,
): BypassState {
  const support = bypassSupport();
  const linked = bypassLinkPinned(root);
  const enabled = (requested ?? support.defaultOn) && support.available && linked;
  const backlogMax = bypassBacklogMax(backlog);
  const recvPin = paths.link(root, BYPASS_RECV_PROGRAM.name);
  // on: the flow control reads every socket read before any socket may join
  if (enabled && !existsSync(recvPin))
    pinRecvLink(paths.prog(root, BYPASS_RECV_PROGRAM.name), recvPin);
  const value = Buffer.alloc(STRUCTS.node_settings.size);
  value.writeUInt32LE(enabled ? NODE.BYPASS : 0, STRUCTS.node_settings.fields.flags.offset);
  value.writeUInt32LE(backlogMax, STRUCTS.node_settings.fields.bypass_backlog_max.offset);
  updatePinnedMaps([{ pin: paths.map(root, MAP_NAMES.node), key: Buffer.alloc(4), value }]);
  // off: no program on the node's socket reads (connections bypassed before keep their
  // bytes; their senders' backlogs no longer shrink, so they move to TCP at the bound and
  // stay there: TCP's flow control, never an unbounded queue)
  if (!enabled) rmSync(recvPin, { force: true });
  return { enabled, support, linked, requested, backlogMax };
}

/**
 * The node settings as the programs read them: the switch (false when the map is missing)
 * and the backlog bound (0 in the map, written by a loader that predates it: the default).
 */
export function nodeBypassSettings(root: string): { enabled: boolean; backlogMax: number } {
  const settings = { enabled: false, backlogMax: SOCKET_BYPASS_BACKLOG.default };
  if (!existsSync(paths.map(root, MAP_NAMES.node))) return settings;
  const map = BpfMap.openPinned(paths.map(root, MAP_NAMES.node));
  try {
    const v = map.lookup(Buffer.alloc(4));
    if (v === null) return settings;
    const { flags, bypass_backlog_max } = STRUCTS.node_settings.fields;
    settings.enabled = (v.readUInt32LE(flags.offset) & NODE.BYPASS) !== 0;
    settings.backlogMax = v.readUInt32LE(bypass_backlog_max.offset) || settings.backlogMax;
    return settings;
  } finally {
    map.close();
  }
}

/** The per-pod bypass counters maps, with the struct of each. */
export const BYPASS_COUNTER_MAPS = [
  { map: MAP_NAMES.bypassCounters, struct: STRUCTS.bypass_counters },
  { map: MAP_NAMES.bypassFlowCounters, struct: STRUCTS.bypass_flow_counters },
] as const;

/** A pod's zeroed bypass counters entries (waggle_bypass_counters, waggle_bypass_flow_counters). */
export function bypassCountersEntries(
  netns: bigint,
): { map: string; key: Buffer; value: Buffer }[] {
  return BYPASS_COUNTER_MAPS.map(({ map, struct }) => ({
    map,
    key: netnsKey(netns),
    value: zeroCounters(possibleCpus(), struct),
  }));
}
