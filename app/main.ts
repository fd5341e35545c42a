// Entry of dist/waggle: the CNI plugin when a CNI_* variable is set, the command line otherwise.
// Keep this module's imports to node builtins: everything else is required by the path that needs
// it, so `CNI_COMMAND=VERSION` and `waggle version` load no addon, logger, yargs or BPF object.
import { readFileSync, writeSync } from "node:fs";
import { phase, startPhases } from "../base/phases";

startPhases(process.env);

/** Milliseconds a finished command may keep the process alive (open handles) before exit is forced. */
const exitGraceMs = 2000;

/** CLI commands that load the addon themselves and report its failure their own way. */
const commandsLoadingAddonThemselves = new Set(["version", "doctor"]);

/** All of stdin. Synchronous when stdin allows it (a pipe or file), streamed otherwise. */
async function readStdin(): Promise<Buffer> {
  try {
    return readFileSync(0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EAGAIN" && code !== "EWOULDBLOCK") throw err;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// The plugin prepares the addon itself, only on the paths that need the kernel (cni/plugin.ts):
// an unmeshed ADD, a DEL with nothing pinned and VERSION work where it cannot be extracted.
async function runCniMode(env: NodeJS.ProcessEnv): Promise<number> {
  const outcome = await readStdin().then(
    (stdin) => {
      phase("stdin read");
      const plugin = require("../cni/plugin") as typeof import("../cni/plugin");
      phase("plugin loaded");
      return plugin.runCni(env, stdin);
    },
    (err: Error) => stdinFailure(err),
  );
  writeAll(1, outcome.stdout);
  writeAll(2, outcome.stderr);
  return outcome.exitCode;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of `text` to a descriptor before returning. A CNI call never touches
 * process.stdout or process.stderr: on a pipe each is a net.Socket, whose set-up (node:net and
 * the stream modules) cost every call 6-9 ms here (docs/benchmarks.md). A non-blocking
 * descriptor that is full is waited on; one that is closed is given up (nobody reads it).
 */
function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EAGAIN" && code !== "EWOULDBLOCK") return;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/**
 * Ends a CNI invocation: its stdout and stderr are written and its log flushed by now, and
 * Node's teardown after the event loop drains (freeing the heap, joining its threads) is time
 * the runtime would wait for and nothing needs.
 */
function exitNow(code: number): void {
  phase("finished");
  process.exit(code);
}

/** Stdin that cannot be read (a directory, a closed descriptor) is the spec's code 5. */
function stdinFailure(err: Error): import("../cni/skel").CniOutcome {
  const { CniError, ErrorCodes, failureOutcome } =
    require("../cni/skel") as typeof import("../cni/skel");
  return failureOutcome(
    new CniError(
      ErrorCodes.IoFailure,
      `reading the configuration from stdin failed: ${err.message}`,
    ),
  );
}

async function runCliMode(argv: string[]): Promise<number> {
  const command = argv.find((a) => !a.startsWith("-"));
  if (command !== undefined && !commandsLoadingAddonThemselves.has(command)) {
    (require("../base/addon") as typeof import("../base/addon")).prepareBundledAddon();
  }
  const { runCli } = require("./cli") as typeof import("./cli");
  return runCli(argv);
}

/** An error nothing handled: its stack on stderr, and exit code 1. */
function crashed(err: unknown): number {
  writeAll(2, `waggle: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}

function finish(code: number): void {
  phase("finished");
  process.exitCode = code;
  // Exit as soon as the event loop drains; a lingering handle must not hang the container runtime.
  setTimeout(() => process.exit(code), exitGraceMs).unref();
}

// A container runtime sets CNI_COMMAND and the other CNI_* variables; one that lost
// CNI_COMMAND still gets a CNI error, not the command line's help. A CNI call's last step is
// its exit (nothing runs after it; the build's training runs rely on that).
const { hasCniVariables } = require("../cni/skel/env") as typeof import("../cni/skel/env");
if (hasCniVariables(process.env)) {
  runCniMode(process.env).catch(crashed).then(exitNow);
} else {
  runCliMode(process.argv.slice(2)).catch(crashed).then(finish);
}
