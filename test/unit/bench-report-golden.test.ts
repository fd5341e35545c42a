// renderReport against reports it rendered before: a results set that reaches every section
// and branch (test/fixtures/bench/report-results.json: "rich" has CPU data, machine probes, a
// busy machine by user time, port exhaustion, retransmissions, errors, floods, setup, map
// memory and BPF run times; "plain" is an older results file without them, busy by load
// average) renders byte for byte as the saved markdown.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { renderReport } from "../../bench/report";
import type { BenchResults } from "../../bench/runner";

const fixtures = join(__dirname, "..", "..", "..", "test", "fixtures", "bench");
const read = (name: string) => readFileSync(join(fixtures, name), "utf8");
const results = JSON.parse(read("report-results.json")) as Record<"rich" | "plain", BenchResults>;

describe("bench report: the saved reports of a fixture results set, byte for byte", () => {
  it("every section: CPU data, machine probes, ports, floods, setup, map memory, BPF run time", () => {
    expect(renderReport(results.rich, "png").markdown).to.equal(read("report-rich.md"));
  });

  it("an older results file without CPU data or optional sections, busy by load average", () => {
    expect(renderReport(results.plain, "svg").markdown).to.equal(read("report-plain.md"));
  });
});
