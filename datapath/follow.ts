// Following a meshed pod after its ADD: interfaces, addresses and routes that appear, change
// or go away in its netns (Multus adds secondary networks after the primary chain that holds
// waggle) change what Istio's rules would decide, so the pod's derived entries are derived
// again from its record (settings, CNI addresses) and its netns as it is now, and the maps
// and the record brought to that (docs/datapath.md, "Following the pod after ADD").
import { existsSync } from "node:fs";
import { BpfMap, netnsCookie } from "ebpf-napi";
import { decodeNetns } from "./encode";
import { DatapathError } from "./errors";
import { MAP_NAMES } from "./layout";
import { lockPod } from "./pod-lock";
import { podState, readPodNetwork } from "./pod-state";
import { paths } from "./programs";
import { type PodRecordData, readRecord, replaceRecord } from "./record";
import type { DatapathOptions } from "./shared";

export type RefreshOutcome =
  /** Entries and record now match the netns: `added`/`removed` keys (0/0: nothing changed). */
  | { status: "applied"; added: number; removed: number }
  /** Nothing to follow: not attached, netns gone (DEL pending), or an old record. */
  | { status: "skipped"; reason: string };

type KeyMap = keyof PodRecordData["keys"];

const KEY_MAPS: Record<KeyMap, string> = {
  ports: MAP_NAMES.ports,
  cidrs: MAP_NAMES.cidrs,
  podIps: MAP_NAMES.podIps,
  ifaces: MAP_NAMES.ifaces,
};

/**
 * Derives the pod's entries again from its record and its netns now, and applies the
 * difference: new entries and the policy first, then stale entries removed, the record
 * listing every key the maps may hold at each step (old and new while both may be there), so
 * a DEL at any moment removes everything. Runs under the pod's lock (pod-lock.ts).
 * @throws DatapathError when the netns cannot be read or the new state is invalid (nothing
 *   changed then).
 */
export function refreshPod(containerId: string, opts: DatapathOptions): RefreshOutcome {
  const root = opts.bpfRoot;
  const unlock = lockPod(root, containerId);
  if (!unlock) return { status: "skipped", reason: "not attached" };
  try {
    return refreshLocked(root, containerId);
  } finally {
    unlock();
  }
}

function refreshLocked(root: string, containerId: string): RefreshOutcome {
  const rec = readRecord(root, containerId);
  if (!rec) return { status: "skipped", reason: "not attached" };
  if (!rec.settings) {
    return {
      status: "skipped",
      reason: "attached by a waggle that did not record its settings (followed after its next ADD)",
    };
  }
  const netns = BigInt(rec.netnsCookie);
  if (!existsSync(rec.netnsPath) || !sameNetns(rec.netnsPath, netns)) {
    return { status: "skipped", reason: `network namespace ${rec.netnsPath} is gone` };
  }
  let state: ReturnType<typeof podState>;
  try {
    const network = readPodNetwork(rec.netnsPath, rec.settings.excludeInterfaces);
    state = podState(netns, rec.settings, rec.podIPs, network);
  } catch (err) {
    throw new DatapathError(
      "NETNS",
      `deriving container ${containerId}'s entries again failed`,
      err,
    );
  }
  const next: PodRecordData = { ...rec, ...state.record };
  const stale = Object.fromEntries(
    (Object.keys(KEY_MAPS) as KeyMap[]).map((k) => [
      k,
      rec.keys[k].filter((hex) => !next.keys[k].includes(hex)),
    ]),
  ) as Record<KeyMap, string[]>;
  const added = (Object.keys(KEY_MAPS) as KeyMap[]).reduce(
    (n, k) => n + next.keys[k].filter((hex) => !rec.keys[k].includes(hex)).length,
    0,
  );
  const removed = Object.values(stale).reduce((n, list) => n + list.length, 0);

  // 1. the record names old and new keys; 2. new entries and the policy (last, as at
  // attach); 3. stale entries go; 4. the record names the new keys only.
  if (added > 0) {
    replaceRecord(root, {
      ...next,
      keys: Object.fromEntries(
        (Object.keys(KEY_MAPS) as KeyMap[]).map((k) => [
          k,
          [...new Set([...rec.keys[k], ...next.keys[k]])],
        ]),
      ) as PodRecordData["keys"],
    });
  }
  withOpenMaps(root, (open) => {
    for (const e of state.entries) open(e.map).update(e.key, e.value);
    for (const k of Object.keys(KEY_MAPS) as KeyMap[]) {
      const map = open(KEY_MAPS[k]);
      for (const hex of stale[k]) {
        const key = Buffer.from(hex, "hex");
        // an address another pod holds now stays its own (as in detachPod)
        if (k === "podIps") {
          const owner = map.lookup(key);
          if (!owner || decodeNetns(owner) !== netns) continue;
        }
        map.delete(key);
      }
    }
  });
  if (JSON.stringify(next) !== JSON.stringify(rec)) replaceRecord(root, next);
  return { status: "applied", added, removed };
}

/** Whether the netns at path is still the one with this cookie (a path can be reused). */
function sameNetns(path: string, cookie: bigint): boolean {
  try {
    return netnsCookie(path) === cookie;
  } catch {
    return false;
  }
}

/** Runs fn with a function opening shared maps by name (each once), closing them after. */
function withOpenMaps(root: string, fn: (open: (name: string) => BpfMap) => void): void {
  const maps = new Map<string, BpfMap>();
  const open = (name: string): BpfMap => {
    let m = maps.get(name);
    if (!m) {
      m = BpfMap.openPinned(paths.map(root, name));
      maps.set(name, m);
    }
    return m;
  };
  try {
    fn(open);
  } finally {
    for (const m of maps.values()) m.close();
  }
}
