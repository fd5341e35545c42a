// What a command of the binary gets and where it writes: the command line (app/cli.ts) hands
// every command these, whichever room implements it (app/, install/).

/** Where a command writes: stdout for its output, stderr for diagnostics. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

/** Parsed arguments as yargs hands them over (option names in kebab and camel case). */
export type CliArgs = Record<string, unknown>;
