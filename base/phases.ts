// An opt-in phase timer for one process (scripts/profile-cni reads it). With WAGGLE_PHASES=1 in
// the environment every phase(name) records the time since the process started, and at exit
// one line goes to stderr: `waggle-phases {"node":{...},"marks":[[name, ms], ...],"maxRssKiB":n}`
// (node: Node's own start-up milestones). Without the variable phase() does nothing but read
// one global. The single executable's boot script starts the list before the first chunk runs
// (scripts/sea-boot.cjs), so its marks come first.
import { writeSync } from "node:fs";

/** The environment variable that turns the timer on ("1"). */
export const PHASES_ENV = "WAGGLE_PHASES";
/** What starts the line written at exit. */
export const PHASES_PREFIX = "waggle-phases ";

/** Where the marks live: a global, so the boot script and the bundle share one list. */
const MARKS = Symbol.for("waggle.phases");

type Mark = [name: string, ms: number];

/** What one process reported. */
export interface PhaseReport {
  /** Node's milestones, ms since the process started (performance.nodeTiming). */
  node: Record<string, number>;
  /** The marks in the order they were made, ms since the process started. */
  marks: Mark[];
  /** Peak resident set size (getrusage), KiB. */
  maxRssKiB: number;
}

function marks(): Mark[] | undefined {
  return (globalThis as Record<symbol, Mark[] | undefined>)[MARKS];
}

/** Records that `name` was reached, when the timer is on. */
export function phase(name: string): void {
  marks()?.push([name, performance.now()]);
}

/**
 * Turns the timer on when `env` says so (keeping marks the boot script made) and writes the
 * report to stderr at exit. Returns whether it is on.
 */
export function startPhases(env: NodeJS.ProcessEnv): boolean {
  if (env[PHASES_ENV] !== "1") return false;
  const g = globalThis as Record<symbol, Mark[] | undefined>;
  if (g[MARKS] === undefined) g[MARKS] = [];
  process.once("exit", () => {
    phase("exit");
    writeSync(2, `${PHASES_PREFIX}${JSON.stringify(phaseReport())}\n`);
  });
  return true;
}

/** The report of this process so far. */
export function phaseReport(): PhaseReport {
  const t = performance.nodeTiming;
  return {
    node: {
      nodeStart: t.nodeStart,
      v8Start: t.v8Start,
      environment: t.environment,
      bootstrapComplete: t.bootstrapComplete,
    },
    marks: [...(marks() ?? [])],
    maxRssKiB: process.resourceUsage().maxRSS,
  };
}

/** The report in a process's stderr, or null when it wrote none. */
export function parsePhaseReport(stderr: string): PhaseReport | null {
  const line = stderr.split("\n").find((l) => l.startsWith(PHASES_PREFIX));
  if (line === undefined) return null;
  const report = JSON.parse(line.slice(PHASES_PREFIX.length)) as PhaseReport;
  if (!Array.isArray(report.marks) || typeof report.maxRssKiB !== "number") {
    throw new Error(`malformed phase report: ${line}`);
  }
  return report;
}
