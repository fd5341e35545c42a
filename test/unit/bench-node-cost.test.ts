import { expect } from "chai";
import { main } from "../../bench/main";
import {
  busyFraction,
  checkpointsFor,
  childrenCpuS,
  flatness,
  type KernelMemory,
  kernelBytesPerPod,
  meminfoBytes,
  type NodeCostResults,
  nodeCostTargets,
  type ProcessCost,
  parseRusage,
  parseSlabBytes,
  peakRssMiB,
  percentiles,
  slope,
} from "../../bench/node-cost";
import { applyOverrides, estimateSeconds, fullPlan, quickPlan, setupPlan } from "../../bench/plan";
import { renderReport } from "../../bench/report";
import type { BenchResults } from "../../bench/runner";
import { lineChartSvg } from "../../bench/svg";

const cost = (ms: number, rssMiB = 50): ProcessCost => ({
  ms,
  rssKiB: rssMiB * 1024,
  cpuS: ms / 2000,
});
const costs = (...ms: number[]) => ms.map((m) => cost(m));

function kernel(over: Partial<KernelMemory> = {}): KernelMemory {
  return {
    pods: 250,
    sharedMapsBytesPerPod: 3000,
    recordMapBytes: 1600,
    linksPerPod: 11,
    programBytesPerPod: 300,
    slabBytesPerPod: 20_000,
    percpuBytesPerPod: 1000,
    driftBytes: 4096,
    sharedMaps: [{ name: "waggle_policy", type: "hash", maxEntries: 16384, memlockBytes: 300_000 }],
    ...over,
  };
}

function nodeCost(over: Partial<NodeCostResults> = {}): NodeCostResults {
  return {
    plan: { samples: 3, scalePods: 250, checkpoints: [1, 250], probes: 3, burst: 4 },
    binary: "dist: /x/dist/waggle",
    version: '{"cniVersion":"1.1.0"}',
    floor: { nodeE0: costs(18, 19, 20), waggleVersion: costs(22, 23, 24) },
    meshedAdd: costs(35, 38, 45),
    meshedDel: costs(25, 28, 29),
    unmeshedAdd: costs(26, 27, 31),
    scaleAdds: [
      { pods: 0, ms: 37 },
      { pods: 1, ms: 38 },
      { pods: 2, ms: 39 },
    ],
    checkpoints: [
      { pods: 1, add: costs(36, 38, 40), del: costs(27, 28, 29) },
      { pods: 250, add: costs(37, 39, 41), del: costs(27, 29, 30) },
    ],
    kernelMemory: kernel(),
    burst: {
      cpus: 2,
      add: {
        size: 4,
        failures: [],
        wallMs: 1000,
        waggle: costs(100, 200, 300, 400),
        chainCpuS: 1.8,
      },
      del: { size: 4, failures: [], wallMs: 800, waggle: costs(90, 100, 110, 120), chainCpuS: 1.2 },
    },
    ...over,
  };
}

