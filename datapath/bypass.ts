// Socket bypass (docs/datapath.md, "Socket bypass"): the node's sk_msg link on the
// waggle_bypass sockhash (pinned under <bpfRoot>/datapath/links, updated in place by
// upgradePrograms), the node switch in waggle_node, and each pod's bypass counters entry.
// Which sockets join is decided in BPF (bpf/include/waggle/bypass.h); nothing here touches
// live connections: a socket stays in the map, and keeps its program, until it closes.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { attachSockmap, BpfMap, Link, Program, possibleCpus } from "ebpf-napi";
import { netnsKey, zeroCounters } from "./encode";
import { MAP_NAMES, NODE, STRUCTS } from "./layout";
import { BYPASS_PROGRAM, paths } from "./programs";
import { type BypassSupport, bypassSupport } from "./requirements";

/**
 * Attaches the pinned bypass program to the pinned sockhash (both in `datapath`'s maps and
 * progs directories) and pins the link under its links directory. Returns false, attaching
 * nothing, when the kernel has no sockmap links (before 6.10).
 */
export function createBypassLink(datapath: string): boolean {
  const linksDir = join(datapath, "links");
  mkdirSync(linksDir, { recursive: true });
  const prog = Program.openPinned(join(datapath, "progs", BYPASS_PROGRAM.name));
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

/** True when the node's bypass link is pinned. */
export function bypassLinkPinned(root: string): boolean {
  return existsSync(paths.link(root, BYPASS_PROGRAM.name));
}

/**
 * Puts `prog` into the node's bypass link (bpf_link_update; sockets already in the map keep
 * the program they joined with), or creates the link when an older version left none.
 * Returns whether the link's program changed or the link was made.
 */
export function swapBypassLink(root: string, prog: Program): boolean {
  const pin = paths.link(root, BYPASS_PROGRAM.name);
  if (!existsSync(pin)) return createBypassLink(paths.datapath(root));
  const link = Link.openPinned(pin);
  try {
    if (link.info().progId === prog.info().id) return false;
    link.update(prog);
    return true;
  } finally {
    link.close();
  }
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
}

/**
 * Decides and writes the node switch: on when asked for (absent: the kernel's default) and
 * the kernel can run the bypass and the link exists; off otherwise. Programs read it at each
 * connection's established time: switching off keeps live connections bypassed (moving a
 * bypassed direction back onto TCP mid-stream is what the design avoids), new ones use TCP.
 */
export function applyNodeBypass(root: string, requested: boolean | undefined): BypassState {
  const support = bypassSupport();
  const linked = bypassLinkPinned(root);
  const enabled = (requested ?? support.defaultOn) && support.available && linked;
  const value = Buffer.alloc(STRUCTS.node_settings.size);
  value.writeUInt32LE(enabled ? NODE.BYPASS : 0, STRUCTS.node_settings.fields.flags.offset);
  const map = BpfMap.openPinned(paths.map(root, MAP_NAMES.node));
  try {
    map.update(Buffer.alloc(4), value);
  } finally {
    map.close();
  }
  return { enabled, support, linked, requested };
}

/** Whether the node switch is on (false when the map is missing). */
export function nodeBypassEnabled(root: string): boolean {
  if (!existsSync(paths.map(root, MAP_NAMES.node))) return false;
  const map = BpfMap.openPinned(paths.map(root, MAP_NAMES.node));
  try {
    const v = map.lookup(Buffer.alloc(4));
    return (
      v !== null && (v.readUInt32LE(STRUCTS.node_settings.fields.flags.offset) & NODE.BYPASS) !== 0
    );
  } finally {
    map.close();
  }
}

/** A pod's zeroed bypass counters entry (map waggle_bypass_counters). */
export function bypassCountersEntry(netns: bigint): { map: string; key: Buffer; value: Buffer } {
  return {
    map: MAP_NAMES.bypassCounters,
    key: netnsKey(netns),
    value: zeroCounters(possibleCpus(), STRUCTS.bypass_counters),
  };
}
