// Optional tests: a test that needs something the repository does not hold and CI does not
// have (a Merbridge checkout for the bench's merbridge mode) skips when it is not given, with
// its reason. The reporter (reporter.cjs) lists such skips with their reasons and does not
// fail the run for them; any other skip still fails it.

/** The property of a mocha test that marks its skip as optional (read by reporter.cjs). */
export const OPTIONAL_SKIP_REASON = "optionalSkipReason";

/** Skips the running test as optional, giving the reason (what is missing, how to give it). */
export function skipOptional(ctx: Mocha.Context, reason: string): never {
  if (ctx.test) Object.assign(ctx.test, { [OPTIONAL_SKIP_REASON]: reason });
  ctx.skip();
  throw new Error("unreachable: mocha's skip() throws");
}
