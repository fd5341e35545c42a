// The datapath under concurrent callers, as a node sees them: many CNI plugin processes
// loading the shared programs at once on a fresh node, then attaching and detaching
// different pods at once. Every caller is a separate node process, and all of them are
// released together once each has loaded the module.

import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { expect } from "chai";
import { cgroupQuery, netnsQuery } from "ebpf-napi";
import {
  ALL_PROGRAMS,
  type AttachRequest,
  attachedContainerIds,
  BYPASS_PROGRAM,
  BYPASS_RECV_PROGRAM,
  CGROUP_PROGRAMS,
  checkPod,
  listPods,
  MAP_NAMES,
  mapEntryCounts,
  paths,
} from "../../datapath";
import "../support/hooks";
import { createNode, createPod, type Node, type Pod } from "../support/pod";
import { probe, startListeners } from "../support/sockprobe";
import { BpfRoot, testAttachRequest } from "../support/waggle-mode";

const CALLERS = 20;
const DATAPATH_MODULE = require.resolve("../../datapath");

/** One call of a datapath function in its own process. */
interface RacingCall {
  fn: "loadSharedPrograms" | "attachPod" | "detachPod";
  args: unknown[];
}

interface CallOutcome {
  ok: boolean;
  /** What the call returned. */
  result?: unknown;
  error?: string;
  code?: string;
  exitCode: number | null;
}

/**
 * The child: loads the datapath, says "ready", waits for "go" on stdin, makes its call and
 * prints the outcome as one JSON line.
 */
const CALLER = `
const dp = require(process.argv[1]);
const call = JSON.parse(process.argv[2]);
process.stdout.write("ready\\n");
process.stdin.once("data", () => {
  try {
    const result = dp[call.fn](...call.args);
    process.stdout.write(JSON.stringify({ ok: true, result }) + "\\n");
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: e.message, code: e.code }) + "\\n");
    process.exitCode = 1;
  }
  process.stdin.destroy();
});
`;

/** Runs every call in its own process, all released at the same moment. */
async function raceInProcesses(calls: RacingCall[]): Promise<CallOutcome[]> {
  const children: ChildProcessWithoutNullStreams[] = [];
  try {
    const ready: Promise<void>[] = [];
    const outcomes: Promise<CallOutcome>[] = [];
    for (const call of calls) {
      const child = spawn(process.execPath, ["-e", CALLER, DATAPATH_MODULE, JSON.stringify(call)], {
        stdio: ["pipe", "pipe", "pipe"],
      });
      children.push(child);
      const lines: string[] = [];
      let stderr = "";
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      const rl = createInterface({ input: child.stdout });
      ready.push(
        new Promise((resolve, reject) => {
          rl.on("line", (line) => {
            lines.push(line);
            if (line === "ready") resolve();
          });
          child.on("close", () => reject(new Error(`caller exited before ready: ${stderr}`)));
        }),
      );
      outcomes.push(
        new Promise((resolve) =>
          child.on("close", (exitCode) => {
            const last = lines.filter((l) => l.startsWith("{")).pop();
            resolve({
              ...(last ? JSON.parse(last) : { ok: false, error: `no outcome; stderr: ${stderr}` }),
              exitCode,
            });
          }),
        ),
      );
    }
    await Promise.all(ready);
    for (const child of children) child.stdin.write("go\n");
    return await Promise.all(outcomes);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  }
}

/** Ids of the maps a pinned program uses (bpftool; the addon's ProgramInfo has no map ids). */
function programMapIds(pin: string): number[] {
  const info = JSON.parse(
    execFileSync("bpftool", ["-j", "prog", "show", "pinned", pin], { encoding: "utf8" }),
  );
  return info.map_ids as number[];
}

function mapId(pin: string): number {
  return JSON.parse(
    execFileSync("bpftool", ["-j", "map", "show", "pinned", pin], { encoding: "utf8" }),
  ).id as number;
}

