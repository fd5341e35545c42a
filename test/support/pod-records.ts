// Pod records as attachPod writes them and listPods returns them, built from a few facts by
// the datapath's own policy, encoding and record (podRecord): for pure tests (status) and
// datapath fakes (the plugin's and the installer's).
import {
  type AttachedPod,
  type AttachRequest,
  COUNTER_NAMES,
  type CounterName,
  type PodRecordData,
  podRecord,
  podState,
  type UpgradeReport,
} from "../../datapath";
import { defaultRedirectSettings, type RedirectSettings } from "../../mesh/redirect-settings";

export function settings(patch: (s: RedirectSettings) => void = () => {}): RedirectSettings {
  const s = defaultRedirectSettings();
  patch(s);
  return s;
}

export function counters(
  values: Partial<Record<CounterName, number>> = {},
): Record<CounterName, number> {
  return Object.fromEntries(COUNTER_NAMES.map((c) => [c, values[c] ?? 0])) as Record<
    CounterName,
    number
  >;
}

export interface RecordFixture {
  containerId: string;
  pod?: { namespace: string; name: string; uid?: string };
  podIPs: string[];
  settings?: RedirectSettings;
  /** Routes of the excluded interfaces (attachPod reads them from the netns). */
  interfaceCidrs?: string[];
  counters?: Record<CounterName, number> | null;
  /** The pod's netns cookie (decimal); 4242 when the test does not care. */
  netnsCookie?: string;
}

/** A record as attachPod writes it, with counters as listPods adds them. */
export function attachedPod(f: RecordFixture): AttachedPod {
  const s = f.settings ?? settings();
  const netns = BigInt(f.netnsCookie ?? 4242);
  const state = podState(netns, s, f.podIPs, {
    interfaces: [{ ifname: "eth0", ifindex: 3, addresses: [] }],
    excludedInterfaceCidrs: f.interfaceCidrs ?? [],
  });
  const req = {
    containerId: f.containerId,
    netnsPath: `/var/run/netns/cni-${f.containerId.slice(0, 8)}`,
    ifname: "eth0",
    cgroupPath: `/sys/fs/cgroup/kubepods/pod-${f.containerId.slice(0, 8)}`,
    podIPs: f.podIPs,
    settings: s,
    ...(f.pod ? { pod: f.pod } : {}),
  };
  return {
    ...podRecord(req, netns, state),
    attachedAt: "2025-06-01T12:00:00.000Z",
    counters: f.counters === undefined ? counters() : f.counters,
  };
}

/** The record a fake datapath returns for an attach request, as attachPod would write it. */
export function recordOf(req: AttachRequest): PodRecordData {
  const { counters: _, ...rec } = attachedPod({
    containerId: req.containerId,
    podIPs: req.podIPs,
    settings: req.settings,
    ...(req.pod ? { pod: req.pod } : {}),
  });
  return { ...rec, netnsPath: req.netnsPath, ifname: req.ifname, cgroupPath: req.cgroupPath };
}

/** upgradePrograms' report on a node with nothing pinned yet and no pods. */
export const FRESH_LOAD: UpgradeReport = {
  action: "loaded",
  pods: 0,
  linksUpdated: 0,
  bypassLinkUpdated: false,
  skipped: [],
  skipReasons: {},
  changedPrograms: [],
  programIds: {},
  durationMs: 0,
};
