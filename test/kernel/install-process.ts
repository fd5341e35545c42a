// Runs `waggle install` / `waggle uninstall` as the container would: a child process of the
// compiled CLI (out/app/main.js on the project's Node), in a scratch "host" layout: CNI bin
// and net dirs, a projected-style service account dir, and a unique bpffs root.

import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { uniqueName } from "../support/names";
import { type LogLine, scratchDir, waitFor } from "../unit/install-fixtures";

const repo = join(__dirname, "..", "..", "..");
const nodeBin = join(repo, "node_modules", ".bin", "node");
const cliMain = join(repo, "out", "app", "main.js");
/** The single executable `npm run build` makes. */
export const SEA_BINARY = join(repo, "dist", "waggle");

export const TEST_CA =
  "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZmFrZSBjYSBmb3IgdGVzdHM=\n-----END CERTIFICATE-----\n";

/** A scratch node layout for the installer. */
export class InstallHost {
  readonly root: string;
  readonly binDir: string;
  readonly netDir: string;
  readonly saDir: string;
  readonly bpfRoot: string;
  readonly binary: string;
  private readonly removeRoot: () => void;

  constructor() {
    const { dir, remove } = scratchDir("installhost");
    this.root = dir;
    this.removeRoot = remove;
    this.binDir = join(dir, "opt-cni-bin");
    this.netDir = join(dir, "etc-cni-net.d");
    this.saDir = join(dir, "serviceaccount");
    this.bpfRoot = join("/sys/fs/bpf", uniqueName("i"));
    this.binary = join(dir, "waggle-build");
    for (const d of [this.binDir, this.netDir, this.saDir]) mkdirSync(d);
    copyFileSync("/bin/true", this.binary);
    writeFileSync(join(this.saDir, "token"), "token-1");
    writeFileSync(join(this.saDir, "ca.crt"), TEST_CA);
  }

  flags(extra: string[] = []): string[] {
    return [
      "--cni-bin-dir",
      this.binDir,
      "--cni-net-dir",
      this.netDir,
      "--bpf-root",
      this.bpfRoot,
      "--binary",
      this.binary,
      "--token-file",
      join(this.saDir, "token"),
      "--ca-file",
      join(this.saDir, "ca.crt"),
      "--kubernetes-service-host",
      "10.96.0.1",
      "--kubernetes-service-port",
      "443",
      "--health-address",
      "127.0.0.1",
      "--health-port",
      "0",
      ...extra,
    ];
  }

  uninstallFlags(): string[] {
    return ["--cni-bin-dir", this.binDir, "--cni-net-dir", this.netDir, "--bpf-root", this.bpfRoot];
  }

  /** Removes the scratch dirs and whatever is left under the bpffs root. */
  remove(): void {
    this.removeRoot();
    rmSync(this.bpfRoot, { recursive: true, force: true });
  }
}

/** A running CLI child with its JSON log lines. */
export class CliProcess {
  readonly proc: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = "";
  stdout = "";
  readonly exited: Promise<number | null>;

  /** Runs the compiled CLI on the project's Node, or `executable` (e.g. dist/waggle). */
  constructor(args: string[], env: NodeJS.ProcessEnv = {}, executable?: string) {
    const [command, argv] = executable ? [executable, args] : [nodeBin, [cliMain, ...args]];
    this.proc = spawn(command, argv, {
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc.stdout?.on("data", (d: Buffer) => {
      this.stdout += d.toString();
    });
    let partial = "";
    this.proc.stderr?.on("data", (d: Buffer) => {
      this.stderr += d.toString();
      partial += d.toString();
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
      }
    });
    this.exited = new Promise((resolve) => this.proc.once("exit", (code) => resolve(code)));
  }

  async waitForLog(message: string, timeoutMs = 30_000): Promise<LogLine> {
    await waitFor(
      `log "${message}"`,
      () => this.lines.some((l) => l.message === message),
      timeoutMs,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; stderr so far: ${this.stderr.slice(-1500)}`);
    });
    return this.lines.find((l) => l.message === message) as LogLine;
  }

  /** Sends SIGTERM and resolves with the exit code (rejects after `timeoutMs`). */
  async terminate(timeoutMs = 5000): Promise<number | null> {
    this.proc.kill("SIGTERM");
    return Promise.race([
      this.exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("no exit after SIGTERM")), timeoutMs),
      ),
    ]);
  }

  /** Kills it if still running (test cleanup). */
  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }
}

/** Runs a CLI command to completion. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliProcess & { code: number | null }> {
  const p = new CliProcess(args, env);
  const code = await p.exited;
  return Object.assign(p, { code });
}

export async function httpGet(
  port: number,
  path: string,
): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}
