import { promises as fs, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { withEntry } from "../../install/conflist";
import { EntryKeeper } from "../../install/entry-keeper";
import { InstallMetrics } from "../../install/metrics";
import {
  CALICO_SHAPES,
  capturingLogger,
  type LogLine,
  SAMPLE_ENTRY,
  scratchDir,
  sleep,
  waitFor,
} from "./install-fixtures";

/** Calico's install-cni: a plain, non-atomic rewrite (open O_TRUNC, several writes). */
async function calicoRewrite(path: string, text: string, pauseMs = 2, pieces = 3): Promise<void> {
  const handle = await fs.open(path, "w", 0o600);
  try {
    const step = Math.ceil(text.length / pieces);
    for (let i = 0; i < text.length; i += step) {
      if (i > 0 && pauseMs > 0) await sleep(pauseMs);
      await handle.write(text.slice(i, i + step));
    }
  } finally {
    await handle.close();
  }
}

const hasEntry = (path: string) => {
  try {
    return readFileSync(path, "utf8") === withEntry(CALICO_SHAPES.manifest, SAMPLE_ENTRY);
  } catch {
    return false;
  }
};

describe("install: watch (keeping the entry in place)", function () {
  this.timeout(30_000);
  let dir: string;
  let remove: () => void;
  let keeper: EntryKeeper | undefined;
  let lines: LogLine[];
  let metrics: InstallMetrics;
  const latencies: number[] = [];

  function startKeeper(flap = { count: 5, windowMs: 60_000 }): Promise<void> {
    const captured = capturingLogger();
    lines = captured.lines;
    metrics = new InstallMetrics();
    keeper = new EntryKeeper({
      netDir: dir,
      entry: SAMPLE_ENTRY,
      log: captured.log,
      metrics,
      flap,
    });
    return keeper.start();
  }

  beforeEach(() => {
    ({ dir, remove } = scratchDir("watch"));
  });
  afterEach(async () => {
    await keeper?.stop();
    keeper = undefined;
    remove();
  });
  after(() => {
    if (latencies.length > 0) {
      const sorted = [...latencies].sort((a, b) => a - b);
      console.log(
        `      repair latency after a Calico-style rewrite: ${sorted.join(", ")} ms (max ${sorted[sorted.length - 1]})`,
      );
    }
  });

  it("inserts the entry at start and reports it in place", async () => {
    const calico = join(dir, "10-calico.conflist");
    writeFileSync(calico, CALICO_SHAPES.manifest, { mode: 0o600 });
    await startKeeper();
    expect(hasEntry(calico)).to.equal(true);
    expect(keeper?.inPlace).to.equal(true);
    expect(keeper?.file).to.equal("10-calico.conflist");
    expect(await metrics.entryInPlace.get()).to.have.nested.property("values[0].value", 1);
    expect(keeper?.repairs).to.equal(0);
  });

  it("puts the entry back within 2 s after Calico's non-atomic rewrite (5 rounds, timed)", async () => {
    const calico = join(dir, "10-calico.conflist");
    writeFileSync(calico, CALICO_SHAPES.manifest, { mode: 0o600 });
    await startKeeper();
    for (let round = 1; round <= 5; round++) {
      await calicoRewrite(calico, CALICO_SHAPES.manifest);
      const rewritten = Date.now();
      await waitFor("the entry back", () => hasEntry(calico), 2000);
      latencies.push(Date.now() - rewritten);
      expect(statSync(calico).mode & 0o777).to.equal(0o600);
      await keeper?.settled();
      expect(keeper?.repairs).to.equal(round);
    }
    expect(await metrics.repairs.get()).to.have.nested.property("values[0].value", 5);
    expect(lines.filter((l) => l.message === "entry put back")).to.have.length(5);
  });

  it("never acts on a half-written file, even when another valid file would take over", async () => {
    const calico = join(dir, "10-calico.conflist");
    const other = join(dir, "99-other.conflist");
    const otherText = '{"name":"o","cniVersion":"0.3.1","plugins":[{"type":"ptp"}]}';
    writeFileSync(other, otherText);
    writeFileSync(calico, CALICO_SHAPES.manifest, { mode: 0o600 });
    await startKeeper();
    // Truncate, write half, stall 600 ms (well past the debounce), then finish.
    await calicoRewrite(calico, CALICO_SHAPES.manifest, 600, 2);
    const finished = Date.now();
    await waitFor("the entry back", () => hasEntry(calico), 2000);
    latencies.push(Date.now() - finished);
    expect(readFileSync(other, "utf8")).to.equal(otherText);
  });

  it("puts the entry back when the file is deleted and recreated", async () => {
    const calico = join(dir, "10-calico.conflist");
    writeFileSync(calico, CALICO_SHAPES.manifest, { mode: 0o600 });
    await startKeeper();
    unlinkSync(calico);
    await waitFor("not ready without a config", () => keeper?.inPlace === false, 2000);
    await sleep(300);
    await calicoRewrite(calico, CALICO_SHAPES.manifest);
    const recreated = Date.now();
    await waitFor("the entry back", () => hasEntry(calico), 2000);
    latencies.push(Date.now() - recreated);
    await keeper?.settled();
    expect(keeper?.inPlace).to.equal(true);
  });

  it("follows a lower-named file that takes precedence", async () => {
    const calico = join(dir, "10-calico.conflist");
    writeFileSync(calico, CALICO_SHAPES.manifest, { mode: 0o600 });
    await startKeeper();
    const newer = join(dir, "05-multus.conflist");
    await calicoRewrite(newer, CALICO_SHAPES.operator);
    const appeared = Date.now();
    await waitFor(
      "the entry in the new primary",
      () => {
        try {
          return readFileSync(newer, "utf8") === withEntry(CALICO_SHAPES.operator, SAMPLE_ENTRY);
        } catch {
          return false;
        }
      },
      2000,
    );
    latencies.push(Date.now() - appeared);
    await keeper?.settled();
    expect(keeper?.file).to.equal("05-multus.conflist");
    expect(
      hasEntry(calico),
      "the old file keeps its entry (harmless, removed by uninstall)",
    ).to.equal(true);
  });

  it("waits without spinning while no config exists, then converts a late .conf", async () => {
    await startKeeper();
    expect(keeper?.inPlace).to.equal(false);
    expect(lines.some((l) => l.message === "waiting for a CNI config")).to.equal(true);
    const passesBefore = keeper?.passes ?? 0;
    await sleep(1500);
    const passesAfter = keeper?.passes ?? 0;
    expect(passesAfter - passesBefore, "no pass without an event").to.equal(0);
    const conf = join(dir, "10-flannel.conf");
    writeFileSync(
      conf,
      '{"cniVersion":"0.3.1","name":"cbr0","type":"flannel","delegate":{"isDefaultGateway":true}}',
    );
    const written = Date.now();
    const list = join(dir, "10-flannel.conflist");
    await waitFor(
      "the converted list",
      async () => keeper?.inPlace === true && (await exists(list)),
      2000,
    );
    latencies.push(Date.now() - written);
    expect(await exists(conf)).to.equal(false);
  });

  it("warns and backs off when something keeps undoing the entry (no tight fight)", async () => {
    const calico = join(dir, "10-calico.conflist");
    writeFileSync(calico, CALICO_SHAPES.manifest, { mode: 0o600 });
    await startKeeper({ count: 3, windowMs: 10_000 });
    // A fighter that drops the entry whenever it sees it (as another installer might).
    let fighting = true;
    const fighter = (async () => {
      while (fighting) {
        if (hasEntry(calico)) await calicoRewrite(calico, CALICO_SHAPES.manifest, 0, 1);
        await sleep(20);
      }
    })();
    try {
      // More than 3 repairs: a fight. Each repair takes a debounce (~0.1 s) without backoff.
      await waitFor("the fight detected", () => keeper?.flapping === true, 10_000);
      const detectedAt = keeper?.repairs ?? 0;
      await sleep(3500);
      // Backing off (1 s, then 2 s): at most 2-3 repairs in 3.5 s instead of ~30.
      expect((keeper?.repairs ?? 0) - detectedAt, "repairs while backing off").to.be.within(1, 3);
    } finally {
      fighting = false;
      await fighter;
    }
    expect(keeper?.flapping).to.equal(true);
    expect(await metrics.flapping.get()).to.have.nested.property("values[0].value", 1);
    const warnings = lines.filter(
      (l) => l.level === "warn" && /keeps being undone/.test(l.message),
    );
    expect(warnings, "one warning per window").to.have.length(1);
    // The fight over, the entry still comes back (after the backoff, at most 4 s now).
    await waitFor("the entry back after the fight", () => hasEntry(calico), 9000);
  });
});

async function exists(path: string): Promise<boolean> {
  return fs.stat(path).then(
    () => true,
    () => false,
  );
}
