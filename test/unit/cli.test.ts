import { expect } from "chai";
import { type CliCommand, commands, runCli, usageExitCode } from "../../app/cli";
import type { CliArgs } from "../../base/cli-io";
import { captureIo } from "../support/cli-io";

/** A registry of one command that records what it was called with and exits with `code`. */
function fakeRegistry(code: number, calls: CliArgs[]): CliCommand[] {
  return [
    {
      command: "probe <target>",
      describe: "A test command",
      options: (y) => y.option("json", { type: "boolean", default: false }),
      run: async (args, io) => {
        calls.push(args);
        io.out("ran\n");
        return code;
      },
    },
  ];
}

describe("cli: command line dispatch", () => {
  it("runs the named command with its parsed options and returns its exit code", async () => {
    const calls: CliArgs[] = [];
    const io = captureIo();
    const code = await runCli(["probe", "host-a", "--json"], io, fakeRegistry(3, calls));
    expect(code).to.equal(3);
    expect(io.stdout).to.equal("ran\n");
    expect(calls).to.have.length(1);
    expect(calls[0].target).to.equal("host-a");
    expect(calls[0].json).to.equal(true);
  });

  it("an unknown command is a usage error (exit 2) that names it; nothing runs", async () => {
    const calls: CliArgs[] = [];
    const io = captureIo();
    const code = await runCli(["bogus"], io, fakeRegistry(0, calls));
    expect(code).to.equal(usageExitCode);
    expect(io.stderr).to.contain("bogus");
    expect(io.stdout).to.equal("");
    expect(calls).to.deep.equal([]);
  });

  it("an unknown option is a usage error and the command does not run", async () => {
    const calls: CliArgs[] = [];
    const io = captureIo();
    const code = await runCli(["probe", "x", "--frobnicate"], io, fakeRegistry(0, calls));
    expect(code).to.equal(usageExitCode);
    expect(io.stderr).to.contain("Unknown argument: frobnicate").and.contain("probe <target>");
    expect(io.stdout).to.equal("");
    expect(calls).to.deep.equal([]);
  });

  it("a missing positional is a usage error", async () => {
    const calls: CliArgs[] = [];
    const io = captureIo();
    expect(await runCli(["probe"], io, fakeRegistry(0, calls))).to.equal(usageExitCode);
    expect(calls).to.deep.equal([]);
    expect(io.stderr).to.match(/Not enough non-option arguments|target/);
  });

  it("no command at all is a usage error that asks for one", async () => {
    const io = captureIo();
    expect(await runCli([], io, fakeRegistry(0, []))).to.equal(usageExitCode);
    expect(io.stderr).to.contain("Name a command.");
    expect(io.stderr, "usage lists the commands").to.contain("probe <target>");
  });

  it("--help lists the commands on stdout and exits 0 without running any", async () => {
    const calls: CliArgs[] = [];
    const io = captureIo();
    const code = await runCli(["--help"], io, fakeRegistry(1, calls));
    expect(code).to.equal(0);
    expect(io.stdout).to.contain("probe <target>").and.contain("A test command");
    expect(calls).to.deep.equal([]);
  });

  it("a command that throws rejects (main turns it into exit 1 with the message)", async () => {
    const failing: CliCommand[] = [
      {
        command: "boom",
        describe: "fails",
        run: async () => {
          throw new Error("kaboom");
        },
      },
    ];
    let error: unknown;
    try {
      await runCli(["boom"], captureIo(), failing);
    } catch (e) {
      error = e;
    }
    expect((error as Error)?.message).to.equal("kaboom");
  });

  it("the real registry has version and doctor, each with a description", () => {
    const names = commands.map((c) => c.command.split(" ")[0]);
    expect(names).to.include.members(["version", "doctor"]);
    expect(new Set(names).size).to.equal(names.length);
    for (const c of commands) expect(c.describe).to.be.a("string").and.not.equal("");
  });

  it("waggle version prints the version, commit and Node version", async () => {
    const io = captureIo();
    expect(await runCli(["version"], io)).to.equal(0);
    const [first, second] = io.stdout.trimEnd().split("\n");
    expect(first).to.match(/^waggle \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)$/);
    expect(second).to.equal(`node ${process.version}`);
    const json = captureIo();
    expect(await runCli(["version", "--json"], json)).to.equal(0);
    expect(JSON.parse(json.stdout)).to.have.keys(["version", "commit", "node"]);
  });
});
