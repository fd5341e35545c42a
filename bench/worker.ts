// The bench worker: the process that builds the node, runs the plan and writes results.json.
// main.ts forks it and supervises it, so that a crash here (native code, SIGKILL) still gets
// everything this process made removed by its run tag (cleanup.ts).

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { RUN_TAG } from "../test/support/names";
import { teardownAll } from "../test/support/resources";
import { JOB_ENV, type WorkerHello, type WorkerJob } from "./job";
import { runBench } from "./runner";

async function work(): Promise<number> {
  const raw = process.env[JOB_ENV];
  if (!raw) throw new Error(`${JOB_ENV} is not set: the worker is started by bench/main.ts`);
  const job = JSON.parse(raw) as WorkerJob;
  process.send?.({ tag: RUN_TAG } satisfies WorkerHello);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: removing everything the run made\n`);
      for (const f of teardownAll()) process.stderr.write(`bench: teardown failed: ${f}\n`);
      process.exit(130);
    });
  }
  const results = await runBench(job.plan, {
    placement: job.placement,
    merbridgeSrc: job.merbridgeSrc,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  writeFileSync(join(job.dir, "results.json"), `${JSON.stringify(results, null, 1)}\n`);
  return 0;
}

if (require.main === module) {
  work().then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}
