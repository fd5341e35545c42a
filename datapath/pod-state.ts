// What a pod's map entries and record are, given its settings, its CNI addresses and its netns
// as it is now: attachPod derives them once, refreshPod (follow.ts) again whenever the pod's
// interfaces, addresses or routes change. One derivation, so both agree entry for entry.
import type { RedirectSettings } from "../mesh/redirect-settings";
import { type MapEntry, policyEntries } from "./encode";
import { type PodInterface, podInterfaces, podSnapshot, routedCidrs } from "./interfaces";
import { MAP_NAMES } from "./layout";
import { type PodPolicy, podPolicy } from "./policy";
import { type PodRecordData, recordedPolicy } from "./record";

/** The pod's interfaces and the destinations routed through its excluded interfaces, now. */
export interface PodNetwork {
  interfaces: PodInterface[];
  excludedInterfaceCidrs: string[];
}

/** Reads the netns (throws when it is gone or unreadable). */
export function readPodNetwork(
  netnsPath: string,
  excludeInterfaces: readonly string[],
): PodNetwork {
  return withExcludedRoutes(netnsPath, podInterfaces(netnsPath), excludeInterfaces);
}

/** The netns's cookie and readPodNetwork's answer, with one trip into the netns for both. */
export function readPodNetns(
  netnsPath: string,
  excludeInterfaces: readonly string[],
): { cookie: bigint; network: PodNetwork } {
  const { cookie, interfaces } = podSnapshot(netnsPath);
  return { cookie, network: withExcludedRoutes(netnsPath, interfaces, excludeInterfaces) };
}

function withExcludedRoutes(
  netnsPath: string,
  interfaces: PodInterface[],
  excludeInterfaces: readonly string[],
): PodNetwork {
  const cidrs: string[] = [];
  for (const ifname of excludeInterfaces) cidrs.push(...routedCidrs(netnsPath, ifname));
  return { interfaces, excludedInterfaceCidrs: [...new Set(cidrs)] };
}

/** The parts of a pod record that follow from its policy and network. */
export type DerivedRecord = Pick<
  PodRecordData,
  "policy" | "inboundInterfaces" | "localAddresses" | "keys"
>;

export interface PodState {
  policy: PodPolicy;
  entries: MapEntry[];
  record: DerivedRecord;
}

/**
 * The policy, map entries and record fields of a pod. Throws an Error naming the offending
 * value when the settings or the network do not make a valid policy.
 */
export function podState(
  netns: bigint,
  settings: RedirectSettings,
  podIPs: readonly string[],
  network: PodNetwork,
): PodState {
  const { interfaces, excludedInterfaceCidrs } = network;
  const policy = podPolicy({
    settings,
    podIPs,
    interfaces,
    // Every global address of the pod is a "local destination" and an inbound key.
    localAddresses: interfaces.flatMap((i) => i.addresses),
    extraExcludeCidrs: excludedInterfaceCidrs,
  });
  const entries = policyEntries(netns, policy);
  return {
    policy,
    entries,
    record: {
      policy: recordedPolicy(policy, settings, excludedInterfaceCidrs),
      inboundInterfaces: interfaces
        .filter((i) => policy.inboundIfindexes.includes(i.ifindex))
        .map(({ ifname, ifindex }) => ({ ifname, ifindex })),
      localAddresses: policy.localAddresses,
      keys: {
        ports: keysOf(entries, MAP_NAMES.ports),
        cidrs: keysOf(entries, MAP_NAMES.cidrs),
        podIps: keysOf(entries, MAP_NAMES.podIps),
        ifaces: keysOf(entries, MAP_NAMES.ifaces),
      },
    },
  };
}

/** The hex keys of a pod's entries in one map. */
function keysOf(entries: { map: string; key: Buffer }[], map: string): string[] {
  return entries.filter((e) => e.map === map).map((e) => e.key.toString("hex"));
}
