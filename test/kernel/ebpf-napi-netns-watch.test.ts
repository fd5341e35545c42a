// Kernel tests of ebpf-napi's rtnetlink change notifications from other network namespaces
// (lib/netns-watch.ts, src/netns_watch.cc) and of lockPath (src/flock.cc).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { BpfError, lockPath, NetnsWatcher } from "ebpf-napi";
import "../support/hooks";
import { uniqueName } from "../support/names";
import { createPod, type Pod } from "../support/pod";

/** `ip link add` arguments of a veth pair (both ends in the netns; gone with it). */
function vethPair(): string[] {
  const name = uniqueName("d");
  return ["link", "add", name, "type", "veth", "peer", "name", `${name}p`];
}

/** Collects watch ids as the callback reports them; `next` waits for the next report. */
class Reports {
  readonly ids: number[] = [];
  private waiters: ((id: number) => void)[] = [];
  readonly onChange = (id: number) => {
    this.ids.push(id);
    for (const w of this.waiters.splice(0)) w(id);
  };
  next(timeoutMs = 2000): Promise<number | "none"> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve("none"), timeoutMs);
      this.waiters.push((id) => {
        clearTimeout(timer);
        resolve(id);
      });
    });
  }
  /** Waits until the reports stop (a burst of messages may come as more than one call). */
  async quiet(ms = 200): Promise<void> {
    while ((await this.next(ms)) !== "none") {}
  }
}

describe("ebpf-napi: rtnetlink change notifications of another netns", function () {
  this.timeout(30_000);
  let pod: Pod;
  let other: Pod;
  let reports: Reports;
  let watcher: NetnsWatcher;

  before(async () => {
    pod = await createPod({ label: "watched" });
    other = await createPod({ label: "unwatched", node: pod.node });
  });
  beforeEach(() => {
    reports = new Reports();
    watcher = new NetnsWatcher(reports.onChange);
  });
  afterEach(() => watcher.close());
  after(async () => {
    await other?.destroy();
    await pod?.destroy();
  });

  it("reports an interface, an address and a route added and removed, each with the watch's id", async () => {
    const id = watcher.add(pod.netnsPath);
    const dummy = uniqueName("d");
    for (const cmd of [
      ["link", "add", dummy, "type", "veth", "peer", "name", `${dummy}p`],
      ["link", "set", dummy, "up"],
      ["addr", "add", "10.77.0.2/24", "dev", dummy],
      ["route", "add", "10.78.0.0/16", "dev", dummy],
      ["route", "del", "10.78.0.0/16", "dev", dummy],
      ["addr", "del", "10.77.0.2/24", "dev", dummy],
      ["link", "del", dummy],
    ]) {
      const next = reports.next();
      await pod.ip(cmd);
      expect(await next, `after ip ${cmd.join(" ")}`).to.equal(id);
      await reports.quiet(50);
    }
  });

  it("says nothing about changes in a netns it does not watch", async () => {
    watcher.add(pod.netnsPath);
    await reports.quiet();
    const next = reports.next(500);
    await other.ip(vethPair());
    expect(await next).to.equal("none");
  });

  it("tells two watched namespaces apart", async () => {
    const a = watcher.add(pod.netnsPath);
    const b = watcher.add(other.netnsPath);
    expect(a).to.not.equal(b);
    const next = reports.next();
    await other.ip(vethPair());
    expect(await next).to.equal(b);
  });

  it("a removed watch reports nothing more; close is idempotent and add after close fails", async () => {
    const id = watcher.add(pod.netnsPath);
    watcher.remove(id);
    watcher.remove(id);
    const next = reports.next(500);
    await pod.ip(vethPair());
    expect(await next).to.equal("none");
    watcher.close();
    watcher.close();
    expect(() => watcher.add(pod.netnsPath)).to.throw();
  });

  it("a netns path that does not exist is an ENOENT BpfError", () => {
    expect(() => watcher.add(`/run/netns/${uniqueName("m")}`))
      .to.throw(BpfError)
      .with.property("code", "ENOENT");
  });
});

describe("ebpf-napi: lockPath", function () {
  this.timeout(30_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-lock-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Another process takes the lock on dir; resolves with how long it waited (ms) once it has
   * it. `ready` resolves when it is about to ask for the lock.
   */
  function otherProcess(): { ready: Promise<void>; waited: Promise<number> } {
    const addon = require.resolve("ebpf-napi");
    const child = spawn(
      process.execPath,
      [
        "-e",
        `const {lockPath}=require(${JSON.stringify(addon)});console.log("ready");const t=Date.now();const r=lockPath(${JSON.stringify(dir)});console.log(Date.now()-t);r();`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    let onReady = () => {};
    const ready = new Promise<void>((r) => {
      onReady = r;
    });
    child.stdout.on("data", (d) => {
      out += d;
      if (out.startsWith("ready\n")) onReady();
    });
    const waited = new Promise<number>((resolve, reject) =>
      child.on("exit", (code) =>
        code === 0 ? resolve(Number(out.split("\n")[1])) : reject(new Error(`exit ${code}`)),
      ),
    );
    return { ready, waited };
  }

  it("another process waits for a held lock until it is released", async () => {
    const release = lockPath(dir);
    const other = otherProcess();
    await other.ready;
    await new Promise((r) => setTimeout(r, 500));
    release();
    expect(await other.waited).to.be.at.least(400);
  });

  it("a free lock is taken at once", async () => {
    const other = otherProcess();
    expect(await other.waited).to.be.below(400);
  });

  it("a path that does not exist is an ENOENT BpfError", () => {
    expect(() => lockPath(join(dir, "missing")))
      .to.throw(BpfError)
      .with.property("code", "ENOENT");
  });
});
