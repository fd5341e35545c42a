// `npm run soak`: the long reliability run. Against one node with `--concurrency` pods and a
// bpf root of its own, through dist/waggle: ADD/DEL latency measured sequentially at the start,
// `--cycles` ADD/DEL cycles at `--concurrency`, `--kills` kill -9 cycles, `--fuzz-minutes` of
// fuzzed calls, the latency measured again at the end; then it prints the figures (cases tried,
// crashes, hangs, leaks, latency drift) and exits 1 when anything broke the contract.
// Flags or environment: --cycles/WAGGLE_SOAK_CYCLES (10000), --concurrency/
// WAGGLE_SOAK_CONCURRENCY (100), --fuzz-minutes/WAGGLE_SOAK_FUZZ_MINUTES (60),
// --kills/WAGGLE_SOAK_KILLS (200), --probe-cycles/WAGGLE_SOAK_PROBE_CYCLES (50: the sequential
// cycles measured at the start and the end), --seed/WAGGLE_SOAK_SEED (time-based).
import fc from "fast-check";
import { ownFdCount, percentile } from "../support/cni-binary";
import { teardownLeftovers } from "../support/hooks";
import { descendantsOf } from "../support/procs";
import {
  type CycleStats,
  churn,
  fuzzCases,
  killCycle,
  ReliabilityBench,
  runFuzzCase,
  seededRandom,
} from "../support/reliability";

