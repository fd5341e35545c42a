// A tenant's annotations against dist/waggle: six pods listing 40,000 excluded ports each (the
// size that once filled the node-wide port map) take a bounded handful of map entries, and
// another pod is meshed after them; an IP-range annotation of 256 ranges is taken and one of
// 257 is refused with code 101 naming the annotation, attaching nothing.
import "../support/hooks";
import { expect } from "chai";
import {
  describeRun,
  MESHED_POD_ANNOTATIONS,
  type PodRequest,
  podAttachments,
  podCommand,
  rootState,
} from "../support/cni-binary";
import { useReliabilityBench } from "../support/reliability";

// Two in the short run (each ADD parses a 240 KB annotation); WAGGLE_GREEDY_PODS=6 is the node
// that once filled the port map.
const GREEDY_PODS = Number(process.env.WAGGLE_GREEDY_PODS ?? 2);
const EXCLUDE_OUTBOUND = "traffic.sidecar.istio.io/excludeOutboundPorts";
const EXCLUDE_RANGES = "traffic.sidecar.istio.io/excludeOutboundIPRanges";

/** Entries of every shared map together. */
function totalEntries(root: string): number {
  return Object.values(rootState(root).mapEntries).reduce((a, b) => a + b, 0);
}

function ranges(n: number): string {
  return Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`).join(",");
}

describe("reliability: tenant limits through dist/waggle", function () {
  this.timeout(300_000);
  const fixture = useReliabilityBench(GREEDY_PODS + 1);
  const added: PodRequest[] = [];

  afterEach(async () => {
    for (const req of added.splice(0)) await podCommand("DEL", req);
  });

  async function add(req: PodRequest) {
    const r = await podCommand("ADD", req);
    if (r.outcome === "ok") added.push(req);
    return r;
  }

  it(`${GREEDY_PODS} pods excluding 40,000 ports each take a bounded number of entries; another pod is meshed after them`, async () => {
    const ports = Array.from({ length: 40_000 }, (_, i) => 20_000 + i).join(",");
    expect(ports.length).to.be.above(200_000); // inside Kubernetes' 256 KiB annotation limit
    const plain = fixture.bench.request(fixture.bench.pods[GREEDY_PODS]);
    const before = totalEntries(fixture.bench.root.path);
    const perPod: number[] = [];
    for (const pod of fixture.bench.pods.slice(0, GREEDY_PODS)) {
      const start = totalEntries(fixture.bench.root.path);
      const r = await add(
        fixture.bench.request(pod, {
          annotations: { ...MESHED_POD_ANNOTATIONS, [EXCLUDE_OUTBOUND]: ports },
        }),
      );
      expect(r.outcome, describeRun(r)).to.equal("ok");
      perPod.push(totalEntries(fixture.bench.root.path) - start);
    }
    // 40,000 ports are a bitmap: a greedy pod costs what a plain one does, a few entries.
    expect(Math.max(...perPod), `entries per greedy pod: ${perPod}`).to.be.at.most(16);
    const last = await add(plain);
    expect(last.outcome, describeRun(last)).to.equal("ok");
    expect(podAttachments(fixture.bench.pods[GREEDY_PODS])).to.have.length(11);
    expect(totalEntries(fixture.bench.root.path) - before).to.be.at.most(16 * (GREEDY_PODS + 1));
  });

  it("256 excluded IP ranges are taken; 257 are refused with code 101 naming the annotation, attaching nothing", async () => {
    const pod = fixture.bench.pods[0];
    const ok = await add(
      fixture.bench.request(pod, {
        annotations: { ...MESHED_POD_ANNOTATIONS, [EXCLUDE_RANGES]: ranges(256) },
      }),
    );
    expect(ok.outcome, describeRun(ok)).to.equal("ok");
    for (const req of added.splice(0)) await podCommand("DEL", req);
    const refused = await add(
      fixture.bench.request(pod, {
        annotations: { ...MESHED_POD_ANNOTATIONS, [EXCLUDE_RANGES]: ranges(257) },
      }),
    );
    expect(refused.outcome, describeRun(refused)).to.equal("cni-error");
    expect(refused.code).to.equal(101);
    expect(refused.stdout).to.contain(EXCLUDE_RANGES);
    expect(fixture.bench.leaks()).to.deep.equal([]);
  });
});
