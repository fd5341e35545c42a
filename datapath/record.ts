// Per-pod state that outlives the plugin process and lives with the pins: a one-element
// array map pinned at <bpfRoot>/pods/<containerId>/record whose value is the JSON of what
// attachPod did (netns cookie, paths, every map key it wrote, the links it pinned). detachPod
// undoes exactly that, even when the netns is long gone.
import { existsSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BpfMap } from "ebpf-napi";
import type { RedirectSettings } from "../mesh/redirect-settings";
import { portRanges, portSets } from "./encode";
import type { PortKind } from "./layout";
import { flagNames, type PodPolicy } from "./policy";
import { containerIdOfDir, paths } from "./programs";
import { listDir } from "./shared-fs";

export const RECORD_VERSION = 3;

/** What attachPod wrote for one container. Keys are hex strings of the exact key bytes. */
export interface PodRecordData {
  version: number;
  containerId: string;
  netnsCookie: string; // decimal u64
  netnsPath: string;
  ifname: string;
  cgroupPath: string;
  podIPs: string[];
  pod?: { namespace: string; name: string; uid?: string };
  /** Policy flags by name, and the set sizes, for status output. */
  policy: {
    flags: string[];
    proxyUid: number;
    proxyGid: number;
    ports: number;
    cidrs: number;
    /** Each port set as compact ranges ("15020-15021,15090"), by kind (absent: empty). */
    portSets?: Partial<Record<PortKind, string>>;
    /** excludeInterfaces of the settings (absent in records written before it was kept). */
    excludeInterfaces?: string[];
    /** Destinations routed through those interfaces, excluded from outbound capture. */
    excludedInterfaceCidrs: string[];
  };
  /**
   * The interfaces whose arriving traffic is captured inbound: every interface of the pod at
   * attach time but lo and the excludeInterfaces (X1: no inbound capture there).
   */
  inboundInterfaces: { ifname: string; ifindex: number }[];
  /** Every local address of the pod at attach time (inbound lookup, "local destination"). */
  localAddresses: string[];
  keys: {
    ports: string[];
    cidrs: string[];
    podIps: string[];
    ifaces: string[];
  };
  /**
   * The settings the pod was attached with, so its entries can be derived again when its
   * interfaces, addresses or routes change (absent in records written before they were kept:
   * such a pod is not followed).
   */
  settings?: RedirectSettings;
  /** The programs linked: the cgroup ones and the netns one (pinned as pods/<id>/<name>). */
  links: string[];
  attachedAt: string;
}

/** What a pod's record keeps of its policy: flags by name, set sizes, the port sets, the exclusions. */
export function recordedPolicy(
  policy: PodPolicy,
  settings: Pick<RedirectSettings, "excludeInterfaces">,
  excludedInterfaceCidrs: string[],
): PodRecordData["policy"] {
  return {
    flags: flagNames(policy.flags),
    proxyUid: policy.proxyUid,
    proxyGid: policy.proxyGid,
    ports: policy.ports.length,
    cidrs: policy.cidrs.length,
    portSets: Object.fromEntries(
      [...portSets(policy.ports)].map(([kind, ports]) => [kind, portRanges(ports)]),
    ),
    excludeInterfaces: [...settings.excludeInterfaces],
    excludedInterfaceCidrs,
  };
}

const LENGTH_BYTES = 4;

export function encodeRecord(rec: PodRecordData): Buffer {
  const json = Buffer.from(JSON.stringify(rec));
  const size = Math.ceil((json.length + LENGTH_BYTES) / 8) * 8;
  const b = Buffer.alloc(size);
  b.writeUInt32LE(json.length, 0);
  json.copy(b, LENGTH_BYTES);
  return b;
}

export function decodeRecord(b: Buffer): PodRecordData {
  const len = b.readUInt32LE(0);
  if (len + LENGTH_BYTES > b.length) throw new Error("pod record is truncated");
  const rec = JSON.parse(b.subarray(LENGTH_BYTES, LENGTH_BYTES + len).toString()) as PodRecordData;
  if (rec.version !== RECORD_VERSION)
    throw new Error(`pod record version ${rec.version} is unknown`);
  return rec;
}

const KEY0 = Buffer.alloc(4);

/** The pin a replacement record is written to before it is renamed over the record. */
export const NEXT_RECORD = "record-next";

/**
 * Replaces a pod's record at once (pinned beside it, then renamed over it: bpffs renames
 * atomically), so a concurrent reader sees the old record or the new one. Throws ENOENT when
 * the pod directory is gone (the pod was detached).
 */
export function replaceRecord(root: string, rec: PodRecordData): void {
  const next = join(paths.pod(root, rec.containerId), NEXT_RECORD);
  writeRecord(root, rec, next);
  try {
    renameSync(next, paths.podRecord(root, rec.containerId));
  } catch (err) {
    rmSync(next, { force: true });
    throw err;
  }
}

/** Creates the record map and pins it (the pod directory must exist). */
export function writeRecord(
  root: string,
  rec: PodRecordData,
  pin = paths.podRecord(root, rec.containerId),
): void {
  const value = encodeRecord(rec);
  const map = BpfMap.create({
    type: "array",
    name: "waggle_pod",
    keySize: 4,
    valueSize: value.length,
    maxEntries: 1,
  });
  try {
    map.update(KEY0, value);
    map.pin(pin);
  } finally {
    map.close();
  }
}

/** The record of a container, or null when there is none. Throws when it is unreadable. */
export function readRecord(root: string, containerId: string): PodRecordData | null {
  const pin = paths.podRecord(root, containerId);
  if (!existsSync(pin)) return null;
  const map = BpfMap.openPinned(pin);
  try {
    const value = map.lookup(KEY0);
    if (value === null) throw new Error(`pod record ${pin} is empty`);
    return decodeRecord(value);
  } finally {
    map.close();
  }
}

/** Every readable record under root (unreadable ones are skipped). */
export function readAllRecords(root: string): PodRecordData[] {
  const out: PodRecordData[] = [];
  for (const dir of listDir(paths.pods(root))) {
    try {
      const rec = readRecord(root, containerIdOfDir(dir));
      if (rec) out.push(rec);
    } catch {
      // a damaged record: detachPod(id) still removes what the directory holds
    }
  }
  return out;
}
