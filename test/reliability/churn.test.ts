// ADD/DEL churn and kill -9 through dist/waggle on real pods (netns + cgroup, wired to a node):
// cycles one after the other and several pods at once leave no pins, map entries, cgroup or
// netns programs, file descriptors or processes behind; an ADD or DEL killed at a random point
// leaves state that the next DEL or a GC removes, after which the pod is added again.
// WAGGLE_CHURN_CYCLES, WAGGLE_CHURN_CONCURRENCY and WAGGLE_KILLS widen a run (npm run soak
// runs the long version).
import "../support/hooks";
import { expect } from "chai";
import { ownFdCount } from "../support/cni-binary";
import { descendantsOf } from "../support/procs";
import { churn, killCycle, seededRandom, useReliabilityBench } from "../support/reliability";

const CYCLES = Number(process.env.WAGGLE_CHURN_CYCLES ?? 6);
const CONCURRENCY = Number(process.env.WAGGLE_CHURN_CONCURRENCY ?? 3);
const KILLS = Number(process.env.WAGGLE_KILLS ?? 5);

describe("reliability: ADD/DEL churn and kill -9 through dist/waggle", function () {
  this.timeout(900_000);
  const fixture = useReliabilityBench(CONCURRENCY);

  it(`${CYCLES} ADD/DEL cycles one after the other leave nothing behind`, async () => {
    const fds = ownFdCount();
    const stats = await churn(fixture.bench, CYCLES, 1);
    expect(stats.violations).to.deep.equal([]);
    expect(stats.addMs).to.have.length(CYCLES);
    expect(stats.delMs).to.have.length(CYCLES);
    expect(ownFdCount(), "file descriptors of the test process").to.equal(fds);
    expect(descendantsOf(process.pid), "plugin processes still running").to.deep.equal([]);
  });

  it(`${CYCLES} ADD/DEL cycles on ${CONCURRENCY} pods at once leave nothing behind`, async () => {
    const fds = ownFdCount();
    const stats = await churn(fixture.bench, CYCLES, CONCURRENCY);
    expect(stats.violations).to.deep.equal([]);
    expect(stats.addMs).to.have.length(CYCLES);
    expect(ownFdCount(), "file descriptors of the test process").to.equal(fds);
    expect(descendantsOf(process.pid), "plugin processes still running").to.deep.equal([]);
  });

  it(`${KILLS} ADDs and DELs killed at random points: a DEL or GC removes everything, and the pod is added again`, async () => {
    const seed = Number(process.env.WAGGLE_KILL_SEED ?? Date.now() % 100_000);
    const rand = seededRandom(seed);
    // The delays span a whole ADD: measured on this machine now, as load changes it.
    const timing = await churn(fixture.bench, 2, 1);
    expect(timing.violations).to.deep.equal([]);
    const maxDelayMs = Math.max(...timing.addMs, ...timing.delMs);
    const killed = { ADD: 0, DEL: 0 };
    for (let i = 0; i < KILLS; i++) {
      const r = await killCycle(fixture.bench, fixture.bench.pods[0], rand, maxDelayMs);
      expect(r.violations, `seed ${seed}, kill ${i}`).to.deep.equal([]);
      if (r.killed) killed[r.phase]++;
    }
    // Not vacuous: some runs were really killed mid-way (the rest finished before the kill).
    expect(killed.ADD + killed.DEL, `seed ${seed}`).to.be.greaterThan(0);
  });
});
