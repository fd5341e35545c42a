// ADD and DEL latency of the waggle executable over 100 meshed pods, measured the way a runtime
// sees it (process start to exit, inside the chain run by the libcni harness). Prints p50 and
// p95 per operation and which executable was measured (dist/waggle, or node over out/ while
// the single binary is absent or stale).
import "../support/hooks";
import { expect } from "chai";
import { CniNode, type CniPod } from "../support/cni-node";

const PODS = 100;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

describe("cni latency: waggle ADD and DEL over 100 pods", function () {
  this.timeout(900_000);
  let cni: CniNode;
  const times: Record<"ADD" | "DEL", number[]> = { ADD: [], DEL: [] };

  before(async () => {
    cni = await CniNode.create({
      onInvocation: (inv) => {
        if (inv.type === "waggle" && (inv.command === "ADD" || inv.command === "DEL")) {
          times[inv.command].push(inv.ms);
        }
      },
    });
  });
  after(async () => {
    await cni?.destroy();
  });

  it(`ADD and DEL of ${PODS} meshed pods, one at a time (p50, p95)`, async () => {
    const list = cni.chain("0.3.1");
    const pods: CniPod[] = [];
    try {
      for (let i = 0; i < PODS; i++) {
        const p = await cni.pod();
        pods.push(p);
        await cni.runtime.addNetworkList(list, p.rt);
      }
      for (const p of pods) await cni.runtime.delNetworkList(list, p.rt);
    } finally {
      for (const p of pods) await p.sandbox.destroy();
    }
    const report: string[] = [];
    for (const op of ["ADD", "DEL"] as const) {
      const sorted = [...times[op]].sort((a, b) => a - b);
      expect(sorted).to.have.length(PODS);
      const p50 = percentile(sorted, 50);
      const p95 = percentile(sorted, 95);
      report.push(`${op} p50 ${p50.toFixed(0)} ms, p95 ${p95.toFixed(0)} ms`);
      // kubelet allows 2 minutes per sandbox; anything near a second is a regression here
      expect(p95, `${op} p95`).to.be.below(2000);
    }
    console.log(
      `      waggle (${cni.plugins.waggle.kind}: ${cni.plugins.waggle.path}): ${report.join("; ")}`,
    );
  });
});
