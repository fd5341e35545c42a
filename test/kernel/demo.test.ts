// `npm run demo` end to end, as a new user runs it (scripts/demo: prepare, build if stale, then
// the story): twice in a row, each time telling the whole story and leaving nothing behind;
// interrupted with Ctrl-C (SIGINT to its process group) or stopped with SIGTERM while its pods
// and sidecars run, it still removes everything it made; and without root it says so and
// does nothing.
import "../support/hooks";
import { spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { run, runChecked } from "../support/command";
import { REPO } from "../support/libcni";
import { cgroupOfPid, commandOfPid, isAlive, listPids } from "../support/procs";
import { testCgroupParent } from "../support/sandbox";

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs scripts/demo in its own process group (as a terminal runs a foreground job). With
 * `stopAt`, sends the signal once stdout contains the text: SIGINT to the whole group (what
 * Ctrl-C does), SIGTERM to the demo alone (what kill does).
 */
function runDemo(stopAt?: { text: string; signal: "SIGINT" | "SIGTERM" }): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(REPO, "scripts", "demo"), [], {
      cwd: REPO,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let stopped = false;
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (stopAt && !stopped && stdout.includes(stopAt.text)) {
        stopped = true;
        const pid = child.pid as number;
        process.kill(stopAt.signal === "SIGINT" ? -pid : pid, stopAt.signal);
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The run tag the demo names everything with ("everything this demo creates is named X..."). */
function runTag(stdout: string): string {
  const m = /everything this demo creates is named (wg[0-9a-z]+)\.\.\./.exec(stdout);
  expect(m, `no run tag in the demo's output:\n${stdout}`).to.not.equal(null);
  return (m as RegExpExecArray)[1];
}

/** Everything carrying the tag that still exists: netns, cgroups, bpffs roots, processes. */
async function leftovers(tag: string): Promise<string[]> {
  const netns = (await runChecked("ip", ["netns", "list"]))
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter((n) => n.startsWith(tag));
  const list = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
  const cgroups = list(testCgroupParent()).filter((n) => n.startsWith(tag));
  const pins = list("/sys/fs/bpf").filter((n) => n.startsWith(tag));
  // Live ones: children killed at the end may linger a moment as zombies until reaped.
  const processes = listPids().filter(
    (pid) => cgroupOfPid(pid)?.includes(`/${tag}`) && isAlive(pid),
  );
  const links = (await runChecked("ip", ["-o", "link", "show"]))
    .split("\n")
    .filter((l) => l.includes(tag));
  return [
    ...netns.map((n) => `netns ${n}`),
    ...cgroups.map((c) => `cgroup ${c}`),
    ...pins.map((p) => `bpffs ${p}`),
    ...processes.map((p) => `process ${p} ${commandOfPid(p)} in ${cgroupOfPid(p)}`),
    ...links.map((l) => `host link ${l}`),
  ];
}

/** The numbered section titles, in order. */
function sections(stdout: string): string[] {
  return stdout
    .split("\n")
    .map((l) => /^(\d+)\. (.*)$/.exec(l)?.[2])
    .filter((t): t is string => t !== undefined);
}

describe("npm run demo (scripts/demo) end to end", function () {
  // A stale checkout makes the demo build first (minutes); a built one runs in seconds.
  this.timeout(900_000);

  for (const attempt of ["first", "second"]) {
    it(`tells the whole story and leaves nothing behind (${attempt} run in a row)`, async () => {
      const r = await runDemo();
      const story = `${r.stdout}\n--- stderr ---\n${r.stderr}`;
      expect(r.code, story).to.equal(0);
      expect(sections(r.stdout), story).to.deep.equal([
        "This machine (waggle doctor)",
        "A simulated node and its CNI chain",
        "Three pods join the node through the chain (CNI ADD)",
        "Istio's validation probe, before the sidecar starts",
        "Sidecars and apps",
        "Traffic, and what each proxy saw",
        "Counters and policy (waggle status)",
        "The plain pod was untouched",
        "Pods leave the node (CNI DEL, plugins in reverse order)",
        "After DEL (waggle status)",
        "Cleaning up",
      ]);
      // waggle's decisions
      expect(r.stdout).to.match(
        /shop\/frontend +attached: 10\.250\.\d+\.\d+ on eth0, proxy uid 1337/,
      );
      expect(r.stdout).to.match(/shop\/backend +attached: /);
      expect(r.stdout).to.match(/shop\/plain +skipped: no sidecar\.istio\.io\/status/);
      // the validation probe
      expect(r.stdout).to.include("SO_ORIGINAL_DST there: 127.0.0.6:15002");
      expect(r.stdout).to.include("the init container would pass");
      // the traffic: three requests answered, the original destinations the proxies saw
      const backendIp = /shop\/backend +(10\.250\.\d+\.\d+)/.exec(r.stdout)?.[1];
      const plainIp = /shop\/plain +(10\.250\.\d+\.\d+)/.exec(r.stdout)?.[1];
      expect(r.stdout).to.include(
        `a) frontend's app (uid 1000): GET http://${backendIp}:8080/ -> 200`,
      );
      expect(r.stdout).to.include(
        `b) plain's app (uid 1000): GET http://${backendIp}:8080/ -> 200`,
      );
      expect(r.stdout).to.include(
        `c) frontend's app (uid 1000): GET http://${plainIp}:8080/ -> 200`,
      );
      expect(r.stdout).to.include(`SO_ORIGINAL_DST said ${backendIp}:8080`);
      expect(r.stdout).to.include(`SO_ORIGINAL_DST said ${plainIp}:8080`);
      expect(r.stdout).to.match(/backend's nginx logged the request from 127\.0\.0\.6:\d+/);
      // waggle status lists the two meshed pods with counters, and not the plain one
      expect(r.stdout).to.not.include("is not in this build of waggle");
      const status = r.stdout.split("Counters and policy (waggle status)")[1].split("\n8. ")[0];
      expect(status).to.include("shop/frontend");
      expect(status).to.include("shop/backend");
      expect(status).to.not.include("shop/plain");
      const afterDel = r.stdout.split("After DEL (waggle status)")[1].split("\n11. ")[0];
      expect(afterDel).to.not.include("shop/");
      // the plain pod untouched
      expect(r.stdout).to.match(/plain +0 BPF programs on its cgroup, no sk_lookup program/);
      expect(r.stdout).to.match(/frontend +\d+ BPF programs on its cgroup, the sk_lookup inbound/);
      // cleanup, as the demo says and as the machine shows
      const tag = runTag(r.stdout);
      expect(r.stdout).to.include(`nothing named ${tag}... is left`);
      expect(await leftovers(tag)).to.deep.equal([]);
      // no stack traces on the happy path
      expect(story).to.not.match(/\n\s+at .*\(.*:\d+:\d+\)/);
    });
  }

  for (const [signal, how, code] of [
    ["SIGINT", "Ctrl-C (SIGINT to its process group)", 130],
    ["SIGTERM", "SIGTERM to the demo alone", 143],
  ] as const) {
    it(`${how} while the pods and sidecars run: exits ${code} after removing everything`, async () => {
      const r = await runDemo({ text: "Traffic, and what each proxy saw", signal });
      const story = `${r.stdout}\n--- stderr ---\n${r.stderr}`;
      expect(r.code, story).to.equal(code);
      expect(r.stdout, story).to.include(
        `${signal === "SIGINT" ? "interrupted" : "terminated"}: cleaning up`,
      );
      expect(r.stdout, story).to.include("done: nothing left behind");
      expect(await leftovers(runTag(r.stdout))).to.deep.equal([]);
    });
  }

  it("refuses to run without root, saying why, before touching anything", async () => {
    // A copy in a directory every uid can enter (the checkout may be below /root).
    const dir = mkdtempSync(join(tmpdir(), "waggle-demo-"));
    try {
      chmodSync(dir, 0o755);
      mkdirSync(join(dir, "scripts"));
      copyFileSync(join(REPO, "scripts", "demo"), join(dir, "scripts", "demo"));
      chmodSync(join(dir, "scripts", "demo"), 0o755);
      const r = await run(
        "setpriv",
        ["--reuid", "1000", "--regid", "1000", "--clear-groups", join(dir, "scripts", "demo")],
        { cwd: "/" },
      );
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include("demo: needs root");
      expect(r.stdout).to.equal("");
      expect(readdirSync(dir)).to.deep.equal(["scripts"]); // no node_modules, no build
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
