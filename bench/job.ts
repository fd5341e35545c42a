// What the supervisor (main.ts) hands the worker (worker.ts), and what the worker says back.

import type { Placement } from "./cluster";
import type { Plan } from "./plan";

export interface WorkerJob {
  plan: Plan;
  placement: Placement;
  /** Where results.json goes. */
  dir: string;
  /** A Merbridge checkout, for mode merbridge. */
  merbridgeSrc?: string;
}

/** The message the worker sends first: its run tag, for the supervisor's cleanup. */
export interface WorkerHello {
  tag: string;
}

/** The environment variable carrying the job (JSON). */
export const JOB_ENV = "WAGGLE_BENCH_JOB";
