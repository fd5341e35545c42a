// Entry of dist/waggle: the CNI plugin when CNI_COMMAND is set, the command line otherwise.
// Keep this module's imports to node builtins: everything else is required by the path that needs
// it, so `CNI_COMMAND=VERSION` and `waggle version` load no addon, logger, yargs or BPF object.
import { readFileSync } from "node:fs";

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

/**
 * In the single executable the addon must be extracted before ebpf-napi's first use; this does
 * it (cheap once done: a few stats) for the paths that may use it. A checkout needs nothing.
 */
function prepareEmbeddedAddon(): void {
  const { isBundled } = require("./build-info") as typeof import("./build-info");
  if (!isBundled()) return;
  (require("./addon") as typeof import("./addon")).prepareAddon();
}

async function runCniMode(env: NodeJS.ProcessEnv): Promise<number> {
  const stdin = await readStdin();
  let unusable: Error | undefined;
  if (env.CNI_COMMAND !== "VERSION") {
    try {
      prepareEmbeddedAddon();
    } catch (err) {
      unusable = err as Error;
    }
  }
  const outcome =
    unusable === undefined
      ? await (require("./plugin") as typeof import("./plugin")).runCni(env, stdin)
      : await (require("./skel/skel") as typeof import("./skel/skel")).runSkel(
          unavailablePlugin(unusable),
          env,
          stdin,
        );
  process.stdout.write(outcome.stdout);
  process.stderr.write(outcome.stderr);
  return outcome.exitCode;
}

/** A plugin whose every operation fails with `why` (the skeleton turns that into spec errors). */
function unavailablePlugin(why: Error): import("./skel/skel").CniPlugin {
  const { CniError, ErrorCodes } = require("./skel/errors") as typeof import("./skel/errors");
  const fail = async (): Promise<never> => {
    throw new CniError(ErrorCodes.Internal, `the eBPF addon cannot be used: ${why.message}`);
  };
  return {
    about: "waggle CNI plugin",
    add: fail,
    del: fail,
    check: fail,
    gc: fail,
    status: async () => {
      throw new CniError(
        ErrorCodes.PluginNotAvailable,
        `the eBPF addon cannot be used: ${why.message}`,
      );
    },
  };
}

async function runCliMode(argv: string[]): Promise<number> {
  const command = argv.find((a) => !a.startsWith("-"));
  if (command !== undefined && !commandsLoadingAddonThemselves.has(command)) prepareEmbeddedAddon();
  const { runCli } = require("./cli") as typeof import("./cli");
  return runCli(argv);
}

async function main(): Promise<number> {
  if (process.env.CNI_COMMAND !== undefined && process.env.CNI_COMMAND !== "") {
    return runCniMode(process.env);
  }
  return runCliMode(process.argv.slice(2));
}

function finish(code: number): void {
  process.exitCode = code;
  // Exit as soon as the event loop drains; a lingering handle must not hang the container runtime.
  setTimeout(() => process.exit(code), exitGraceMs).unref();
}

main().then(finish, (err: unknown) => {
  process.stderr.write(
    `waggle: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  finish(1);
});
