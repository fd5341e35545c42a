// upgradePrograms (what `waggle install` runs when it finds an earlier build's datapath)
// under live traffic: every pod link (cgroup and netns) gets the new program in place while
// connections keep flowing; connections made before the swap, accepted before or after it,
// and connections made after it all land where they should with the right SO_ORIGINAL_DST;
// pods whose cgroup and netns are already gone do not stop the upgrade.

import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { expect } from "chai";
import { Link, Program } from "ebpf-napi";
import {
  ALL_PROGRAMS,
  applyNodeBypass,
  BYPASS_RECV_PROGRAM,
  checkPod,
  detachPod,
  ensureSharedPrograms,
  LISTENER_FINDER,
  linkProgId,
  listPods,
  MAP_NAMES,
  POD_LINKS,
  paths,
  type UpgradeReport,
  upgradePrograms,
} from "../../datapath";
import "../support/hooks";
import { uniqueName } from "../support/names";
import { createNode, createPod, type Node, type Pod } from "../support/pod";
import type { SandboxProcess } from "../support/sandbox";
import { PYTHON } from "../support/sockprobe";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";

/**
 * The proxy: listens on every address in argv; "accept I TAG" on stdin accepts one
 * connection on listener I, prints what it sees (SO_ORIGINAL_DST read now) and echoes lines.
 */
const PROXY = `
import json, socket, struct, sys, threading
def original_dst(c):
    try:
        raw = c.getsockopt(socket.SOL_IP, 80, 16)
        return "%s:%d" % (socket.inet_ntoa(raw[4:8]), struct.unpack("!H", raw[2:4])[0])
    except OSError as e:
        return "errno %d" % e.errno
def echo(c):
    f = c.makefile("rwb")
    for line in f:
        f.write(line); f.flush()
listeners = []
for addr in sys.argv[1:]:
    host, port = addr.rsplit(":", 1)
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, int(port))); l.listen(16); listeners.append(l)
print(json.dumps({"event": "ready"}), flush=True)
for cmd in sys.stdin:
    _, index, tag = cmd.split()
    c, peer = listeners[int(index)].accept()
    print(json.dumps({"event": "accept", "tag": tag, "peer": "%s:%d" % peer,
                      "local": "%s:%d" % c.getsockname(), "originalDst": original_dst(c)}), flush=True)
    threading.Thread(target=echo, args=(c,), daemon=True).start()
`;

/**
 * The app: one connection; "start" begins numbered round trips (one per ms, each echo
 * checked, 5 s socket timeout), "mark N" prints the count so far, "stop" ends and prints it.
 */
const STREAM = `
import json, socket, sys, threading, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
state = {"count": 0, "error": None}
stop = threading.Event()
def run():
    f = s.makefile("rwb")
    try:
        while not stop.is_set():
            n = state["count"]
            f.write(b"%d\\n" % n); f.flush()
            got = f.readline()
            if got != b"%d\\n" % n:
                raise RuntimeError("round trip %d echoed %r" % (n, got))
            state["count"] = n + 1
            time.sleep(0.001)
    except Exception as e:
        state["error"] = repr(e)
t = threading.Thread(target=run)
print(json.dumps({"event": "connected", "local": "%s:%d" % s.getsockname()}), flush=True)
for cmd in sys.stdin:
    word = cmd.split()
    if word[0] == "start":
        t.start()
    elif word[0] == "mark":
        print(json.dumps({"event": "mark", "seq": int(word[1]), **state}), flush=True)
    else:
        break
stop.set()
if t.is_alive():
    t.join()
print(json.dumps({"event": "done", **state}), flush=True)
`;

/** The installer's side of the race: upgradePrograms in a loop until stdin closes. */
const UPGRADER = `
const dp = require(process.argv[1]);
let upgrades = 0, error = null, done = false;
process.stdin.on("end", () => { done = true; }).resume();
(function loop() {
  if (done || error) {
    process.stdout.write(JSON.stringify({ upgrades, error }) + "\\n");
    return;
  }
  try {
    dp.upgradePrograms({ bpfRoot: process.argv[2] });
    upgrades++;
    process.stdout.write("upgraded\\n");
  } catch (e) { error = e.message; }
  setImmediate(loop);
})();
`;

const DATAPATH_MODULE = require.resolve("../../datapath");

interface StreamState {
  count: number;
  error: string | null;
}

function lineEvent<T>(proc: SandboxProcess, match: (e: Record<string, unknown>) => boolean) {
  return proc
    .waitForLine((l) => l.startsWith("{") && match(JSON.parse(l)), 10_000)
    .then((l) => JSON.parse(l) as T);
}

/** A client connection of the STREAM script. */
class Stream {
  private seq = 0;
  private constructor(readonly proc: SandboxProcess) {}