function option(flag: string, envName: string, fallback: number): number {
  const i = process.argv.indexOf(`--${flag}`);
  const raw = i >= 0 ? process.argv[i + 1] : process.env[envName];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${flag}: not a number: ${raw}`);
  return n;
}

const CYCLES = option("cycles", "WAGGLE_SOAK_CYCLES", 10_000);
const CONCURRENCY = Math.max(1, option("concurrency", "WAGGLE_SOAK_CONCURRENCY", 100));
const FUZZ_MINUTES = option("fuzz-minutes", "WAGGLE_SOAK_FUZZ_MINUTES", 60);
const KILLS = option("kills", "WAGGLE_SOAK_KILLS", 200);
const SEED = option("seed", "WAGGLE_SOAK_SEED", Date.now() % 1_000_000);
/** Sequential cycles at the start and at the end, for the latency drift. */
const PROBE_CYCLES = Math.max(1, option("probe-cycles", "WAGGLE_SOAK_PROBE_CYCLES", 50));

const log = (msg: string) => process.stderr.write(`soak ${new Date().toISOString()} ${msg}\n`);
const round = (ms: number) => Math.round(ms * 10) / 10;
const p50p99 = (s: number[]) => `${round(percentile(s, 50))} / ${round(percentile(s, 99))}`;

async function main(): Promise<number> {
  log(
    `seed ${SEED}: ${CYCLES} cycles at ${CONCURRENCY}-way, ${KILLS} kills, ${FUZZ_MINUTES} min fuzzing`,
  );
  const bench = await ReliabilityBench.create(CONCURRENCY);
  const violations: string[] = [];
  const fdsBefore = ownFdCount();
  try {
    const start = await churn(bench, PROBE_CYCLES, 1);
    violations.push(...start.violations);
    log(`start latency ADD ${p50p99(start.addMs)} DEL ${p50p99(start.delMs)} ms`);

    let lastReport = 0;
    const load: CycleStats = await churn(bench, CYCLES, CONCURRENCY, (done) => {
      if (done - lastReport >= 250) {
        lastReport = done;
        log(`churn ${done}/${CYCLES}`);
      }
    });
    violations.push(...load.violations);

    const rand = seededRandom(SEED);
    const maxDelayMs = Math.max(...start.addMs, ...start.delMs);
    const kills = { tried: 0, killed: 0 };
    for (let i = 0; i < KILLS; i++) {
      const r = await killCycle(bench, bench.pods[0], rand, maxDelayMs);
      kills.tried++;
      if (r.killed) kills.killed++;
      violations.push(...r.violations.map((v) => `kill ${i}: ${v}`));
    }
    log(`kills ${kills.killed} of ${kills.tried} runs killed mid-way`);

    const fuzz = { cases: 0, ok: 0, cniErrors: 0, crashes: 0, hangs: 0, leaks: 0, attached: 0 };
    const codes = new Map<number, number>();
    const pod = bench.pods[0];
    const arb = fuzzCases(bench, pod);
    const deadline = Date.now() + FUZZ_MINUTES * 60_000;
    for (let batch = 0; Date.now() < deadline; batch++) {
      for (const c of fc.sample(arb, { numRuns: 50, seed: SEED + batch })) {
        if (Date.now() >= deadline) break;
        const r = await runFuzzCase(bench, pod, c);
        fuzz.cases++;
        if (r.run.outcome === "ok") fuzz.ok++;
        if (r.run.outcome === "cni-error") fuzz.cniErrors++;
        if (r.run.outcome === "crash") fuzz.crashes++;
        if (r.run.outcome === "hang") fuzz.hangs++;
        if (r.cleaned) fuzz.attached++;
        if (r.run.code !== undefined) codes.set(r.run.code, (codes.get(r.run.code) ?? 0) + 1);
        const leaks = r.violations.filter((v) => /left|after DEL/.test(v));
        fuzz.leaks += leaks.length;
        violations.push(...r.violations.map((v) => `fuzz (batch ${batch}): ${v}`));
      }
      log(`fuzz ${fuzz.cases} cases`);
    }

    const end = await churn(bench, PROBE_CYCLES, 1);
    violations.push(...end.violations);
    const leftover = bench.leaks();
    violations.push(...leftover.map((l) => `at the end: ${l}`));
    const fds = ownFdCount() - fdsBefore;
    if (fds !== 0) violations.push(`the runner holds ${fds} more file descriptors`);
    const procs = descendantsOf(process.pid);
    if (procs.length > 0) violations.push(`plugin processes still running: ${procs}`);

    const figures = {
      seed: SEED,
      cycles: {
        requested: CYCLES,
        concurrency: CONCURRENCY,
        add: load.addMs.length,
        del: load.delMs.length,
      },
      loadLatencyMs: { add: p50p99(load.addMs), del: p50p99(load.delMs) },
      kills,
      fuzz: {
        ...fuzz,
        minutes: FUZZ_MINUTES,
        codes: Object.fromEntries([...codes].sort((a, b) => a[0] - b[0])),
      },
      leaksAtEnd: leftover.length,
      drift: {
        add: { start: p50p99(start.addMs), end: p50p99(end.addMs) },
        del: { start: p50p99(start.delMs), end: p50p99(end.delMs) },
      },
      violations: violations.length,
    };
    const lines = [
      `cycles          ${load.delMs.length} of ${CYCLES} ADD/DEL at ${CONCURRENCY}-way (ADD p50/p99 ${figures.loadLatencyMs.add} ms, DEL ${figures.loadLatencyMs.del} ms)`,
      `kill -9         ${kills.killed} of ${kills.tried} ADDs/DELs killed mid-way, all recovered: ${violations.some((v) => v.startsWith("kill")) ? "NO" : "yes"}`,
      `fuzz cases      ${fuzz.cases} in ${FUZZ_MINUTES} min (${fuzz.ok} exit 0, ${fuzz.cniErrors} coded errors, ${fuzz.attached} attached and removed by DEL)`,
      `crashes         ${fuzz.crashes}`,
      `hangs           ${fuzz.hangs}`,
      `leaks           ${fuzz.leaks} after fuzz cases, ${leftover.length} at the end`,
      `latency drift   ADD p50/p99 ${figures.drift.add.start} -> ${figures.drift.add.end} ms; DEL ${figures.drift.del.start} -> ${figures.drift.del.end} ms (${PROBE_CYCLES} sequential cycles each)`,
      `violations      ${violations.length}`,
    ];
    process.stdout.write(`${lines.join("\n")}\nSOAK ${JSON.stringify(figures)}\n`);
    for (const v of violations.slice(0, 20)) process.stdout.write(`VIOLATION ${v}\n`);
    return violations.length === 0 ? 0 : 1;
  } finally {
    await bench.destroy();
    teardownLeftovers();
  }
}

// Interrupted (Ctrl-C, a timeout's SIGTERM): exit through the handlers that remove the pods,
// the node and the bpf root (resources.ts tears down on "exit").
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`soak failed: ${(e as Error).stack}\n`);
    teardownLeftovers();
    process.exit(2);
  },
);
