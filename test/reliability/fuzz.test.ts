// Fuzzed CNI calls through dist/waggle against a real pod: whatever a runtime or a tenant puts
// in stdin (the entry, prevResult, runtimeConfig with the pod's annotations), in the CNI_*
// variables and in CNI_ARGS, every call ends within a bound with exit 0 or a CNI error with a
// documented code (never 999, a stack trace or a hang), a failed ADD leaves nothing, and after
// the DEL kubelet sends nothing is left in the bpf root or on the pod.
// WAGGLE_FUZZ_RUNS (default 25) and WAGGLE_FUZZ_SEED replay or widen a run.
import "../support/hooks";
import { expect } from "chai";
import fc from "fast-check";
import { describeRun } from "../support/cni-binary";
import {
  anchorCases,
  fuzzCases,
  oversizedStdin,
  runFuzzCase,
  useReliabilityBench,
} from "../support/reliability";

const RUNS = Number(process.env.WAGGLE_FUZZ_RUNS ?? 25);
const SEED = process.env.WAGGLE_FUZZ_SEED ? Number(process.env.WAGGLE_FUZZ_SEED) : undefined;

describe("reliability: fuzzed CNI calls through dist/waggle", function () {
  this.timeout(600_000);
  const fixture = useReliabilityBench();

  it(`${RUNS} fuzzed calls each end within the bound with a result or a documented code and leave nothing`, async () => {
    const pod = fixture.bench.pods[0];
    const seen = { attached: 0, refusedAdd: 0, codes: new Set<number>() };
    await fc.assert(
      fc.asyncProperty(fuzzCases(fixture.bench, pod), async (c) => {
        const report = await runFuzzCase(fixture.bench, pod, c);
        if (report.cleaned) seen.attached++;
        if (report.run.code !== undefined) seen.codes.add(report.run.code);
        if (c.env.CNI_COMMAND === "ADD" && report.run.outcome === "cni-error") seen.refusedAdd++;
        if (report.violations.length > 0)
          throw new Error(`${JSON.stringify(c.env)}\n${report.violations.join("\n")}`);
      }),
      {
        numRuns: RUNS,
        seed: SEED,
        endOnFailure: true,
        examples: anchorCases(fixture.bench, pod).map((c) => [c] as [typeof c]),
      },
    );
    // Both sides were reached (the anchor cases make sure of it): ADDs that attach and ADDs
    // that are refused.
    expect(seen.attached, "fuzzed ADDs that attached").to.be.greaterThan(0);
    expect(seen.refusedAdd, "fuzzed ADDs refused").to.be.greaterThan(0);
    expect(seen.codes.size, `codes seen: ${[...seen.codes]}`).to.be.greaterThan(3);
  });

  it("a config over the 4 MiB stdin bound is refused with a documented code and attaches nothing", async () => {
    const pod = fixture.bench.pods[0];
    const report = await runFuzzCase(fixture.bench, pod, {
      env: {
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: "oversized",
        CNI_NETNS: pod.netnsPath,
        CNI_IFNAME: "eth0",
        CNI_PATH: "/usr/lib/cni",
      },
      stdin: oversizedStdin(fixture.bench, pod),
    });
    expect(report.violations).to.deep.equal([]);
    expect(report.run.outcome, describeRun(report.run)).to.equal("cni-error");
    expect(report.cleaned).to.equal(false);
  });
});
