// No pod's settings can use up a map every pod shares (a tenant once filled the port map with
// six pods listing 40,000 ports each, and every later meshed ADD failed with E2BIG). Port sets
// are one bitmap entry per pod and kind; IP-range lists are bounded per pod, and the maps are
// sized for every pod at those bounds.
import { expect } from "chai";
import { BpfMap } from "ebpf-napi";
import {
  detachPod,
  ensureSharedPrograms,
  MAP_CAPACITY,
  MAP_NAMES,
  mapEntryCounts,
  paths,
} from "../../datapath";
import { defaultRedirectSettings, MAX_CIDRS_PER_ANNOTATION } from "../../mesh/redirect-settings";
import { createPod, type Pod } from "../support/pod";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";

/** The settings a hostile tenant can write: 40,000 ports excluded, the most IP ranges allowed. */
function greedySettings() {
  const s = defaultRedirectSettings();
  s.outbound.excludePorts = Array.from({ length: 40_000 }, (_, i) => 20_000 + i);
  s.outbound.includePorts = Array.from({ length: 10_000 }, (_, i) => 1_000 + i);
  s.inbound.excludePorts = Array.from({ length: 30_000 }, (_, i) => 30_000 + i);
  s.outbound.excludeIPRanges = Array.from(
    { length: MAX_CIDRS_PER_ANNOTATION },
    (_, i) => `10.${i}.0.0/16`,
  );
  s.outbound.includeIPRanges = Array.from(
    { length: MAX_CIDRS_PER_ANNOTATION },
    (_, i) => `172.${16 + (i >> 8)}.${i & 255}.0/24`,
  );
  return s;
}

describe("datapath: one pod's settings cannot use up the shared maps", function () {
  this.timeout(120_000);
  const PODS = 8;
  let root: BpfRoot;
  const pods: Pod[] = [];

  before(async () => {
    root = new BpfRoot();
    for (let i = 0; i < PODS; i++) pods.push(await createPod({ label: `greedy ${i}` }));
  });
  after(async () => {
    for (const pod of pods) await pod.destroy();
    root?.destroy();
  });

  it(`${PODS} pods with 80,000 listed ports and 512 IP ranges each all attach, each holding at most 4 port-set entries; a default pod still attaches`, () => {
    ensureSharedPrograms(root.opts);
    const ids: string[] = [];
    for (const pod of pods.slice(0, PODS - 1)) {
      const rec = attachTestPod(pod, root.opts, { settings: greedySettings() });
      expect(rec.keys.ports.length).to.be.at.most(4);
      expect(rec.keys.cidrs).to.have.length(2 * MAX_CIDRS_PER_ANNOTATION);
      ids.push(rec.containerId);
    }
    const counts = mapEntryCounts(root.opts);
    expect(counts[MAP_NAMES.ports]).to.equal(3 * (PODS - 1));
    expect(counts[MAP_NAMES.cidrs]).to.equal(2 * MAX_CIDRS_PER_ANNOTATION * (PODS - 1));

    ids.push(attachTestPod(pods[PODS - 1], root.opts).containerId);
    for (const id of ids) detachPod(id, root.opts);
    expect(mapEntryCounts(root.opts)[MAP_NAMES.ports]).to.equal(0);
  });

  it("the shared maps are sized for every pod at these limits", () => {
    const maxEntries = (name: string) => {
      const map = BpfMap.openPinned(paths.map(root.path, name));
      try {
        return map.info.maxEntries;
      } finally {
        map.close();
      }
    };
    expect(maxEntries(MAP_NAMES.policy)).to.equal(MAP_CAPACITY.pods);
    expect(maxEntries(MAP_NAMES.ports)).to.equal(MAP_CAPACITY.pods * 4);
    expect(maxEntries(MAP_NAMES.cidrs)).to.equal(MAP_CAPACITY.pods * MAP_CAPACITY.cidrsPerPod);
    expect(MAP_CAPACITY.cidrsPerPod).to.be.at.least(3 * MAX_CIDRS_PER_ANNOTATION);
  });
});
