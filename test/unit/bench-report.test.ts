import { expect } from "chai";
import { evaluateTargets, type RunFigures, ratio, summarizeCells } from "../../bench/analysis";
import { type ModeName, presetModes } from "../../bench/modes";
import {
  applyOverrides,
  estimateSeconds,
  fullPlan,
  parseWorkload,
  quickPlan,
  workloadId,
} from "../../bench/plan";
import { renderReport } from "../../bench/report";
import type { BenchResults } from "../../bench/runner";
import { barChartSvg, boxPlotSvg, escapeXml, linearTicks, logTicks } from "../../bench/svg";

/** A synthetic run: throughput, p50/p99 (us) and node CPU per 1000 requests. */
function run(
  mode: ModeName,
  round: number,
  workload: string,
  level: string,
  thr: number,
  p50: number,
  p99: number,
  cpu: number,
): RunFigures {
  const figures = {
    level,
    workload,
    mode,
    round,
    throughputRps: thr,
    latencyUs: {
      count: 100,
      min: p50 / 2,
      p1: p50 / 2,
      p25: p50 * 0.8,
      p50,
      p75: p50 * 1.2,
      p90: p99 * 0.8,
      p99,
      p999: p99,
      max: p99 * 2,
      mean: p50,
    },
    histogram: [
      [Math.round(p50), 98],
      [Math.round(p99), 2],
    ] as [number, number][],
    errorCount: 0,
    cpuPer1000: {
      node: cpu,
      loadgen: cpu / 4,
      sidecars: cpu / 2,
      app: cpu / 4,
      system: cpu / 3,
      machine: cpu,
    },
    portPressure: {
      exhausted: false,
      maxEphemeralTimeWait: 10,
      addrNotAvail: 0,
      portRange: 64512,
      timeWaitOverflow: 0,
      attemptFails: 0,
      reason: "ok",
    },
    timeWait: { client: 5, server: 40 },
    net: {
      client: { "Tcp.RetransSegs": 0, "Tcp.EstabResets": 0 },
      server: { "Tcp.RetransSegs": 0, "Tcp.EstabResets": 0 },
    },
  };
  return figures;
}

/** Three rounds where waggle and explicit are within the targets and iptables costs 20%. */
function goodRuns() {
  const runs: RunFigures[] = [];
  for (let r = 0; r < 3; r++) {
    const jitter = 1 + (r - 1) * 0.01;
    runs.push(
      run("explicit", r, "max-new", "0", 5000 * jitter, 500, 2000, 0.2),
      run("waggle-redirect", r, "max-new", "0", 4950 * jitter, 505, 2000, 0.202),
      run("iptables", r, "max-new", "0", 4000 * jitter, 600, 3000, 0.236),
      run("explicit", r, "max-keepalive", "0", 20000 * jitter, 300, 900, 0.05),
      run("waggle-redirect", r, "max-keepalive", "0", 19900 * jitter, 301, 900, 0.05),
      run("iptables", r, "rate1000-new", "100k", 1000, 800, 10000, 0.4),
      run("waggle-redirect", r, "rate1000-new", "100k", 1000, 700, 8000 * jitter, 0.35),
      ...bypassRuns(r, ""),
      ...bypassRuns(r, "-tls"),
    );
  }
  return runs;
}

/**
 * One round of the bypass's workloads (suffix "-tls": between TLS sidecars) where waggle meets
 * issue 13's targets: keep-alive 2x iptables and 1.6x explicit at half iptables' CPU, ping-pong
 * p50 0.6x iptables, new connections level with waggle-redirect.
 */
function bypassRuns(r: number, suffix: string): RunFigures[] {
  const ka = `max-keepalive${suffix}`;
  const nc = `max-new${suffix}`;
  const pp = `pingpong${suffix}`;
  const out = [
    run("iptables", r, ka, "0", 20000, 300, 900, 0.05),
    run("waggle-redirect", r, ka, "0", 23000, 300, 900, 0.045),
    run("waggle", r, ka, "0", 40000, 150, 500, 0.025),
    run("waggle", r, nc, "0", 4950, 505, 2000, 0.2),
    run("iptables", r, pp, "0", 10000, 100, 200, 0.1),
    run("explicit", r, pp, "0", 11000, 90, 180, 0.1),
    run("waggle-redirect", r, pp, "0", 11000, 90, 180, 0.1),
    run("waggle", r, pp, "0", 16000, 60, 120, 0.06),
  ];
  // the plain workloads' explicit and waggle-redirect runs of max-* are in goodRuns already
  if (suffix !== "")
    out.push(
      run("explicit", r, ka, "0", 25000, 290, 880, 0.045),
      run("explicit", r, nc, "0", 5000, 500, 2000, 0.2),
      run("waggle-redirect", r, nc, "0", 4950, 505, 2000, 0.2),
    );
  return out;
}

