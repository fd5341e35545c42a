// The installer's pod follower (install/pod-follower.ts) over a fake datapath port: which pods
// it watches and refreshes when, and every failure path (a netns it cannot watch, a refresh
// that fails, a listing that fails) leaves the other pods followed and says so in the log.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { PodFollower } from "../../install/pod-follower";
import { capturingLogger, FakeFollowPort as FakePort, waitFor } from "./install-fixtures";

describe("install: pod follower", () => {
  let dir: string;
  let port: FakePort;
  let follower: PodFollower;
  let logs: ReturnType<typeof capturingLogger>;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-follow-"));
    port = new FakePort(dir);
    logs = capturingLogger();
  });
  afterEach(() => {
    follower?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (scanMs = 50) => {
    follower = new PodFollower({ bpfRoot: "/unused", port, log: logs.log, scanMs });
    follower.start();
    return follower;
  };

  it("at start every attached pod is watched, then refreshed once", () => {
    port.pods.set("a", "/run/netns/a").set("b", "/run/netns/b");
    start();
    expect(follower.followed()).to.deep.equal(["a", "b"]);
    expect([...port.watches.values()]).to.deep.equal(["/run/netns/a", "/run/netns/b"]);
    expect(port.refreshed).to.deep.equal(["a", "b"]);
  });

  it("a burst of changes in one netns is one refresh of that pod only", async () => {
    port.pods.set("a", "/run/netns/a").set("b", "/run/netns/b");
    start(60_000);
    port.refreshed = [];
    port.change("/run/netns/a");
    port.change("/run/netns/a");
    port.change("/run/netns/a");
    await new Promise((r) => setImmediate(r));
    expect(port.refreshed).to.deep.equal(["a"]);
  });

  it("a pod attached later is found (inotify on the pods directory) and one detached is dropped", async () => {
    start(60_000);
    port.pods.set("late", "/run/netns/late");
    mkdirSync(join(dir, "late"));
    await waitFor("late followed", () => follower.followed().includes("late"), 2000);
    expect(port.refreshed).to.deep.equal(["late"]);
    port.pods.delete("late");
    rmSync(join(dir, "late"), { recursive: true });
    await waitFor("late dropped", () => follower.followed().length === 0, 2000);
    expect(port.watches.size).to.equal(0);
  });

  it("without inotify events, the periodic scan finds pods", async () => {
    rmSync(dir, { recursive: true }); // no pods directory yet: nothing to watch
    start(30);
    port.pods.set("a", "/run/netns/a");
    await waitFor("a followed", () => follower.followed().includes("a"), 2000);
  });

  it("a netns that cannot be watched leaves that pod unfollowed and the others followed", () => {
    port.pods.set("gone", "/run/netns/gone").set("b", "/run/netns/b");
    port.failWatch.add("/run/netns/gone");
    start();
    expect(follower.followed()).to.deep.equal(["b"]);
    expect(port.refreshed).to.deep.equal(["b"]);
    expect(logs.lines.some((l) => /cannot be watched/.test(String(l.message)))).to.equal(true);
  });

  it("a failing refresh is counted and logged; the pod stays followed", () => {
    port.pods.set("a", "/run/netns/a");
    port.failRefresh.add("a");
    start();
    expect(follower.counts.failed).to.equal(1);
    expect(follower.followed()).to.deep.equal(["a"]);
    const warn = logs.lines.find((l) => l.level === "warn");
    expect(String(warn?.message)).to.contain("entries are unchanged");
    expect(String(warn?.error)).to.contain("netns unreadable");
  });

  it("a refresh that changed entries is logged with the counts; a skipped one only counted", () => {
    port.pods.set("a", "/run/netns/a");
    port.outcome = { status: "applied", added: 2, removed: 1 };
    start();
    expect(follower.counts).to.deep.include({ applied: 1, changed: 1 });
    expect(logs.lines.some((l) => l.added === 2 && l.removed === 1)).to.equal(true);
    port.outcome = { status: "skipped", reason: "not attached" };
    port.change("/run/netns/a");
    return new Promise((r) => setImmediate(r)).then(() =>
      expect(follower.counts.skipped).to.equal(1),
    );
  });

  it("a listing that fails is logged and the pods followed so far stay followed", async () => {
    port.pods.set("a", "/run/netns/a");
    start(20);
    port.failList = true;
    await waitFor(
      "warned",
      () => logs.lines.some((l) => /listing attached pods failed/.test(String(l.message))),
      2000,
    );
    expect(follower.followed()).to.deep.equal(["a"]);
  });

  it("stop closes the watcher and nothing is refreshed after it", async () => {
    port.pods.set("a", "/run/netns/a");
    start();
    follower.stop();
    expect(port.closed).to.equal(true);
    port.refreshed = [];
    port.onChange(1);
    await new Promise((r) => setTimeout(r, 80));
    expect(port.refreshed).to.deep.equal([]);
  });
});
