// Running host commands from tests: async with captured output, a checked variant that
// throws an error naming the command and its stderr, and a synchronous variant for teardown
// paths that must also work from a process "exit" handler.

import { execFileSync, spawn } from "node:child_process";

export interface CommandResult {
  /** Exit code; null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Kill the command (SIGKILL) after this many ms; the result then has signal SIGKILL. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Working directory; default: this process's. */
  cwd?: string;
}

/** A failed checked command: carries the command line and its full result. */
export class CommandError extends Error {
  constructor(
    readonly commandLine: string,
    readonly result: CommandResult,
  ) {
    const how = result.signal ? `signal ${result.signal}` : `exit code ${result.code}`;
    super(`${commandLine} failed (${how}): ${(result.stderr || result.stdout).trim()}`);
    this.name = "CommandError";
  }
}

/** The sbin directories come first: ip, tc, iptables live there. */
export const COMMAND_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

/** Runs a command to completion and returns its result whatever the exit code. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: CommandOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? { ...process.env, PATH: COMMAND_PATH },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    const timer = opts.timeoutMs
      ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs)
      : undefined;
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`${commandLine(cmd, args)}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
    child.stdin.on("error", () => {}); // the command may exit without reading its input
    child.stdin.end(opts.input ?? "");
  });
}

/** Runs a command and returns its stdout; throws CommandError on a non-zero exit. */
export async function runChecked(
  cmd: string,
  args: readonly string[],
  opts: CommandOptions = {},
): Promise<string> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) throw new CommandError(commandLine(cmd, args), result);
  return result.stdout;
}

/** Synchronous runChecked, for teardown code that may run inside a process "exit" handler. */
export function runSync(
  cmd: string,
  args: readonly string[],
  opts: { input?: string } = {},
): string {
  try {
    return execFileSync(cmd, args, {
      env: { ...process.env, PATH: COMMAND_PATH },
      input: opts.input ?? "",
      stdio: ["pipe", "pipe", "pipe"],
      encoding: "utf8",
    });
  } catch (e) {
    const err = e as {
      status?: number | null;
      signal?: NodeJS.Signals | null;
      stdout?: string;
      stderr?: string;
    };
    throw new CommandError(commandLine(cmd, args), {
      code: err.status ?? null,
      signal: err.signal ?? null,
      stdout: err.stdout ?? "",
      stderr: err.stderr ?? String(e),
    });
  }
}

/** Blocks the thread for ms milliseconds (teardown polling in synchronous paths only). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