describe("bench analysis, plan, plots and report (bench/analysis.ts, plan.ts, svg.ts, report.ts)", () => {
  describe("cells and ratios", () => {
    it("summarises each rule level x workload x mode over its rounds, pooling the histograms", () => {
      const cells = summarizeCells(goodRuns());
      const c = cells.find((x) => x.mode === "waggle-redirect" && x.workload === "max-new");
      expect(c?.runs).to.equal(3);
      expect(c?.figures.throughput.median).to.equal(4950);
      expect(c?.pooled?.count).to.equal(300);
      expect(c?.pooled?.p50).to.equal(505);
      expect(c?.box.p99).to.equal(2000);
    });

    it("ratios are paired by round: a slow round moves both sides", () => {
      const runs = goodRuns();
      const r = ratio(
        runs,
        { level: "0", workload: "max-new" },
        "throughput",
        "waggle-redirect",
        "explicit",
      );
      expect(r?.perRound).to.have.length(3);
      for (const x of r?.perRound ?? []) expect(x).to.be.closeTo(0.99, 1e-9);
      expect(
        ratio(
          runs,
          { level: "10k", workload: "max-new" },
          "throughput",
          "waggle-redirect",
          "explicit",
        ),
      ).to.equal(null);
    });
  });

  describe("targets", () => {
    const setup = { iptablesRestoreMs: [10, 12, 11], waggleAttachMs: [3, 4, 5] };

    it("all met when waggle is within 1% of explicit, 30% under iptables at p99, and attaches fast", () => {
      const targets = evaluateTargets(goodRuns(), setup);
      expect(targets.map((t) => [t.id, t.met])).to.deep.equal([
        ["newconn-throughput", true],
        ["newconn-cpu", true],
        ["keepalive-throughput", true],
        ["flood-p99", true],
        ["bypass-keepalive-vs-iptables", true],
        ["bypass-keepalive-vs-iptables-tls", true],
        ["bypass-keepalive-vs-explicit", true],
        ["bypass-keepalive-vs-explicit-tls", true],
        ["bypass-keepalive-cpu", true],
        ["bypass-keepalive-cpu-tls", true],
        ["bypass-pingpong-p50", true],
        ["bypass-pingpong-p50-tls", true],
        ["bypass-newconn", true],
        ["bypass-newconn-tls", true],
        ["setup", true],
        ["variance", true],
      ]);
      const flood = targets.find((t) => t.id === "flood-p99");
      expect(flood?.measured).to.be.closeTo(0.8, 1e-9);
    });

    it("new-connection throughput below 0.97 x explicit is not met, and says so with the ratio", () => {
      const runs = goodRuns().map((r) =>
        r.mode === "waggle-redirect" && r.workload === "max-new"
          ? { ...r, throughputRps: r.throughputRps * 0.9 }
          : r,
      );
      const t = evaluateTargets(runs, setup).find((x) => x.id === "newconn-throughput");
      expect(t?.met).to.equal(false);
      expect(t?.measured).to.be.closeTo(0.891, 1e-3);
      expect(t?.detail).to.match(/waggle-redirect\/explicit/);
    });

    it("CPU above 1.03 x explicit, a slow attach and p50 spread above 5% each fail their target", () => {
      const runs = goodRuns().map((r) => {
        if (r.mode === "waggle-redirect" && r.workload === "max-new")
          return { ...r, cpuPer1000: { ...r.cpuPer1000, node: 0.25 } };
        if (r.mode === "explicit" && r.workload === "max-keepalive" && r.round === 2)
          return { ...r, latencyUs: { ...r.latencyUs, p50: 400 } };
        return r;
      });
      const targets = evaluateTargets(runs, { iptablesRestoreMs: [10], waggleAttachMs: [6] });
      const met = Object.fromEntries(targets.map((t) => [t.id, t.met]));
      expect(met).to.include({ "newconn-cpu": false, setup: false, variance: false });
      expect(targets.find((t) => t.id === "variance")?.detail).to.match(/explicit max-keepalive/);
    });

    it("a target without its runs is reported as not measured, never as met", () => {
      const runs = goodRuns().filter((r) => r.level !== "100k");
      const targets = evaluateTargets(runs, null);
      expect(targets.find((t) => t.id === "flood-p99")?.met).to.equal(null);
      expect(targets.find((t) => t.id === "setup")?.met).to.equal(null);
      expect(evaluateTargets([], null).every((t) => t.met === null)).to.equal(true);
    });

    it("paired runs on a machine that itself moved over 10% carry a warning; variance names the machine's spread", () => {
      const runs = goodRuns().map((r) => {
        const slow = r.mode === "waggle-redirect" && r.workload === "max-new" && r.round === 1;
        return {
          ...r,
          machineSpeed: {
            cpu: "1",
            alu: { beforeNs: 2, afterNs: 2 },
            memory: { beforeNs: 100, afterNs: slow ? 150 : 100 },
          },
        };
      });
      const targets = evaluateTargets(runs, setup);
      const byId = (id: string) => targets.find((t) => t.id === id);
      expect(byId("newconn-throughput")?.warnings.join(" ")).to.contain(
        "the machine itself (probes) differed by more than 10% between the paired runs in 1 of 3 rounds (worst 25%, memory probe)",
      );
      expect(byId("keepalive-throughput")?.warnings).to.deep.equal([]);
      expect(byId("variance")?.detail).to.match(
        /the machine itself, probed around each run: alu CV 0\.0% \(slowest \+0%\), memory CV [\d.]+% \(slowest \+25%\)/,
      );
      // results without probes (benches before the probes) get neither
      const plain = evaluateTargets(goodRuns(), setup);
      expect(plain.flatMap((t) => t.warnings).join(" ")).to.not.contain("machine");
      expect(plain.find((t) => t.id === "variance")?.detail).to.not.contain("machine");
    });

    it("errors and port exhaustion in the runs behind a target are attached as warnings", () => {
      const runs = goodRuns().map((r) =>
        r.mode === "waggle-redirect" && r.workload === "max-new" && r.round === 0
          ? { ...r, errorCount: 5, portPressure: { ...r.portPressure, exhausted: true } }
          : r,
      );
      const t = evaluateTargets(runs, setup).find((x) => x.id === "newconn-throughput");
      expect(t?.warnings.join(" ")).to.match(/5 request errors/);
      expect(t?.warnings.join(" ")).to.match(/port exhaustion/);
    });
  });

  describe("plan", () => {
    it("quick fits in 8 minutes here (5 modes, TLS twins, memory); full covers every workload at 0, 10k and 100k", () => {
      expect(estimateSeconds(quickPlan())).to.be.below(480);
      const full = fullPlan();
      expect(full.levels.map((l) => l.level)).to.deep.equal(["0", "10k", "100k"]);
      expect(full.levels[0].workloads.map(workloadId)).to.include.members([
        "max-keepalive",
        "max-new",
        "rate200-new",
        "rate1000-keepalive",
        "rate1500-new",
        "pingpong",
      ]);
      expect(full.modes).to.deep.equal(presetModes(false));
      // the 100k rule target needs rate1000-new at 100k, in both presets
      for (const p of [quickPlan(), full])
        expect(p.levels.find((l) => l.level === "100k")?.workloads.map(workloadId)).to.include(
          "rate1000-new",
        );
    });

    it("workload ids round-trip and bad ones are refused", () => {
      for (const id of [
        "max-keepalive",
        "max-new",
        "rate200-keepalive",
        "rate1500-new",
        "pingpong",
      ])
        expect(workloadId(parseWorkload(id))).to.equal(id);
      for (const bad of ["max", "rate-new", "rate0-new", "rate1000-close", "ping"])
        expect(() => parseWorkload(bad), bad).to.throw(/workload|rate/);
    });

    it("overrides replace the matrix and refuse bad values; any override makes the preset custom", () => {
      const p = applyOverrides(quickPlan(), {
        modes: ["waggle", "explicit"],
        rules: ["0", "500x50"],
        workloads: ["max-new"],
        rounds: 3,
      });
      expect(p.preset).to.equal("custom");
      expect(p.modes).to.deep.equal(["explicit", "waggle"]);
      expect(p.levels).to.deep.equal([
        { level: "0", workloads: [{ kind: "max", connection: "new" }] },
        { level: "500x50", workloads: [{ kind: "max", connection: "new" }] },
      ]);
      expect(() => applyOverrides(quickPlan(), { modes: ["ebpf"] })).to.throw(/unknown mode/);
      expect(() => applyOverrides(quickPlan(), { rules: ["lots"] })).to.throw(/rule level/);
      expect(() => applyOverrides(quickPlan(), { rounds: 0 })).to.throw(/rounds/);
      expect(() => applyOverrides(quickPlan(), { durationS: 1.5 })).to.throw(/duration/);
      expect(applyOverrides(quickPlan(), { bpfStats: false }).preset).to.equal("quick");
    });
  });

  describe("SVG plots", () => {
    it("axis ticks: 1-2-5 steps covering the data, decades on a log axis", () => {
      expect(linearTicks(9)).to.deep.equal([0, 2, 4, 6, 8, 10]);
      expect(linearTicks(0)).to.deep.equal([0, 1]);
      expect(logTicks(0.3, 40)).to.deep.equal([0.2, 0.5, 1, 2, 5, 10, 20, 50]);
      expect(logTicks(0.5, 5.57)).to.deep.equal([0.5, 1, 2, 5, 10]);
      expect(logTicks(3, 3)).to.deep.equal([2, 5]);
    });

    it("one box per mode and level, whiskers inside the plot, and escaped labels", () => {
      const stats = { p1: 0.1, p25: 0.2, p50: 0.3, p75: 0.4, p99: 2, max: 9 };
      const svg = boxPlotSvg(
        [
          {
            label: "rules 0",
            boxes: [
              { series: "explicit", stats },
              { series: "waggle", stats },
            ],
          },
          {
            label: "rules <100k>",
            boxes: [
              { series: "explicit", stats: null },
              { series: "waggle", stats },
            ],
          },
        ],
        { title: "Latency & more", yLabel: "ms", log: true },
      );
      expect(svg.startsWith("<svg ")).to.equal(true);
      expect(svg.trim().endsWith("</svg>")).to.equal(true);
      expect(svg.match(/<g class="box"/g)).to.have.length(3);
      expect(svg).to.contain("rules &lt;100k&gt;");
      expect(svg).to.contain("Latency &amp; more");
      // a title element right after <svg> names the chart for screen readers (and Biome's a11y lint)
      expect(svg.split("\n")[1]).to.equal("<title>Latency &amp; more</title>");
      expect(svg).to.not.contain("NaN");
      // the median line sits between the box's top and bottom
      const box =
        /<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"[^>]*fill-opacity/.exec(svg);
      const median =
        /<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="[\d.]+" stroke="[^"]+" stroke-width="2"/.exec(
          svg,
        );
      const [top, height, mid] = [Number(box?.[1]), Number(box?.[2]), Number(median?.[1])];
      expect(mid).to.be.within(top, top + height);
    });

    it("stacked bars: one rect per non-zero part, and a whisker per range", () => {
      const svg = barChartSvg(
        [
          {
            label: "max-new",
            bars: [
              {
                series: "explicit",
                parts: [
                  { name: "sidecars", value: 1 },
                  { name: "app", value: 0.5 },
                ],
                range: [1.4, 1.6],
              },
              {
                series: "waggle",
                parts: [
                  { name: "sidecars", value: 1 },
                  { name: "app", value: 0 },
                ],
              },
            ],
          },
        ],
        { title: "CPU", yLabel: "s" },
      );
      expect(svg.match(/<g class="bar"/g)).to.have.length(2);
      // the background, 3 parts and 2 legend swatches
      expect(svg.match(/<rect x=/g)).to.have.length(1 + 3 + 2);
      expect(escapeXml('"a"<b>&')).to.equal("&quot;a&quot;&lt;b&gt;&amp;");
    });
  });

  describe("report", () => {
    function results(): BenchResults {
      return {
        schema: 1,
        startedAt: "2026-01-01T00:00:00Z",
        finishedAt: "2026-01-01T00:04:00Z",
        host: {
          kernel: "6.18",
          cpus: 2,
          cpuModel: "test cpu",
          loadavgStart: [0.1, 0, 0],
          loadavgEnd: [0.2, 0, 0],
        },
        plan: quickPlan(),
        placement: { load: "0", mesh: "1" },
        podSysctls: { "net.ipv4.tcp_tw_reuse": 1 },
        floods: [
          {
            label: "100k",
            services: 500,
            endpointsPerService: 50,
            rules: 76020,
            chains: 25510,
            saveLines: 101545,
            applyMs: 3300,
            removeMs: 800,
          },
        ],
        runs: goodRuns() as unknown as BenchResults["runs"],
        setup: null,
        mapMemory: null,
        bpfStats: null,
        benchPodCaptureMs: {},
      };
    }

    it("renders the targets, a table per cell, the port verdict and the plots", () => {
      const r = renderReport(results(), "png");
      expect(r.markdown).to.contain("## Targets");
      expect(r.markdown).to.contain(
        "| new connection per request, max throughput: waggle-redirect >= 0.97 x explicit | >= 0.97 | 0.990 | **met**",
      );
      expect(r.markdown).to.contain("### rules 100k: rate1000-new");
      expect(r.markdown).to.contain("No run hit ephemeral-port exhaustion");
      expect(r.markdown).to.contain("| 100k | 500 x 50 | 76020 | 25510 | 101545 |");
      expect(r.markdown).to.contain("![Maximum throughput](plots/throughput.png)");
      expect(r.charts.map((c) => c.name)).to.include.members([
        "latency-max-new",
        "latency-rate1000-new",
        "throughput",
        "cpu",
      ]);
      expect(r.markdown).to.not.contain("machine was busy");
    });

    it("reports the machine's stability: idle probes per CPU and kind, probes around runs, max runs against them", () => {
      const r = results();
      // the memory probe moves with each round exactly as the throughput does; alu stays put
      r.runs = r.runs.map((x) => {
        const ns = 100 / (1 + (x.round - 1) * 0.01);
        return {
          ...x,
          machineSpeed: {
            cpu: "1",
            alu: { beforeNs: 2, afterNs: 2 },
            memory: { beforeNs: ns, afterNs: ns },
          },
        };
      });
      const sample = (kind: "alu" | "memory", cpu: string, ns: number[]) => ({
        kind,
        cpu,
        iterations: 1000,
        ns,
      });
      r.machineStability = {
        start: [sample("alu", "0", [2000, 2000, 2400]), sample("memory", "0", [1e5, 1e5, 1e5])],
        end: [sample("alu", "0", [2000, 2000, 2000]), sample("memory", "0", [1e5, 1.1e5, 1e5])],
      };
      const md = renderReport(r, "png").markdown;
      expect(md).to.contain("## Machine stability");
      expect(md).to.contain("| before the first run | alu | 0 | 3 | 2.00 | 10.8% | +20.0% |");
      expect(md).to.contain("| after the last run | memory | 0 | 3 | 100.00 | 5.6% | +10.0% |");
      expect(md).to.match(
        /Around the runs \(CPU 1, 78 runs\): the alu probe's CV over runs 0\.0% \(slowest run \+0\.0%\), moving 0\.0% \(median\) and up to 0\.0% from just before a run to just after it; the memory probe's CV over runs 0\.8%/,
      );
      expect(md).to.contain("| 0 | max-new | explicit | 3 | 1.0% | 0.0% | 1.0% | – | 1.00 |");
      // results of older benches have no probes: no section
      expect(renderReport(results(), "png").markdown).to.not.contain("## Machine stability");
    });

    it("judges a busy machine by user time outside its pods while the runs ran, not by its own build's load", () => {
      const withCpu = (outsideS: number) => {
        const r = results();
        r.host.loadavgStart = [1.2, 0.5, 0.2]; // the bench's own build just before the runs
        r.runs = r.runs.map((x) => ({
          ...x,
          durationS: 10,
          cpu: {
            byRole: {
              loadgen: { usageS: 2, userS: 0.5, systemS: 1.5 },
              sidecar: { usageS: 6, userS: 1, systemS: 5 },
              app: { usageS: 1, userS: 0.5, systemS: 0.5 },
            },
            podsS: 9,
            ksoftirqdS: 0.5,
            // /proc/stat: the pods' user time plus whatever else ran; kernel time not compared
            machine: {
              busyS: 12 + outsideS,
              userS: 2 + outsideS,
              systemS: 7,
              softirqS: 3,
              irqS: 0,
              idleS: 8,
            },
          },
        }));
        return renderReport(r, "png").markdown;
      };
      const quiet = withCpu(0.2);
      expect(quiet).to.contain(
        "User time outside the bench's pods while the runs ran: 0.020 CPUs (median over runs), at most 0.020.",
      );
      expect(quiet).to.not.contain("machine was busy");
      expect(withCpu(3)).to.contain(
        "> **The machine was busy**: processes outside the bench's pods used 0.30 CPUs of user time",
      );
    });

    it("warns when the machine was busy", () => {
      const busy = results();
      busy.host.loadavgEnd = [3.5, 2, 1];
      expect(renderReport(busy, "svg").markdown).to.contain("The machine was busy");
    });
  });
});
