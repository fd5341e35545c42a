// Entry of dist/waggle: the CNI plugin when CNI_COMMAND is set, the command line otherwise.
// Keep this module's imports to node builtins: everything else is required by the path that needs
// it, so `CNI_COMMAND=VERSION` and `waggle version` load no addon, logger, yargs or BPF object.
import { readFileSync } from "node:fs";

interface CniOutcome {
  stdout: string;
  exitCode: number;
}

/** Seconds a finished command may keep the process alive (open handles) before exit is forced. */
const exitGraceMs = 2000;

// Until cni/skel lands (the CNI plugin helper), answer VERSION and refuse the rest. Replace this
// function's uses with `require("./skel").runCni`.
const supportedCniVersions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
async function runCniPlaceholder(env: NodeJS.ProcessEnv, stdin: string): Promise<CniOutcome> {
  let cniVersion = "1.1.0";
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === "string" && supportedCniVersions.includes(v)) cniVersion = v;
  } catch {}
  if (env.CNI_COMMAND === "VERSION") {
    return {
      stdout: `${JSON.stringify({ cniVersion, supportedVersions: supportedCniVersions })}\n`,
      exitCode: 0,
    };
  }
  return {
    stdout: `${JSON.stringify({ cniVersion, code: 4, msg: `CNI_COMMAND ${env.CNI_COMMAND} is not supported yet` })}\n`,
    exitCode: 1,
  };
}

/** All of stdin. Synchronous when stdin allows it (a pipe or file), streamed otherwise. */
async function readStdin(): Promise<string> {
  try {
    return readFileSync(0, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EAGAIN" && code !== "EWOULDBLOCK") throw err;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<number> {
  if (process.env.CNI_COMMAND !== undefined && process.env.CNI_COMMAND !== "") {
    const { stdout, exitCode } = await runCniPlaceholder(process.env, await readStdin());
    process.stdout.write(stdout);
    return exitCode;
  }
  const { runCli } = require("./cli") as typeof import("./cli");
  return runCli(process.argv.slice(2));
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