  static async open(from: Pod, to: string, as = { uid: 1000, gid: 1000 }): Promise<Stream> {
    const [host, port] = to.split(":");
    const proc = from.spawn(PYTHON, ["-c", STREAM, host, port], as);
    await lineEvent(proc, (e) => e.event === "connected");
    return new Stream(proc);
  }

  start(): void {
    this.proc.child.stdin.write("start\n");
  }

  async mark(): Promise<StreamState> {
    const seq = ++this.seq;
    this.proc.child.stdin.write(`mark ${seq}\n`);
    return lineEvent<StreamState>(this.proc, (e) => e.event === "mark" && e.seq === seq);
  }

  /** Waits until `more` further round trips have completed (fails on a stream error). */
  async flowing(more: number): Promise<StreamState> {
    const from = (await this.mark()).count;
    for (;;) {
      const now = await this.mark();
      if (now.error) return now;
      if (now.count >= from + more) return now;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async stop(): Promise<StreamState> {
    this.proc.child.stdin.write("stop\n");
    return lineEvent<StreamState>(this.proc, (e) => e.event === "done");
  }
}

/** A running PROXY script. */
class EchoProxy {
  private constructor(readonly proc: SandboxProcess) {}

  static async start(pod: Pod, listen: string[]): Promise<EchoProxy> {
    const proc = pod.spawn(PYTHON, ["-c", PROXY, ...listen], { uid: 1337, gid: 1337 });
    await lineEvent(proc, (e) => e.event === "ready");
    return new EchoProxy(proc);
  }

  async accept(listener: number, tag: string) {
    this.proc.child.stdin.write(`accept ${listener} ${tag}\n`);
    return lineEvent<{ peer: string; local: string; originalDst: string }>(
      this.proc,
      (e) => e.event === "accept" && e.tag === tag,
    );
  }
}

/** The program id each pod link runs, by program name. */
function podProgramIds(root: string, containerId: string): Record<string, number> {
  const ids: Record<string, number> = {};
  for (const name of POD_LINKS) {
    const id = linkProgId(paths.podLink(root, containerId, name));
    expect(id, `${name} link pinned`).to.be.a("number");
    ids[name] = id as number;
  }
  return ids;
}

/** The ids of the pinned shared programs (those pods link, or all), by name. */
function pinnedProgramIds(
  root: string,
  names: readonly string[] = POD_LINKS,
): Record<string, number> {
  return Object.fromEntries(
    names.map((name) => {
      const p = Program.openPinned(paths.prog(root, name));
      try {
        return [name, p.info().id];
      } finally {
        p.close();
      }
    }),
  );
}

/** The programs of these ids that are loaded now. */
function loaded(ids: number[]): number[] {
  return ids.filter((id) => {
    try {
      Program.fromId(id).close();
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return false;
      throw e;
    }
  });
}

/** Waits until no program of these ids is loaded any more (the kernel frees them after RCU). */
async function waitUnloaded(ids: number[]): Promise<number[]> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const still = loaded(ids);
    if (still.length === 0 || Date.now() > deadline) return still;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("kernel: upgradePrograms under live traffic", function () {
  this.timeout(60_000);
  let root: BpfRoot;
  let node: Node;
  let pod: Pod;
  let peer: Pod;
  let containerId: string;

  const attach = (p: Pod, id = uniqueName("k")) =>
    attachTestPod(p, root.opts, { containerId: id }).containerId;

  before(async () => {
    root = new BpfRoot();
    ensureSharedPrograms(root.opts);
    node = await createNode({ label: "upgrade node" });
    pod = await createPod({ node, label: "meshed pod" });
    peer = await createPod({ node, label: "unmeshed peer" });
    containerId = attach(pod);
  });
  after(async () => {
    await pod?.destroy();
    await peer?.destroy();
    await node?.destroy();
    root?.destroy();
  });

  it("swaps every pod link's program in place: live and queued connections keep working, new ones are captured by the new programs", async () => {
    const proxy = await EchoProxy.start(pod, ["127.0.0.1:15001", "0.0.0.0:15006"]);
    const inbound = `${pod.address(4)}:8080`;

    // Before the swap: a live outbound stream, a live inbound stream, and an outbound
    // connection that is established but waits in the proxy's accept queue.
    const out = await Stream.open(pod, "198.51.100.7:8080");
    expect(await proxy.accept(0, "out")).to.include({ originalDst: "198.51.100.7:8080" });
    const inb = await Stream.open(peer, inbound);
    expect(await proxy.accept(1, "in")).to.include({ local: inbound, originalDst: inbound });
    const queued = await Stream.open(pod, "198.51.100.8:8081");
    out.start();
    inb.start();
    expect((await out.flowing(50)).error).to.equal(null);
    expect((await inb.flowing(50)).error).to.equal(null);

    const before = podProgramIds(root.path, containerId);
    expect(before).to.deep.equal(pinnedProgramIds(root.path));
    const pinnedBefore = pinnedProgramIds(root.path, ALL_PROGRAMS);
    const report: UpgradeReport = upgradePrograms(root.opts);
    const after = podProgramIds(root.path, containerId);
    const pinnedAfter = pinnedProgramIds(root.path, ALL_PROGRAMS);

    expect(report).to.deep.include({
      action: "upgraded",
      pods: 1,
      linksUpdated: POD_LINKS.length,
      skipped: [],
      skipReasons: {},
      changedPrograms: [], // the same build: same instructions, new programs
    });
    expect(report.programIds).to.deep.equal(
      Object.fromEntries(
        ALL_PROGRAMS.map((n) => [n, { from: pinnedBefore[n], to: pinnedAfter[n] }]),
      ),
    );
    expect(after, "the pod runs the pinned programs").to.deep.equal(pinnedProgramIds(root.path));
    for (const name of ALL_PROGRAMS)
      expect(pinnedAfter[name], name).to.not.equal(pinnedBefore[name]);

    // The live connections did not notice: round trips go on after the swap.
    const outAfter = await out.flowing(100);
    const inAfter = await inb.flowing(100);
    expect(outAfter.error, "outbound stream").to.equal(null);
    expect(inAfter.error, "inbound stream").to.equal(null);
    // Made before the swap, accepted after it: the original destination is still there.
    expect(await proxy.accept(0, "queued")).to.include({ originalDst: "198.51.100.8:8081" });
    queued.start();
    expect((await queued.flowing(20)).error).to.equal(null);
    // New connections go through the new programs.
    const fresh = await Stream.open(pod, "198.51.100.9:8082");
    expect(await proxy.accept(0, "fresh")).to.include({ originalDst: "198.51.100.9:8082" });
    const freshIn = await Stream.open(peer, inbound);
    expect(await proxy.accept(1, "freshIn")).to.include({ local: inbound, originalDst: inbound });
    for (const s of [fresh, freshIn]) {
      s.start();
      expect((await s.flowing(20)).error).to.equal(null);
    }
    for (const s of [out, inb, queued, fresh, freshIn]) {
      const done = await s.stop();
      expect(done.error).to.equal(null);
    }
    const counters = listPods(root.opts).find((p) => p.containerId === containerId)?.counters;
    expect(counters).to.include({ outbound_redirected: 3, inbound_captured: 2, errors: 0 });

    // Nothing holds the old programs any more.
    expect(
      await waitUnloaded(Object.values(pinnedBefore)),
      "old programs still loaded",
    ).to.deep.equal([]);
  });

  it("checkPod names a link left on another program; the next upgrade puts the pinned one back", () => {
    expect(checkPod(containerId, root.opts)).to.deep.equal([]);
    const old = Program.openPinned(paths.prog(root.path, "waggle_connect4"));
    const pinned = old.info().id;
    try {
      upgradePrograms(root.opts); // the program pinned before is now held only by `old`
      const link = Link.openPinned(paths.podLink(root.path, containerId, "waggle_connect4"));
      try {
        link.update(old);
      } finally {
        link.close();
      }
      const now = pinnedProgramIds(root.path).waggle_connect4;
      expect(checkPod(containerId, root.opts)).to.deep.equal([
        `link waggle_connect4 runs program ${pinned}, not the pinned ${now}`,
      ]);
    } finally {
      old.close();
    }
    const report = upgradePrograms(root.opts);
    expect(report).to.deep.include({ linksUpdated: POD_LINKS.length, skipped: [] });
    expect(checkPod(containerId, root.opts)).to.deep.equal([]);
  });

  it("a pod whose cgroup and netns are already gone (DEL not yet run) is skipped and named; the others are swapped", async () => {
    const gone = await createPod({ node, label: "deleted pod" });
    const goneId = attach(gone);
    await gone.destroy();
    let detached = false;
    try {
      const before = podProgramIds(root.path, containerId);
      const finderBefore = pinnedProgramIds(root.path, [LISTENER_FINDER.name]);
      const report = upgradePrograms(root.opts);
      expect(report).to.deep.include({
        pods: 2,
        linksUpdated: POD_LINKS.length,
        skipped: [goneId],
      });
      expect(report.skipReasons[goneId]).to.match(/cgroup .* is gone/);
      const after = podProgramIds(root.path, containerId);
      for (const name of POD_LINKS) expect(after[name], name).to.not.equal(before[name]);
      // Only the pinned copy held the listener finder: gone with the swap.
      expect(await waitUnloaded(Object.values(finderBefore)), "old finder").to.deep.equal([]);
      // The deleted pod's defunct links still hold the old programs, until its DEL.
      const held = POD_LINKS.map((name) => before[name]);
      expect(loaded(held), "old programs held by the deleted pod's links").to.deep.equal(held);
      detachPod(goneId, root.opts);
      detached = true;
      expect(await waitUnloaded(held), "old programs after the DEL").to.deep.equal([]);
    } finally {
      if (!detached) detachPod(goneId, root.opts);
    }
  });

  it("pods attached and detached while upgrades run: every ADD succeeds and ends on the pinned programs", async () => {
    // Upgrades in a loop in another process (the installer), ADDs and DELs here (the plugin).
    const upgrader = spawn(process.execPath, ["-e", UPGRADER, DATAPATH_MODULE, root.path], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    const upgraderOutput = new Promise<string>((resolve) => {
      upgrader.stdout.on("data", (d) => {
        out += d;
      });
      upgrader.stderr.on("data", (d) => {
        out += d;
      });
      upgrader.on("close", () => resolve(out));
    });
    const pods: Pod[] = [];
    const failures: string[] = [];
    const ids: string[] = [];
    try {
      for (let i = 0; i < 3; i++) pods.push(await createPod({ node, label: `racing pod ${i}` }));
      // 40 rounds, and on until more than 10 upgrades ran meanwhile (each loads every object
      // again: a loaded machine runs fewer per round)
      const upgradesSoFar = () => out.split("\n").filter((l) => l === "upgraded").length;
      const deadline = Date.now() + 120_000;
      for (let round = 0; round < 40 || (upgradesSoFar() <= 10 && Date.now() < deadline); round++) {
        for (const id of ids.splice(0)) detachPod(id, root.opts);
        for (const p of pods) {
          try {
            ids.push(attach(p));
          } catch (e) {
            failures.push((e as Error).message);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    } finally {
      upgrader.stdin.end();
    }
    const summary = JSON.parse((await upgraderOutput).trim().split("\n").pop() as string);
    try {
      expect(summary.error ?? null, "upgrader").to.equal(null);
      expect(summary.upgrades, "upgrades that ran").to.be.greaterThan(10);
      expect(failures, "failed ADDs").to.deep.equal([]);
      const pinned = pinnedProgramIds(root.path);
      ids.forEach((id, i) => {
        expect(podProgramIds(root.path, id), `${pods[i].label}`).to.deep.equal(pinned);
      });
    } finally {
      for (const id of ids) detachPod(id, root.opts);
      for (const p of pods) await p.destroy();
    }
  });

  it("a datapath pinned before the socket bypass's flow control gets its maps and program; switching the bypass on links it, and a later upgrade relinks it", () => {
    const old = new BpfRoot();
    try {
      ensureSharedPrograms(old.opts);
      const recvLink = paths.link(old.path, BYPASS_RECV_PROGRAM.name);
      // what an earlier build pinned: everything but the flow control's pins
      const flowPins = [
        paths.prog(old.path, BYPASS_RECV_PROGRAM.name),
        paths.map(old.path, MAP_NAMES.bypassBacklog),
        paths.map(old.path, MAP_NAMES.bypassFlowCounters),
      ];
      for (const pin of flowPins) rmSync(pin);
      expect(existsSync(recvLink), "no tracepoint link while the bypass is off").to.equal(false);
      expect(applyNodeBypass(old.path, true).enabled, "no flow control: no bypass").to.equal(false);
      const report = upgradePrograms(old.opts);
      expect(report.bypassLinkUpdated).to.equal(true);
      for (const pin of flowPins) expect(existsSync(pin), pin).to.equal(true);
      expect(applyNodeBypass(old.path, true).enabled).to.equal(true);
      const link = Link.openPinned(recvLink);
      const prog = Program.openPinned(flowPins[0]);
      try {
        expect(link.info()).to.include({ type: "raw_tracepoint", progId: prog.info().id });
      } finally {
        link.close();
        prog.close();
      }
      // a second upgrade replaces the tracepoint link with one running its new program
      const again = upgradePrograms(old.opts);
      expect(again.bypassLinkUpdated).to.equal(true);
      const reloaded = Program.openPinned(flowPins[0]);
      try {
        expect(linkProgId(recvLink)).to.equal(reloaded.info().id);
      } finally {
        reloaded.close();
      }
    } finally {
      old.destroy();
    }
  });

  it("on a node with nothing pinned it loads the datapath and says so", () => {
    const fresh = new BpfRoot();
    try {
      const report = upgradePrograms(fresh.opts);
      const ids = pinnedProgramIds(fresh.path, ALL_PROGRAMS);
      expect(report).to.deep.include({
        action: "loaded",
        pods: 0,
        linksUpdated: 0,
        skipped: [],
      });
      expect(report.programIds).to.deep.equal(
        Object.fromEntries(ALL_PROGRAMS.map((n) => [n, { from: null, to: ids[n] }])),
      );
    } finally {
      fresh.destroy();
    }
  });
});
