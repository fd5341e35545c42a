// The root hook that tears down whatever kernel tests left registered (resources.ts), after
// the whole run, even when tests failed midway.
//
// Importing this module from a test file registers it: a top-level `after` in a file loaded
// by mocha is a root-suite hook, and the module loads once, so it runs once, last. It is
// also a mocha root-hook plugin (`mochaHooks`) for a `require` entry in .mocharc.json; both
// registrations are harmless together since teardown is idempotent.

import { liveResources, teardownAll } from "./resources";

/** Tears down every registered resource; throws when a teardown failed. */
export function teardownLeftovers(): void {
  const left = liveResources();
  if (left.length > 0)
    process.stderr.write(
      `kernel tests left ${left.length} resource(s) to the root hook: ${left.join(", ")}\n`,
    );
  const failures = teardownAll();
  if (failures.length > 0) throw new Error(`teardown failed:\n${failures.join("\n")}`);
}

export const mochaHooks = {
  afterAll(): void {
    teardownLeftovers();
  },
};

if (typeof after === "function") {
  after("tear down resources kernel tests left behind", teardownLeftovers);
}
