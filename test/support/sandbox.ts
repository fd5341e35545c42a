// A sandbox: a network namespace plus a cgroup v2 directory, and processes run inside both
// as a chosen uid/gid. Pods and the test node (test/support/pod.ts) are sandboxes.
//
// A process enters the sandbox in this order: a root `sh` writes its own pid into the
// cgroup's cgroup.procs, then execs `nsenter --net=/run/netns/<name>` which execs `setpriv`
// which drops to the uid/gid/groups and execs the command. Every step is an exec, so the pid
// the caller sees is the command's pid, and the command never runs outside the cgroup or the
// netns. (`ip netns exec` is not used for processes: it also remounts /sys in a private mount
// namespace, which the cgroup path written above would not survive.)

import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { cgroup2Root } from "../../base/cgroup2";
import {
  COMMAND_PATH,
  type CommandOptions,
  type CommandResult,
  run,
  runChecked,
  runSync,
  sleepSync,
} from "./command";
import { RUN_TAG } from "./names";
import { isAlive, netnsInode, pidsInNetns } from "./procs";
import { type TrackedResource, track } from "./resources";

/** The identity a sandboxed process runs as. Defaults: uid 0, gid = uid, no supplementary groups. */
export interface RunAs {
  uid?: number;
  gid?: number;
  /** Supplementary groups; [] (default) clears them. */
  groups?: number[];
}

export type SandboxExecOptions = RunAs & CommandOptions;

/** The directory under the cgroup2 root that holds every test cgroup (shared by all runs). */
export function testCgroupParent(): string {
  return join(cgroup2Root(), "waggle-test");
}

/** The argv that runs `cmd args` inside a netns and cgroup as the given identity. */
export function sandboxArgv(
  netnsPath: string,
  cgroupDir: string,
  cmd: string,
  args: readonly string[],
  as: RunAs = {},
): string[] {
  const uid = as.uid ?? 0;
  const gid = as.gid ?? uid;
  const groups = as.groups ?? [];
  const privileges = ["--reuid", String(uid), "--regid", String(gid)];
  privileges.push(...(groups.length > 0 ? ["--groups", groups.join(",")] : ["--clear-groups"]));
  return [
    "-c",
    'echo $$ > "$1" || exit 125; shift; exec "$@"',
    "sh",
    join(cgroupDir, "cgroup.procs"),
    "nsenter",
    `--net=${netnsPath}`,
    "setpriv",
    ...privileges,
    "--",
    cmd,
    ...args,
  ];
}

