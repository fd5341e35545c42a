// waggle's command line (yargs). Each command is one entry in `commands`; its implementation
// lives in its own module, required only when that command runs, so `waggle version` loads
// neither the addon nor winston nor the Kubernetes client.
import yargs, { type Argv } from "yargs";
import type { CliArgs, CliIo } from "../base/cli-io";

export interface CliCommand {
  /** yargs command string: the name, then positional arguments ("status [pod]"). */
  command: string;
  describe: string;
  /** Declares the command's options and positionals. */
  options?: (y: Argv) => Argv;
  /** Runs the command, requiring its implementation only now; resolves to the exit code. */
  run(args: CliArgs, io: CliIo): Promise<number>;
}

/** Exit code for a command line yargs rejects (unknown command or option, bad value). */
export const usageExitCode = 2;

/** Every waggle command. To add one: write its module and add an entry here. */
export const commands: CliCommand[] = [
  {
    command: "version",
    describe: "Print the version, the git commit and the Node.js version",
    options: (y) =>
      y
        .option("verbose", {
          type: "boolean",
          default: false,
          describe: "Also load the eBPF addon and print the libbpf version",
        })
        .option("json", { type: "boolean", default: false, describe: "Print JSON" }),
    run: (args, io) => (require("./version") as typeof import("./version")).runVersion(args, io),
  },
  {
    command: "doctor",
    describe:
      "Check every prerequisite of this host (kernel, cgroup v2, bpffs, BPF features, glibc)",
    options: (y) =>
      y
        .option("json", { type: "boolean", default: false, describe: "Print JSON" })
        .option("bpf-root", {
          type: "string",
          default: "/sys/fs/bpf",
          describe: "bpffs directory waggle pins under",
        }),
    run: (args, io) => (require("./doctor") as typeof import("./doctor")).runDoctor(args, io),
  },
  {
    command: "status [pod]",
    describe:
      "List the meshed pods on this node: policy, attachments and their health, counters (from the pins)",
    options: (y) =>
      y
        .positional("pod", {
          type: "string",
          describe: "Only this pod, in detail: container id (or its start), namespace/name or name",
        })
        .option("bpf-root", {
          type: "string",
          default: (require("../mesh/config") as typeof import("../mesh/config")).DEFAULT_CONFIG
            .bpfRoot,
          describe: "bpffs directory waggle pins under (the plugin's bpf_root)",
        })
        .option("json", {
          type: "boolean",
          default: false,
          describe: "Print JSON: { bpfRoot, datapath, pods: [...] }",
        })
        .option("verbose", {
          alias: "v",
          type: "boolean",
          default: false,
          describe: "Each pod's detail after the table (policy, attachments, every counter)",
        }),
    run: (args, io) => (require("./status") as typeof import("./status")).runStatus(args, io),
  },
  {
    command: "install",
    describe:
      "Install container main loop: copy the binary, write the kubeconfig, chain into the CNI config and keep it there",
    options: (y) =>
      (require("../install/options") as typeof import("../install/options")).declareInstallOptions(
        y,
      ),
    run: (args, io) =>
      (require("../install/main") as typeof import("../install/main")).runInstallCommand(args, io),
  },
  {
    command: "uninstall",
    describe:
      "Remove waggle from this node: the CNI config entry, binary, kubeconfig, pod links and pins",
    options: (y) =>
      (
        require("../install/options") as typeof import("../install/options")
      ).declareUninstallOptions(y),
    run: (args, io) =>
      (require("../install/main") as typeof import("../install/main")).runUninstallCommand(
        args,
        io,
      ),
  },
];

export const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** A command line yargs rejected; thrown from its fail handler so no command runs. */
class UsageError extends Error {}

/** Parses `argv` (without the program name), runs the chosen command, resolves to the exit code. */
export async function runCli(
  argv: string[],
  io: CliIo = processIo,
  registry: CliCommand[] = commands,
): Promise<number> {
  let exitCode = 0;
  const parser = yargs(argv)
    .scriptName("waggle")
    .locale("en")
    .version(false)
    .help()
    .alias("h", "help")
    .strict()
    .demandCommand(1, "Name a command.")
    .recommendCommands()
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      // Throwing stops yargs: a fail handler that returns lets the command run anyway.
      throw err ?? new UsageError(msg);
    });
  for (const c of registry) {
    parser.command(c.command, c.describe, c.options ?? ((y) => y), async (args) => {
      exitCode = await c.run(args, io);
    });
  }
  let help = "";
  try {
    await parser.parseAsync(argv, {}, (_err, _args, output) => {
      help = output;
    });
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`${await parser.getHelp()}\n\n${err.message}\n`);
    return usageExitCode;
  }
  if (help) io.out(`${help}\n`);
  return exitCode;
}