/** Every pinned object under a bpffs directory, as paths relative to it. */
function pinsUnder(dir: string, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? pinsUnder(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

describe("kernel: the datapath under concurrent callers", function () {
  this.timeout(120_000);
  let root: BpfRoot;
  let node: Node;
  const pods: Pod[] = [];

  before(async () => {
    root = new BpfRoot();
    node = await createNode({ label: "concurrency node" });
  });
  after(async () => {
    for (const pod of pods) await pod.destroy();
    await node?.destroy();
    root?.destroy();
  });

  it(`${CALLERS} processes loading the shared programs at once on a fresh node: all succeed, one set is pinned`, async () => {
    const outcomes = await raceInProcesses(
      Array.from({ length: CALLERS }, () => ({
        fn: "loadSharedPrograms" as const,
        args: [root.opts],
      })),
    );
    expect(outcomes.filter((o) => !o.ok || o.exitCode !== 0)).to.deep.equal([]);
    const tally: Record<string, number> = {};
    for (const o of outcomes) tally[String(o.result)] = (tally[String(o.result)] ?? 0) + 1;
    expect(tally.loaded, `one pinned set (${JSON.stringify(tally)})`).to.equal(1);
    // The callers really raced: more than one loaded a set (the losers discarded theirs).
    expect(tally["lost-race"], `outcomes ${JSON.stringify(tally)}`).to.be.greaterThan(0);

    // Exactly the programs and maps of one load, nothing staged left behind.
    expect(readdirSync(root.path), "bpf root").to.deep.equal(["datapath"]);
    const maps = Object.values(MAP_NAMES);
    expect(pinsUnder(paths.datapath(root.path)).sort()).to.deep.equal(
      [
        ...ALL_PROGRAMS.map((p) => `progs/${p}`),
        `progs/${BYPASS_RECV_PROGRAM.name}`, // loaded where the kernel has BTF, as here
        ...maps.map((m) => `maps/${m}`),
        `links/${BYPASS_PROGRAM.name}`, // the node's sockmap link (socket bypass)
        // no flow control tracepoint link: it is made only when the bypass is switched on
      ].sort(),
    );
    // ... and of the SAME load: every pinned program uses the pinned maps, no loser's copy.
    const pinnedMapIds = new Set(maps.map((m) => mapId(paths.map(root.path, m))));
    for (const prog of [...ALL_PROGRAMS, BYPASS_RECV_PROGRAM.name]) {
      const foreign = programMapIds(paths.prog(root.path, prog)).filter((id) => {
        if (pinnedMapIds.has(id)) return false;
        // the object's own internal maps (.rodata, .bss) are not pinned: not shared state
        const name = JSON.parse(
          execFileSync("bpftool", ["-j", "map", "show", "id", String(id)], { encoding: "utf8" }),
        ).name as string;
        return name.startsWith("waggle_");
      });
      expect(foreign, `${prog} uses maps of another load`).to.deep.equal([]);
    }
  });

  it(`${CALLERS} processes attaching ${CALLERS} pods at once: every pod captured with its own original destination; concurrent detach leaves nothing`, async () => {
    const baseline = mapEntryCounts(root.opts);
    for (let i = 0; i < CALLERS; i++) pods.push(await createPod({ node, label: `pod ${i}` }));
    const requests: AttachRequest[] = pods.map((pod) => testAttachRequest(pod));
    const attached = await raceInProcesses(
      requests.map((req) => ({ fn: "attachPod" as const, args: [req, root.opts] })),
    );
    expect(attached.filter((o) => !o.ok || o.exitCode !== 0)).to.deep.equal([]);
    expect(attachedContainerIds(root.opts).sort()).to.deep.equal(
      requests.map((r) => r.containerId).sort(),
    );
    for (const req of requests)
      expect(checkPod(req.containerId, root.opts), req.containerId).to.deep.equal([]);

    // One redirected connection per pod, each to a destination of its own, lands on that
    // pod's 15001 with that destination as SO_ORIGINAL_DST.
    const destination = (i: number) => `198.51.100.${i + 1}:${9000 + i}`;
    const results = await Promise.all(
      pods.map(async (pod, i) => {
        const listener = await startListeners(
          pod,
          [{ name: `outbound ${i}`, proto: "tcp", addr: "127.0.0.1:15001" }],
          { uid: 1337, gid: 1337 },
        );
        try {
          const [r] = await probe(pod, [{ to: destination(i) }], { uid: 1000, gid: 1000 });
          return r.reply;
        } finally {
          await listener.stop();
        }
      }),
    );
    results.forEach((reply, i) => {
      expect(reply, `pod ${i}`).to.deep.include({
        listener: `outbound ${i}`,
        local: "127.0.0.1:15001",
        originalDst: destination(i),
      });
    });
    const counters = new Map(listPods(root.opts).map((p) => [p.containerId, p.counters]));
    for (const req of requests) {
      expect(counters.get(req.containerId), req.containerId).to.include({
        outbound_redirected: 1,
        errors: 0,
      });
    }

    const detached = await raceInProcesses(
      requests.map((req) => ({ fn: "detachPod" as const, args: [req.containerId, root.opts] })),
    );
    expect(detached.filter((o) => !o.ok || o.exitCode !== 0)).to.deep.equal([]);
    expect(attachedContainerIds(root.opts)).to.deep.equal([]);
    expect(readdirSync(paths.pods(root.path))).to.deep.equal([]);
    expect(mapEntryCounts(root.opts)).to.deep.equal(baseline);
    for (const pod of pods) {
      for (const cp of CGROUP_PROGRAMS) {
        expect(cgroupQuery(pod.cgroupDir, cp.attachType), `${pod.label} ${cp.name}`).to.deep.equal(
          [],
        );
      }
      expect(netnsQuery(pod.netnsPath, "sk_lookup"), `${pod.label} sk_lookup`).to.deep.equal([]);
    }
  });
});
