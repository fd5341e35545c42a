import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import {
  driftWithin,
  probeNsPerStep,
  runSpeed,
  samplesNsPerStep,
  summarizeStability,
} from "../../bench/machine-speed";
import { firstCpu } from "../../bench/runner";
import {
  buildSpeedprobe,
  PROBE_ITERATIONS,
  type ProbeKind,
  parseSpeedprobeOutput,
  probeCpu,
  speedprobeArgv,
} from "../../bench/tools/speedprobe";
import { run } from "../support/command";

describe("bench machine probes (bench/speedprobe, tools/speedprobe.ts, machine-speed.ts)", () => {
  describe("summaries", () => {
    const sample = (kind: ProbeKind, cpu: string | null, ns: number[]) => ({
      kind,
      cpu,
      iterations: 1000,
      ns,
    });

    it("sample times become ns per step", () => {
      expect(samplesNsPerStep(sample("alu", "1", [2000, 3000]))).to.deep.equal([2, 3]);
    });

    it("a run's speeds are the median probes of each kind before and after it; a figure is their mean", () => {
      const s = runSpeed(
        [sample("alu", "1", [2000, 2000, 9000]), sample("memory", "1", [100_000])],
        [sample("memory", "1", [150_000]), sample("alu", "1", [4000, 4000, 4000])],
      );
      expect(s).to.deep.equal({
        cpu: "1",
        alu: { beforeNs: 2, afterNs: 4 },
        memory: { beforeNs: 100, afterNs: 150 },
      });
      expect(probeNsPerStep(s, "alu")).to.equal(3);
      expect(probeNsPerStep(s, "memory")).to.equal(125);
      expect(driftWithin(s, "alu")).to.equal(1);
      expect(driftWithin(s, "memory")).to.equal(0.5);
    });

    it("refuses probes of one run on different CPUs, or a kind missing or doubled", () => {
      const both = (cpu: string) => [sample("alu", cpu, [1]), sample("memory", cpu, [1])];
      expect(() => runSpeed(both("0"), both("1"))).to.throw(/different CPUs/);
      expect(() => runSpeed(both("1"), [sample("alu", "1", [1])])).to.throw(
        /one memory probe after/,
      );
      expect(() => runSpeed([...both("1"), sample("alu", "1", [1])], both("1"))).to.throw(
        /one alu probe before a run is needed, got 2/,
      );
    });

    it("idle probes: one row per moment, kind and CPU, with their spread", () => {
      const rows = summarizeStability({
        start: [
          sample("alu", "0", [2000, 2000, 3000]),
          sample("memory", "0", [100_000, 100_000, 100_000]),
          sample("alu", "1", [2000, 2000, 2000]),
        ],
        end: [sample("memory", "1", [100_000, 200_000, 100_000])],
      });
      expect(rows.map((r) => [r.when, r.kind, r.cpu])).to.deep.equal([
        ["start", "alu", "0"],
        ["start", "alu", "1"],
        ["start", "memory", "0"],
        ["end", "memory", "1"],
      ]);
      expect(rows[0].nsPerStep.median).to.equal(2);
      expect(rows[0].nsPerStep.max).to.equal(3);
      expect(rows[1].nsPerStep.cv).to.equal(0);
      expect(rows[3].nsPerStep.max).to.equal(200);
    });

    it("the probed CPU is the first of the mesh's CPU list; none when unpinned", () => {
      expect(firstCpu("1")).to.equal("1");
      expect(firstCpu("1-3")).to.equal("1");
      expect(firstCpu("2,5-7")).to.equal("2");
      expect(firstCpu(undefined)).to.equal(null);
      expect(firstCpu("")).to.equal(null);
      expect(() => firstCpu("x-1")).to.throw(/not a CPU list/);
    });
  });

  describe("its output", () => {
    it("argv names the kind, samples and steps, and refuses what is not a positive integer", () => {
      expect(speedprobeArgv("memory", 10)).to.deep.equal([
        "--kind",
        "memory",
        "--samples",
        "10",
        "--iterations",
        String(PROBE_ITERATIONS.memory),
      ]);
      expect(() => speedprobeArgv("alu", 0)).to.throw(/samples/);
      expect(() => speedprobeArgv("alu", 1.5)).to.throw(/samples/);
      expect(() => speedprobeArgv("alu", 3, 0)).to.throw(/iterations/);
      expect(() => speedprobeArgv("disk" as ProbeKind, 3)).to.throw(/alu or memory/);
    });

    it("parses the JSON line and refuses a missing line, another kind, a wrong count or a bad time", () => {
      const line =
        '{"tool":"waggle-speedprobe","kind":"alu","iterations":1000,"ns":[5,6],"check":7}';
      expect(parseSpeedprobeOutput(`noise\n${line}\n`, "alu", "1", 2)).to.deep.equal({
        kind: "alu",
        cpu: "1",
        iterations: 1000,
        ns: [5, 6],
      });
      expect(() => parseSpeedprobeOutput("nothing", "alu", "1", 2)).to.throw(/no result/);
      expect(() => parseSpeedprobeOutput(line, "memory", "1", 2)).to.throw(/kind alu, not memory/);
      expect(() => parseSpeedprobeOutput(line, "alu", "1", 3)).to.throw(/3 positive sample times/);
      expect(() => parseSpeedprobeOutput(line.replace("[5,6]", "[5,0]"), "alu", "1", 2)).to.throw(
        /positive sample times/,
      );
      expect(() =>
        parseSpeedprobeOutput(line.replace('"iterations":1000', '"iterations":-1'), "alu", "1", 2),
      ).to.throw(/iteration count/);
    });
  });

  describe("the real probe", function () {
    this.timeout(60_000);
    let dir: string;
    let binary: string;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "waggle-speedprobe-test-"));
      binary = await buildSpeedprobe(undefined, dir);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("times every sample of each kind, pinned to the CPU asked for", async () => {
      for (const kind of ["alu", "memory"] as const) {
        const s = await probeCpu(binary, "0", kind, 5);
        expect(s).to.include({ kind, cpu: "0", iterations: PROBE_ITERATIONS[kind] });
        expect(s.ns).to.have.length(5);
        // milliseconds of dependent work on any CPU of this decade, never zero, never seconds
        for (const t of s.ns) expect(t, kind).to.be.within(100_000, 1_000_000_000);
      }
      const unpinned = await probeCpu(binary, null, "alu", 1);
      expect(unpinned.cpu).to.equal(null);
      expect(unpinned.ns).to.have.length(1);
    });

    /**
     * The fastest of 9 samples: another process only ever adds time to a sample, so the
     * minimum is what the work itself takes, even on a machine shared with other runs.
     */
    async function fastestNs(kind: ProbeKind, iterations: number, extra: string[] = []) {
      const r = await run(binary, [
        "--kind",
        kind,
        "--samples",
        "9",
        "--iterations",
        String(iterations),
        ...extra,
      ]);
      expect(r.code, r.stderr).to.equal(0);
      return Math.min(...parseSpeedprobeOutput(r.stdout, kind, null, 9).ns);
    }

    it("twice the steps take about twice the time: the work is not optimised away", async () => {
      for (const kind of ["alu", "memory"] as const) {
        const ratio =
          (await fastestNs(kind, 2 * PROBE_ITERATIONS[kind])) /
          (await fastestNs(kind, PROBE_ITERATIONS[kind]));
        expect(ratio, kind).to.be.within(1.4, 2.8);
      }
    });

    it("memory steps miss the private caches: a 64 MiB walk is far slower per step than a 16 KiB one", async () => {
      const steps = PROBE_ITERATIONS.memory;
      const large = await fastestNs("memory", steps);
      const small = await fastestNs("memory", steps, ["--bytes", String(16 << 10)]);
      expect(large / small).to.be.above(5);
    });

    it("exits 2 with a usage message on bad arguments", async () => {
      for (const args of [
        [],
        ["--kind", "alu"],
        ["--kind", "disk", "--samples", "1", "--iterations", "1"],
        ["--kind", "alu", "--samples", "0", "--iterations", "5"],
        ["--kind", "alu", "--samples", "x"],
        ["--kind", "alu", "--samples"],
      ]) {
        const r = await run(binary, args);
        expect(r.code, args.join(" ")).to.equal(2);
        expect(r.stderr).to.match(/usage|wants an integer|alu or memory/);
      }
    });
  });
});
