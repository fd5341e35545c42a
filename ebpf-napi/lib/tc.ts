// TC (clsact) programs on an interface inside a network namespace. The addon enters the netns
// on a dedicated native thread per call (never on the Node or libuv threads).
import { invalidArgument } from "./errors";
import { native, type TcTarget } from "./native";
import type { Program } from "./program";

export type TcDirection = "ingress" | "egress";

/** An interface, by name, in a netns given by path (e.g. /run/netns/x; default: ours). */
export interface TcInterface {
  netns?: string;
  ifname: string;
}

/** One filter slot of the clsact hook: direction, priority (1..65535) and handle. */
export interface TcFilterId extends TcInterface {
  direction: TcDirection;
  priority: number;
  handle: number;
}

/** Options of tcAttach: priority and handle default to kernel-chosen values. */
export interface TcAttachOptions extends TcInterface {
  direction: TcDirection;
  prog: Program;
  priority?: number;
  handle?: number;
  /** Replace the program at an existing priority/handle (both required) instead of failing EEXIST. */
  replace?: boolean;
}

/** A filter as attached: where it sits and which program runs there. */
export interface TcFilter extends TcFilterId {
  progId: number;
}

function target(
  opts: TcInterface & { direction: TcDirection },
  priority = 0,
  handle = 0,
): TcTarget {
  if (opts.direction !== "ingress" && opts.direction !== "egress") {
    throw invalidArgument("bpf_tc", `direction must be ingress or egress, not ${opts.direction}`);
  }
  if (!Number.isInteger(priority) || priority < 0 || priority > 0xffff) {
    throw invalidArgument("bpf_tc", `priority ${priority} is not in 1..65535`);
  }
  if (!Number.isInteger(handle) || handle < 0 || handle > 0xffffffff) {
    throw invalidArgument("bpf_tc", `handle ${handle} is not a u32`);
  }
  return {
    netns: opts.netns ?? null,
    ifname: opts.ifname,
    direction: opts.direction,
    priority,
    handle,
  };
}

/**
 * Attaches prog as a direct-action bpf filter on the interface's clsact hook, creating the
 * clsact qdisc if missing (bpf_tc_hook_create + bpf_tc_attach). Returns the slot it took.
 */
export function tcAttach(opts: TcAttachOptions): TcFilter {
  const t = target(opts, opts.priority ?? 0, opts.handle ?? 0);
  const r = native().tcAttach(t, opts.prog.fd, opts.replace ?? false);
  return { netns: opts.netns, ifname: opts.ifname, direction: opts.direction, ...r };
}

/** The id of the program in that filter slot, or null when the slot is empty (bpf_tc_query). */
export function tcQuery(id: TcFilterId): number | null {
  return native().tcQuery(target(id, id.priority, id.handle));
}

/**
 * Removes the filter in that slot (bpf_tc_detach); BpfError ENOENT when there is none
 * (also when the interface has no clsact qdisc).
 */
export function tcDetach(id: TcFilterId): void {
  native().tcDetach(target(id, id.priority, id.handle));
}

/**
 * Deletes the interface's clsact qdisc with all its filters, both directions
 * (bpf_tc_hook_destroy); BpfError ENOENT when it has none.
 */
export function tcDestroyHook(iface: TcInterface): void {
  native().tcHookDestroy(iface.netns ?? null, iface.ifname);
}