describe("bench node cost (issue 16): parsing, statistics, targets, plan and report", () => {
  describe("reading what the kernel and GNU time wrote", () => {
    it("parseRusage reads elapsed, user, system seconds and peak RSS from the last line", () => {
      expect(parseRusage("0.05 0.03 0.01 61234\n")).to.deep.equal({
        elapsedS: 0.05,
        userS: 0.03,
        sysS: 0.01,
        maxRssKiB: 61234,
      });
      expect(
        parseRusage("Command exited with non-zero status 1\n0.07 0.04 0.02 60000\n").maxRssKiB,
      ).to.equal(60000);
    });

    it("parseRusage rejects output that is not GNU time's line", () => {
      expect(() => parseRusage("")).to.throw(/GNU time/);
      expect(() => parseRusage("0.05 0.03 61234")).to.throw(/GNU time/);
      expect(() => parseRusage("a b c d")).to.throw(/GNU time/);
    });

    it("parseSlabBytes sums active objects x object size over every cache, headers skipped", () => {
      const text = [
        "slabinfo - version: 2.1",
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>",
        "kmalloc-192          100    120    192   21    1 : tunables    0    0    0 : slabdata      6      6      0",
        "dentry               10     40     192   21    1 : tunables    0    0    0 : slabdata      2      2      0",
      ].join("\n");
      expect(parseSlabBytes(text)).to.equal(100 * 192 + 10 * 192);
      expect(() => parseSlabBytes("slabinfo - version: 2.1\n")).to.throw(/no caches/);
      expect(() => parseSlabBytes("cache x y z\n")).to.throw(/unexpected/);
    });

    it("meminfoBytes reads a kB field as bytes and names a missing one", () => {
      const text = "MemTotal:        4000000 kB\nPercpu:             1234 kB\n";
      expect(meminfoBytes(text, "Percpu")).to.equal(1234 * 1024);
      expect(() => meminfoBytes(text, "Slab")).to.throw(/no Slab/);
    });

    it("childrenCpuS reads cutime + cstime even when the command name holds spaces and parens", () => {
      // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
      const stat = "42 (node (x) y) S 1 42 42 0 -1 4194560 10 20 0 0 300 40 1234 566 20 0 1";
      expect(childrenCpuS(stat)).to.equal((1234 + 566) / 100);
      expect(() => childrenCpuS("42 (node) S 1")).to.throw(/stat/);
    });
  });

  describe("statistics", () => {
    it("checkpointsFor keeps 1, 10, 50, 100, 250 below the scale and ends at the scale", () => {
      expect(checkpointsFor(250)).to.deep.equal([1, 10, 50, 100, 250]);
      expect(checkpointsFor(20)).to.deep.equal([1, 10, 20]);
      expect(checkpointsFor(3)).to.deep.equal([1, 3]);
      expect(checkpointsFor(1)).to.deep.equal([1]);
      expect(() => checkpointsFor(0)).to.throw(/>= 1 pod/);
    });

    it("slope is the least-squares slope, NaN without two distinct x", () => {
      expect(slope([0, 1, 2, 3].map((x) => ({ x, y: 5 + 0.5 * x })))).to.be.closeTo(0.5, 1e-12);
      expect(
        slope([
          { x: 1, y: 2 },
          { x: 1, y: 3 },
        ]),
      ).to.be.NaN;
    });

    it("percentiles interpolate between ranks and ignore non-finite values", () => {
      const p = percentiles([10, 20, 30, 40, Number.NaN]);
      expect(p).to.include({ n: 4, p50: 25, max: 40 });
      expect(p.p90).to.be.closeTo(37, 1e-9);
    });

    it("kernelBytesPerPod takes the larger of the slab reading and the maps' own accounting", () => {
      expect(kernelBytesPerPod(kernel())).to.equal(21_000);
      expect(kernelBytesPerPod(kernel({ slabBytesPerPod: -50_000 }))).to.equal(3000 + 1600 + 300);
    });

    it("busyFraction is chain CPU over wall time x CPUs", () => {
      const b = nodeCost().burst as NonNullable<NodeCostResults["burst"]>;
      expect(busyFraction(b.add, 2)).to.be.closeTo(0.9, 1e-9);
    });

    it("flatness is p50 at the last checkpoint over p50 at the first; peak RSS the largest", () => {
      expect(flatness(nodeCost(), "add")).to.be.closeTo(39 / 38, 1e-9);
      expect(flatness(nodeCost({ checkpoints: [] }), "add")).to.be.NaN;
      expect(peakRssMiB(nodeCost({ meshedDel: [cost(20, 70)] }))).to.equal(70);
    });
  });

  describe("targets", () => {
    const verdicts = (r: NodeCostResults, attach: number[] = [1.2]) =>
      Object.fromEntries(nodeCostTargets(r, attach).map((t) => [t.id, t.met]));

    it("judges every issue 16 target met on figures within them", () => {
      expect(verdicts(nodeCost())).to.deep.equal({
        "node-add-p50": true,
        "node-del-p50": true,
        "node-unmeshed-add-p50": true,
        "node-rss": true,
        "node-attach": true,
        "node-scale-add": true,
        "node-scale-del": true,
        "node-kernel-memory": true,
        "node-burst": true,
      });
    });

    it("fails each target that its figure misses", () => {
      const v = verdicts(
        nodeCost({
          meshedAdd: costs(80, 81, 82),
          meshedDel: [cost(70, 65)],
          checkpoints: [
            { pods: 1, add: costs(30), del: costs(20) },
            { pods: 250, add: costs(40), del: costs(21) },
          ],
          kernelMemory: kernel({ slabBytesPerPod: 80_000 }),
          burst: {
            ...(nodeCost().burst as NonNullable<NodeCostResults["burst"]>),
            del: { size: 4, failures: ["boom"], wallMs: 1, waggle: [], chainCpuS: 0 },
          },
        }),
        [2.9],
      );
      expect(v).to.include({
        "node-add-p50": false,
        "node-del-p50": false,
        "node-rss": false,
        "node-attach": false,
        "node-scale-add": false,
        "node-scale-del": true,
        "node-kernel-memory": false,
        "node-burst": false,
      });
    });

    it("says not measured when a part did not run", () => {
      const ts = nodeCostTargets(
        nodeCost({ kernelMemory: null, burst: null, checkpoints: [] }),
        [],
      );
      for (const id of ["node-attach", "node-scale-add", "node-kernel-memory", "node-burst"]) {
        const t = ts.find((x) => x.id === id);
        expect(t?.met, id).to.equal(null);
        expect(t?.detail, id).to.match(/^not measured/);
      }
    });
  });

  describe("plan and command line", () => {
    it("--setup is the node cost alone: 250 pods, a burst of 100, no traffic", () => {
      const p = setupPlan();
      expect(p.preset).to.equal("setup");
      expect(p.levels).to.deep.equal([]);
      expect(p.nodeCost).to.deep.include({
        scalePods: 250,
        burst: 100,
        checkpoints: [1, 10, 50, 100, 250],
      });
      expect(quickPlan().nodeCost).to.deep.include({ scalePods: 20, burst: 10 });
      expect(fullPlan().nodeCost).to.deep.include({ scalePods: 250, burst: 100 });
    });

    it("--scale-pods and --burst override the node cost and make the plan custom", () => {
      const p = applyOverrides(setupPlan(), { scalePods: 3, burst: 3, nodeSamples: 2 });
      expect(p.preset).to.equal("custom");
      expect(p.nodeCost).to.deep.include({
        scalePods: 3,
        checkpoints: [1, 3],
        burst: 3,
        samples: 2,
      });
      expect(applyOverrides(quickPlan(), { scalePods: 0, burst: 0 }).nodeCost).to.equal(null);
      expect(() => applyOverrides(quickPlan(), { scalePods: -1 })).to.throw(/--scale-pods/);
      expect(() => applyOverrides(quickPlan(), { burst: 1.5 })).to.throw(/--burst/);
      expect(() => applyOverrides(quickPlan(), { nodeSamples: 0 })).to.throw(/--node-samples/);
    });

    it("the estimate grows with the pods and the burst, and --setup has no traffic node in it", () => {
      const small = estimateSeconds(applyOverrides(setupPlan(), { scalePods: 10, burst: 10 }));
      expect(estimateSeconds(setupPlan())).to.be.above(small);
      expect(estimateSeconds(setupPlan())).to.be.below(estimateSeconds(fullPlan()));
    });

    it("refuses --setup together with --full", async () => {
      let error: unknown;
      try {
        await main(["--setup", "--full", "--dry-run"]);
      } catch (e) {
        error = e;
      }
      expect(String(error)).to.match(/--setup and --full/);
      expect(await main(["--setup", "--dry-run"])).to.equal(0);
    });
  });

  describe("report", () => {
    function results(): BenchResults {
      return {
        schema: 1,
        startedAt: "2026-12-06T10:00:00Z",
        finishedAt: "2026-12-06T10:20:00Z",
        host: {
          kernel: "6.18",
          cpus: 2,
          cpuModel: "test",
          loadavgStart: [0, 0, 0],
          loadavgEnd: [0, 0, 0],
        },
        plan: setupPlan(),
        placement: {},
        podSysctls: {},
        floods: [],
        runs: [],
        setup: null,
        mapMemory: null,
        bpfStats: null,
        benchPodCaptureMs: {},
        nodeCost: nodeCost(),
      };
    }

    it("a --setup report judges only issue 16's targets and shows the node's section and plot", () => {
      const r = renderReport(results(), "svg");
      expect(r.targets.map((t) => t.id).every((id) => id.startsWith("node-"))).to.equal(true);
      expect(r.markdown).to.contain("no traffic: the plugin's cost on the node only");
      expect(r.markdown).to.contain("## The plugin's cost on the node (issue 16)");
      expect(r.markdown).to.contain("| waggle ADD, meshed pod | 3 | 38.0 |");
      expect(r.markdown).to.contain("| 250 | 3 | 39.0 |");
      expect(r.markdown).to.contain(
        "**kernel memory per pod** (the larger reading) | **20.5 KiB**",
      );
      expect(r.markdown).to.contain("| ADD | 4/4 | 250 |");
      expect(r.markdown).to.contain(
        "![waggle ADD against meshed pods attached](plots/node-scale.svg)",
      );
      const chart = r.charts.find((c) => c.name === "node-scale");
      expect(chart?.svg.match(/<circle/g)).to.have.length(3 + 2 + 2);
    });

    it("the node's first meshed ADD (it loads the programs) has a row of its own and is kept out of the RSS target, which names it", () => {
      const withFirst = { ...results(), nodeCost: nodeCost({ firstAdd: cost(300, 66) }) };
      const r = renderReport(withFirst, "svg");
      expect(r.markdown).to.contain(
        "| waggle ADD, the node's first meshed pod (loads the programs) | 1 | 300.0 |",
      );
      expect(r.markdown).to.contain("Pods attached are counted besides the node's first");
      const rss = r.targets.find((t) => t.id === "node-rss");
      expect(rss?.met).to.equal(true);
      expect(rss?.measured).to.equal(50);
      expect(rss?.detail).to.contain("not among them: 66.0 MiB");
    });

    it("a report without the node cost has no node section or node targets", () => {
      const r = renderReport({ ...results(), plan: quickPlan(), nodeCost: undefined }, "svg");
      expect(r.markdown).not.to.contain("cost on the node");
      expect(r.targets.some((t) => t.id.startsWith("node-"))).to.equal(false);
    });

    it("lineChartSvg draws a polyline only for line series and escapes names", () => {
      const svg = lineChartSvg(
        [
          {
            name: "a<b",
            points: [
              { x: 0, y: 1 },
              { x: 5, y: 2 },
            ],
            line: true,
          },
          {
            name: "dots",
            points: [
              { x: 1, y: Number.NaN },
              { x: 2, y: 3 },
            ],
          },
        ],
        { title: "t", yLabel: "y", xLabel: "x" },
      );
      expect(svg.match(/<polyline/g)).to.have.length(1);
      expect(svg.match(/<circle/g)).to.have.length(3);
      expect(svg).to.contain("a&lt;b");
    });
  });
});
