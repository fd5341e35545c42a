// Mocha reporter: the spec reporter, plus a closing line CI can read
// ("N passed, N failed, N skipped"), and a failing exit when any test was skipped:
// a run that silently skips the kernel tests is not green.
"use strict";
const Mocha = require("mocha");
const { EVENT_RUN_END } = Mocha.Runner.constants;

class WaggleReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats;
      const skipped = s.pending || 0;
      if (skipped > 0 && process.env.WAGGLE_ALLOW_SKIP !== "1") {
        console.log(
          `${skipped} test(s) were skipped; skipped tests fail the run (WAGGLE_ALLOW_SKIP=1 to allow)`,
        );
        process.exitCode = 1;
      }
      console.log(`tests: ${s.passes} passed, ${s.failures} failed, ${skipped} skipped`);
    });
  }
}
module.exports = WaggleReporter;