/** A process running inside a sandbox. Output is collected line by line. */
export class SandboxProcess {
  readonly pid: number;
  readonly stdoutLines: string[] = [];
  readonly stderrLines: string[] = [];
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];
  private exitState: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly child: ChildProcessWithoutNullStreams,
    readonly description: string,
  ) {
    if (child.pid === undefined) throw new Error(`${description}: spawn failed`);
    this.pid = child.pid;
    const collect = (stream: NodeJS.ReadableStream, into: string[]) =>
      createInterface({ input: stream }).on("line", (line) => {
        into.push(line);
        this.notify();
      });
    collect(child.stdout, this.stdoutLines);
    collect(child.stderr, this.stderrLines);
    child.stdin.on("error", () => {});
    this.exited = new Promise((resolve) => {
      child.on("close", (code, signal) => {
        this.exitState = { code, signal };
        this.notify();
        resolve(this.exitState);
      });
    });
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** True until the process has exited and its output is drained. */
  get running(): boolean {
    return this.exitState === undefined;
  }

  /**
   * Waits for a stdout line matching `predicate` (lines already printed count) and returns it.
   * Rejects with the process's output when it exits first or after timeoutMs.
   */
  async waitForLine(predicate: (line: string) => boolean, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.stdoutLines.find(predicate);
      if (line !== undefined) return line;
      if (this.exitState)
        throw new Error(
          `${this.description} exited (${JSON.stringify(this.exitState)}) ${this.output()}`,
        );
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `${this.description}: no matching line after ${timeoutMs} ms ${this.output()}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The output so far, for error messages. */
  output(): string {
    return `stdout: ${this.stdoutLines.join("\n")} stderr: ${this.stderrLines.join("\n")}`.slice(
      0,
      4000,
    );
  }

  /** Sends a signal (SIGTERM by default) and waits for the exit. */
  async kill(
    signal: NodeJS.Signals = "SIGTERM",
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exitState) return this.exitState;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
    return this.exited;
  }
}

/** A network namespace plus a cgroup; subclasses add interfaces. Create with a factory. */
export class Sandbox {
  /** The netns name (ip netns) and the cgroup directory name. */
  readonly name: string;
  readonly netnsPath: string;
  readonly cgroupDir: string;
  private inode = 0;
  private tracked: TrackedResource | undefined;
  private readonly processes = new Set<SandboxProcess>();

  protected constructor(
    name: string,
    /** What the sandbox is for, in messages ("pod a", "node"). */
    readonly label: string,
  ) {
    if (!name.startsWith(RUN_TAG))
      throw new Error(`sandbox name ${name} does not carry this run's tag ${RUN_TAG}`);
    this.name = name;
    this.netnsPath = `/run/netns/${name}`;
    this.cgroupDir = join(testCgroupParent(), name);
  }

  /** The inode of the netns (what /proc/<pid>/ns/net of a process inside shows). */
  get netnsInode(): number {
    return this.inode;
  }

  /**
   * Creates the netns (lo up) and the cgroup, registered for teardown before anything is
   * made, then runs `configure`; on any failure everything made so far is removed.
   */
  protected async materialize(configure: () => Promise<void>): Promise<void> {
    this.tracked = track(`${this.label} (${this.name})`, () => this.teardownSync());
    try {
      await runChecked("ip", ["netns", "add", this.name]);
      this.inode = netnsInode(this.netnsPath);
      mkdirSync(testCgroupParent(), { recursive: true });
      mkdirSync(this.cgroupDir);
      await this.ip(["link", "set", "lo", "up"]);
      await configure();
    } catch (e) {
      this.tracked.release();
      throw e;
    }
  }

  /** Runs `ip -n <netns> args...` and returns stdout; throws on failure. */
  ip(args: readonly string[]): Promise<string> {
    return runChecked("ip", ["-n", this.name, ...args]);
  }

  /** Runs `ip -n <netns> -batch -` with one command per line (one process for many changes). */
  ipBatch(lines: readonly string[]): Promise<string> {
    return runChecked("ip", ["-n", this.name, "-batch", "-"], { input: `${lines.join("\n")}\n` });
  }

  /** Sets sysctls of this netns (net.* keys only: they are per network namespace). */
  async sysctl(settings: Record<string, string | number>): Promise<void> {
    const assignments = Object.entries(settings).map(([k, v]) => {
      if (!k.startsWith("net."))
        throw new Error(`sysctl ${k} is not per-netns; refusing to change it host-wide`);
      return `${k}=${v}`;
    });
    await runChecked("nsenter", [`--net=${this.netnsPath}`, "sysctl", "-q", "-w", ...assignments]);
  }

  /** Runs a command inside the sandbox as the given identity and waits for it. */
  exec(
    cmd: string,
    args: readonly string[] = [],
    opts: SandboxExecOptions = {},
  ): Promise<CommandResult> {
    return run("sh", sandboxArgv(this.netnsPath, this.cgroupDir, cmd, args, opts), {
      cwd: "/",
      ...opts,
    });
  }

  /** Like exec, but throws (with stderr) on a non-zero exit and returns stdout. */
  execChecked(
    cmd: string,
    args: readonly string[] = [],
    opts: SandboxExecOptions = {},
  ): Promise<string> {
    return runChecked("sh", sandboxArgv(this.netnsPath, this.cgroupDir, cmd, args, opts), {
      cwd: "/",
      ...opts,
    });
  }

  /** Starts a long-running command inside the sandbox; destroy() kills it if still running. */
  spawn(
    cmd: string,
    args: readonly string[] = [],
    as: RunAs & { env?: NodeJS.ProcessEnv } = {},
  ): SandboxProcess {
    const child = spawn("sh", sandboxArgv(this.netnsPath, this.cgroupDir, cmd, args, as), {
      cwd: "/", // the caller's directory may not be readable by the sandbox's uid
      env: as.env ?? { ...process.env, PATH: COMMAND_PATH },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const proc = new SandboxProcess(
      child,
      `${cmd} in ${this.label} (${this.name}) as uid ${as.uid ?? 0}`,
    );
    this.processes.add(proc);
    void proc.exited.then(() => this.processes.delete(proc));
    return proc;
  }

  /** Kills every process, removes the cgroup and the netns. Safe to call twice. */
  async destroy(): Promise<void> {
    this.destroySync();
    // Let the killed children's exit events be delivered before returning.
    await Promise.all([...this.processes].map((p) => p.exited));
  }

  /** destroy() without waiting for the exit events of the killed processes. */
  destroySync(): void {
    this.tracked?.release();
  }

  /** Subclasses remove their own resources first (interfaces in other namespaces). */
  protected teardownSync(): void {
    this.killAllSync();
    removeCgroupDirSync(this.cgroupDir);
    if (existsSync(this.netnsPath)) runSync("ip", ["netns", "del", this.name]);
  }

  /** SIGKILLs everything in the cgroup (cgroup.kill) and anything else still in the netns. */
  private killAllSync(): void {
    killCgroupSync(this.cgroupDir);
    if (this.inode === 0) return;
    let stragglers = pidsInNetns(this.inode);
    killPidsSync(stragglers);
    for (let i = 0; i < 200 && stragglers.length > 0; i++) {
      sleepSync(5);
      stragglers = stragglers.filter(isAlive);
    }
    if (stragglers.length > 0)
      throw new Error(`${this.label}: processes ${stragglers.join(",")} survived SIGKILL`);
  }
}

/** Kills every process of a cgroup and waits until it is empty (no-op when it is gone). */
export function killCgroupSync(dir: string, timeoutMs = 3000): void {
  if (!existsSync(dir)) return;
  const hasKill = existsSync(join(dir, "cgroup.kill")); // Linux 5.14+
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (hasKill) writeFileSync(join(dir, "cgroup.kill"), "1");
    else
      killPidsSync(
        readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number),
      );
    sleepSync(5);
    if (!/populated 1/.test(readFileSync(join(dir, "cgroup.events"), "utf8"))) return;
    if (Date.now() > deadline)
      throw new Error(`cgroup ${dir} still populated ${timeoutMs} ms after killing it`);
  }
}

/** SIGKILLs processes, ignoring those already gone. */
function killPidsSync(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
}

/** Removes a cgroup directory and any child cgroups (deepest first); no-op when gone. */
export function removeCgroupDirSync(dir: string): void {
  if (!existsSync(dir)) return;
  killCgroupSync(dir);
  for (const entry of readdirCgroups(dir)) removeCgroupDirSync(join(dir, entry));
  // rmdir may briefly report EBUSY while the last task is being released.
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY" || attempt >= 100) throw e;
      sleepSync(10);
    }
  }
}

/** The child cgroups of a cgroup directory. */
export function readdirCgroups(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}
