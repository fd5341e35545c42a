// The bench's node-cost part (issue 16) end to end, tiny: 3 meshed pods attached one by one
// with probes at 1 and 3, then a burst of 3 ADDs and 3 DELs, through the real CNI chain. Every
// ADD and DEL must succeed, every waggle process must have its rusage, and nothing the run
// made (netns, cgroup, bpffs root, directories) may be left behind.
import "../support/hooks";
import { expect } from "chai";
import { kernelBytesPerPod, type NodeCostPlan } from "../../bench/node-cost";
import { measureNodeCost } from "../../bench/node-cost-run";
import { runChecked } from "../support/command";
import { RUN_TAG } from "../support/names";
import { liveResources } from "../support/resources";

const PLAN: NodeCostPlan = { samples: 2, scalePods: 3, checkpoints: [1, 3], probes: 1, burst: 3 };

async function runNetns(): Promise<string[]> {
  return (await runChecked("ip", ["netns", "list"]))
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter((n) => n.includes(RUN_TAG));
}

describe("bench node cost: scale and burst through the CNI chain, tiny", function () {
  this.timeout(180_000);

  it("times every ADD and DEL with its rusage, frees the pods' kernel memory, and leaves nothing behind", async () => {
    const netnsBefore = await runNetns();
    const resourcesBefore = liveResources();
    const lines: string[] = [];
    const { nodeCost: r, setup } = await measureNodeCost(PLAN, 1, (l) => lines.push(l));

    expect(r.version).to.match(/cniVersion/);
    for (const xs of [
      r.floor.nodeE0,
      r.floor.waggleVersion,
      r.meshedAdd,
      r.meshedDel,
      r.unmeshedAdd,
    ]) {
      expect(xs).to.have.length(PLAN.samples);
      for (const x of xs) {
        expect(x.ms).to.be.above(0);
        expect(x.rssKiB, "peak RSS recorded").to.be.above(1024);
        expect(x.cpuS).to.be.a("number");
      }
    }
    expect(r.scaleAdds.map((a) => a.pods)).to.deep.equal([0, 1, 2]);
    expect(
      r.checkpoints.map((c) => [c.pods, c.add.length, c.del.length, c.attachMs?.length]),
    ).to.deep.equal([
      [1, 1, 1, 1],
      [3, 1, 1, 1],
    ]);
    const km = r.kernelMemory;
    expect(km?.pods).to.equal(3);
    expect(km?.linksPerPod, "cgroup links and the netns link").to.be.above(1);
    expect(km?.recordMapBytes).to.be.above(0);
    expect(km?.sharedMaps.map((m) => m.name)).to.include("waggle_policy");
    expect(kernelBytesPerPod(km as NonNullable<typeof km>)).to.be.above(0);

    const b = r.burst;
    expect(b?.add.failures, "every burst ADD succeeded").to.deep.equal([]);
    expect(b?.del.failures, "every burst DEL succeeded").to.deep.equal([]);
    expect(b?.add.waggle).to.have.length(3);
    expect(b?.del.waggle).to.have.length(3);
    expect(b?.add.chainCpuS).to.be.above(0);
    expect(setup?.waggleAttachMs).to.have.length(1);

    expect(await runNetns(), "no pod netns left").to.deep.equal(netnsBefore);
    expect(liveResources(), "no tracked resource left").to.deep.equal(resourcesBefore);
  });
});
