// The opt-in phase timer (base/phases.ts) and how scripts/profile-cni reads it and strace
// (bench/cni-profile.ts).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect } from "chai";
import { PHASES_ENV, type PhaseReport, parsePhaseReport } from "../../base/phases";
import { callRows, type ProcessRun, parseStraceSummary, phaseRows } from "../../bench/cni-profile";

const PHASES = join(__dirname, "..", "..", "base", "phases.js");

/** Runs a process that starts the timer and marks two phases; its stderr. */
function markingProcess(env: Record<string, string>): string {
  const script = `const p = require(${JSON.stringify(PHASES)}); p.startPhases(process.env); p.phase("one"); p.phase("two");`;
  const r = spawnSync(process.execPath, ["-e", script], {
    env: { PATH: process.env.PATH, ...env },
    encoding: "utf8",
  });
  expect(r.status, r.stderr).to.equal(0);
  return r.stderr;
}

function report(marks: [string, number][], node: Record<string, number> = {}): PhaseReport {
  return { node, marks, maxRssKiB: 1000 };
}

describe("phase timer (base/phases.ts) and the CNI profile's parsing (bench/cni-profile.ts)", () => {
  it(`writes nothing unless ${PHASES_ENV}=1`, () => {
    expect(markingProcess({})).to.equal("");
    expect(markingProcess({ [PHASES_ENV]: "yes" })).to.equal("");
  });

  it(`with ${PHASES_ENV}=1 reports the marks in order at exit, with Node's milestones and the peak RSS`, () => {
    const r = parsePhaseReport(markingProcess({ [PHASES_ENV]: "1" }));
    expect(r).to.not.equal(null);
    const got = r as PhaseReport;
    expect(got.marks.map(([name]) => name)).to.deep.equal(["one", "two", "exit"]);
    const times = got.marks.map(([, ms]) => ms);
    expect(times).to.deep.equal([...times].sort((a, b) => a - b));
    expect(got.node.bootstrapComplete).to.be.greaterThan(0);
    expect(got.node.bootstrapComplete).to.be.below(times[0]);
    expect(got.maxRssKiB).to.be.greaterThan(1024);
  });

  it("finds no report in stderr without the line, and refuses a malformed one", () => {
    expect(parsePhaseReport("some error\n")).to.equal(null);
    expect(() => parsePhaseReport('waggle-phases {"node":{}}\n')).to.throw(/malformed/);
  });

  it("orders phases by their median time and gives each the step from the one before", () => {
    const rows = phaseRows([
      report(
        [
          ["a", 10],
          ["b", 30],
          ["a", 50],
        ],
        { bootstrapComplete: 5 },
      ),
      report(
        [
          ["a", 20],
          ["b", 40],
        ],
        { bootstrapComplete: 7 },
      ),
      report(
        [
          ["a", 12],
          ["c", 100],
        ],
        { bootstrapComplete: 6 },
      ),
    ]);
    expect(rows).to.deep.equal([
      { phase: "node: bootstrapComplete", runs: 3, atMs: 6, stepMs: 6 },
      { phase: "a", runs: 3, atMs: 12, stepMs: 6 },
      { phase: "b", runs: 2, atMs: 35, stepMs: 23 },
      { phase: "c", runs: 1, atMs: 100, stepMs: 65 },
    ]);
  });

  it("gives each call its p50, p90 and median peak RSS", () => {
    const run = (ms: number, kib: number): ProcessRun => ({
      ms,
      maxRssKiB: kib,
      exitCode: 0,
      stdout: "",
      stderr: "",
    });
    const rows = callRows(new Map([["VERSION", [run(10, 2048), run(30, 4096), run(20, 1024)]]]));
    expect(rows).to.have.length(1);
    expect(rows[0]).to.include({ call: "VERSION", runs: 3, p50Ms: 20, p50RssMiB: 2 });
    expect(rows[0].p90Ms).to.be.closeTo(28, 1e-9);
  });

  it("reads strace -c's summary: totals and the syscalls that took the most time", () => {
    const text = [
      "% time     seconds  usecs/call     calls    errors syscall",
      "------ ----------- ----------- --------- --------- ----------------",
      " 40.00    0.004000          20       200           bpf",
      " 35.00    0.003500           5       700        12 openat",
      " 25.00    0.002500           2      1000           mmap",
      "------ ----------- ----------- --------- --------- ----------------",
      "100.00    0.010000           5      1900        12 total",
    ].join("\n");
    expect(parseStraceSummary(text)).to.deep.equal({
      calls: 1900,
      errors: 12,
      top: [
        { syscall: "bpf", calls: 200, seconds: 0.004 },
        { syscall: "openat", calls: 700, seconds: 0.0035 },
        { syscall: "mmap", calls: 1000, seconds: 0.0025 },
      ],
    });
    expect(() => parseStraceSummary("strace: exec failed\n")).to.throw(/no strace -c summary/);
  });
});
