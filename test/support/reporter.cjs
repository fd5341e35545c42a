// Mocha reporter: the spec reporter, plus a closing line CI can read
// ("N passed, N failed, N skipped"), and a failing exit when any test was skipped:
// a run that silently skips the kernel tests is not green. Optional tests (test/support/
// optional.ts: they need something outside the repository, such as a Merbridge checkout)
// may skip: each is listed with its reason and does not fail the run.
"use strict";
const Mocha = require("mocha");
const { EVENT_RUN_END, EVENT_TEST_PENDING } = Mocha.Runner.constants;

/** test/support/optional.ts's OPTIONAL_SKIP_REASON. */
const OPTIONAL_SKIP_REASON = "optionalSkipReason";

class WaggleReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const optional = [];
    runner.on(EVENT_TEST_PENDING, (test) => {
      if (typeof test[OPTIONAL_SKIP_REASON] === "string")
        optional.push(`${test.fullTitle()}: ${test[OPTIONAL_SKIP_REASON]}`);
    });
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats;
      const skipped = s.pending || 0;
      for (const line of optional) console.log(`optional test skipped: ${line}`);
      const failing = skipped - optional.length;
      if (failing > 0 && process.env.WAGGLE_ALLOW_SKIP !== "1") {
        console.log(
          `${failing} test(s) were skipped; skipped tests fail the run (WAGGLE_ALLOW_SKIP=1 to allow)`,
        );
        process.exitCode = 1;
      }
      const opt = optional.length > 0 ? ` (${optional.length} optional)` : "";
      console.log(`tests: ${s.passes} passed, ${s.failures} failed, ${skipped} skipped${opt}`);
    });
  }
}
module.exports = WaggleReporter;
