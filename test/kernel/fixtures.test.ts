// The kernel-test fixtures themselves: pods run processes in their netns and cgroup as the
// chosen identity, pods reach each other through the node, and teardown leaves nothing
// behind, also when a test throws midway or the test process dies.

import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { expect } from "chai";
import { cgroup2Root } from "../../base/cgroup2";
import { run, runChecked, sleep } from "../support/command";
import "../support/hooks";
import { assertNoLeaks, diffLeaks, snapshotLeaks } from "../support/leaks";
import { IFNAME_MAX, RUN_TAG } from "../support/names";
import {
  createNode,
  createPod,
  HOST_VETH_MAC,
  type Node,
  POD_GATEWAY_V4,
  POD_GATEWAY_V6,
} from "../support/pod";
import { isAlive } from "../support/procs";
import { hostPort, probe, startListeners } from "../support/sockprobe";

const ROOT = join(__dirname, "..", "..", "..");

function statusField(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${field}:`));
  return (line ?? "")
    .slice(field.length + 1)
    .trim()
    .replace(/\s+/g, " ");
}

describe("kernel: pod fixture", function () {
  this.timeout(30_000);
  let node: Node;

  before(async () => {
    node = await createNode({ label: "fixtures node" });
  });
  after(async () => {
    await node?.destroy();
  });

  it("runs a process inside the pod's netns and cgroup as the chosen uid, gid and groups", async () => {
    const pod = await createPod({ node, label: "identity" });
    try {
      const proc = pod.spawn("sleep", ["60"], { uid: 1000, gid: 1337, groups: [2000, 2001] });
      await sleep(100); // let the exec chain (sh, nsenter, setpriv) reach sleep
      expect(readFileSync(`/proc/${proc.pid}/comm`, "utf8").trim()).to.equal("sleep");
      expect(statusField(proc.pid, "Uid")).to.equal("1000 1000 1000 1000");
      expect(statusField(proc.pid, "Gid")).to.equal("1337 1337 1337 1337");
      expect(statusField(proc.pid, "Groups")).to.equal("2000 2001");
      const cgroupLine = readFileSync(`/proc/${proc.pid}/cgroup`, "utf8")
        .split("\n")
        .find((l) => l.startsWith("0::"));
      expect(cgroupLine).to.equal(`0::/${relative(cgroup2Root(), pod.cgroupDir)}`);
      expect(pod.cgroupDir.startsWith(cgroup2Root())).to.equal(true);
      expect(readlinkSync(`/proc/${proc.pid}/ns/net`)).to.equal(`net:[${pod.netnsInode}]`);
      expect(readlinkSync(`/proc/${proc.pid}/ns/net`)).to.not.equal(
        readlinkSync("/proc/self/ns/net"),
      );
    } finally {
      await pod.destroy();
    }
  });

  it("runs as root with no supplementary groups by default and reports exit codes and output", async () => {
    const pod = await createPod({ node, label: "exec" });
    try {
      const result = await pod.exec("sh", ["-c", "id -u; id -g; id -G; echo oops >&2; exit 3"]);
      expect(result.code).to.equal(3);
      expect(result.stdout.split("\n").slice(0, 3)).to.deep.equal(["0", "0", "0"]);
      expect(result.stderr.trim()).to.equal("oops");
      const failure = await pod.execChecked("false").then(
        () => undefined,
        (e: Error) => e,
      );
      expect(failure?.message).to.match(/false failed \(exit code 1\)/);
    } finally {
      await pod.destroy();
    }
  });

  it("wires pods like Calico: /32 and /128 on eth0, link-local gateways, host routes on the node", async () => {
    const pod = await createPod({ node, label: "wiring", ipv6: true });
    try {
      const v4 = await pod.ip(["-4", "route", "show"]);
      expect(v4).to.include(`default via ${POD_GATEWAY_V4} dev eth0`);
      expect(v4).to.include(`${POD_GATEWAY_V4} dev eth0 scope link`);
      expect(await pod.ip(["-6", "route", "show", "default"])).to.include(
        `default via ${POD_GATEWAY_V6} dev eth0`,
      );
      const addrs = await pod.ip(["-o", "addr", "show", "dev", "eth0"]);
      expect(addrs).to.include(`inet ${pod.ipv4}/32`);
      expect(addrs).to.include(`inet6 ${pod.ipv6}/128`);
      expect(await node.ip(["-4", "route", "show", `${pod.ipv4}/32`])).to.include(
        `dev ${pod.hostVeth}`,
      );
      expect(await node.ip(["-6", "route", "show", `${pod.ipv6}/128`])).to.include(
        `dev ${pod.hostVeth}`,
      );
      expect(await node.ip(["link", "show", pod.hostVeth])).to.include(
        `link/ether ${HOST_VETH_MAC}`,
      );
      expect(pod.hostVeth.length).to.be.at.most(IFNAME_MAX);
      expect(pod.name.startsWith(RUN_TAG)).to.equal(true);
      // The real host netns is untouched: no interface of this run there.
      expect(await runChecked("ip", ["-o", "link", "show"])).to.not.include(RUN_TAG);
    } finally {
      await pod.destroy();
    }
  });

  it("carries TCP and UDP between two pods through the node, over IPv4 and IPv6", async () => {
    const server = await createPod({ node, label: "server", ipv6: true });
    const client = await createPod({ node, label: "client", ipv6: true });
    try {
      const listeners = await startListeners(server, [
        { name: "tcp4", proto: "tcp", addr: "0.0.0.0:8080" },
        { name: "tcp6", proto: "tcp", addr: "[::]:8080" },
        { name: "udp4", proto: "udp", addr: "0.0.0.0:9999" },
      ]);
      const [t4, t6, u4] = await probe(
        client,
        [
          { to: hostPort(server.address(4), 8080) },
          { to: hostPort(server.address(6), 8080) },
          { proto: "udp", to: hostPort(server.address(4), 9999) },
        ],
        { uid: 1000 },
      );
      expect(t4.reply).to.include({
        listener: "tcp4",
        peer: `${client.ipv4}:${t4.local?.split(":")[1]}`,
      });
      expect(t6.reply).to.include({ listener: "tcp6", local: `[${server.ipv6}]:8080` });
      expect(u4).to.include({ result: "replied", replyFrom: `${server.ipv4}:9999` });
      await listeners.stop();
    } finally {
      await client.destroy();
      await server.destroy();
    }
  });

  it("gives every pod unique names within IFNAMSIZ and a private node when none is given", async () => {
    const a = await createPod({ label: "alone" });
    try {
      expect(a.node.name).to.not.equal(node.name);
      expect(a.name).to.not.equal(a.node.name);
      for (const name of [a.name, a.node.name, a.hostVeth])
        expect(name.length).to.be.at.most(IFNAME_MAX);
    } finally {
      await a.destroy();
    }
    expect((await run("ip", ["netns", "pids", a.node.name])).code).to.not.equal(0);
  });
});

describe("kernel: teardown leaves nothing behind", function () {
  this.timeout(30_000);
  const bpffsDir = `/sys/fs/bpf/${RUN_TAG}-fixtures`;

  it("destroying a pod removes its netns, veth, cgroup, processes, qdiscs and pin dir", async () => {
    const before = snapshotLeaks({ bpffsRoots: [bpffsDir] });
    const pod = await createPod({ label: "leaky", ipv6: true });
    mkdirSync(bpffsDir);
    mkdirSync(join(bpffsDir, "pod"));
    try {
      pod.spawn("sleep", ["600"], { uid: 1337 });
      // A daemon that double-forks leaves the sandbox's process tree but not its cgroup.
      await pod.execChecked("sh", ["-c", "sleep 600 >/dev/null 2>&1 &"]);
      await pod.execChecked("tc", ["qdisc", "add", "dev", "eth0", "clsact"]);
      const during = diffLeaks(
        before,
        snapshotLeaks({ bpffsRoots: [bpffsDir], netns: [pod.name] }),
      );
      expect(during.netns).to.include.members([pod.name, pod.node.name]);
      expect(during.cgroups).to.include(pod.name);
      expect(during.processes?.length).to.be.at.least(2);
      expect(during.tc?.join("\n")).to.include("clsact");
      expect(during.bpffs).to.include(join(bpffsDir, "pod"));
    } finally {
      await pod.destroy();
      rmSync(bpffsDir, { recursive: true });
    }
    assertNoLeaks(before, { bpffsRoots: [bpffsDir] });
  });

  it("kills processes that entered the netns without its cgroup", async () => {
    const pod = await createPod({ label: "intruded" });
    const intruder = await runChecked("sh", [
      "-c",
      `ip netns exec ${pod.name} sleep 600 >/dev/null 2>&1 & echo $!`,
    ]);
    const pid = Number(intruder.trim());
    await sleep(50);
    expect(isAlive(pid)).to.equal(true);
    await pod.destroy();
    expect(isAlive(pid)).to.equal(false);
    expect((await runChecked("ip", ["netns", "list"])).includes(pod.name)).to.equal(false);
  });

  it("assertNoLeaks reports what a test left behind", async () => {
    const before = snapshotLeaks();
    const pod = await createPod({ label: "forgotten" });
    try {
      expect(() => assertNoLeaks(before)).to.throw(
        new RegExp(`netns: ${pod.name}[\\s\\S]*cgroups: ${pod.name}`),
      );
    } finally {
      await pod.destroy();
    }
    assertNoLeaks(before);
  });

  // A child mocha run whose test throws after creating a pod and a process: the root hook
  // must remove everything. A second child crashes with an uncaught exception instead: the
  // exit handler must remove everything. The children print their resource names first.
  for (const [label, body, runner] of [
    [
      "a test that throws midway (root hook)",
      "it('throws midway', async () => { await make(); throw new Error('midway'); });",
      "mocha",
    ],
    [
      "a process that crashes (exit handler)",
      "make().then(() => { throw new Error('crash'); });",
      "node",
    ],
  ] as const) {
    it(`cleans up after ${label}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "waggle-fixture-"));
      try {
        const script = join(dir, "leaky.test.js");
        writeFileSync(
          script,
          `require(${JSON.stringify(join(ROOT, "out/test/support/hooks.js"))});
const { createPod } = require(${JSON.stringify(join(ROOT, "out/test/support/pod.js"))});
async function make() {
  const pod = await createPod({ label: "abandoned" });
  const proc = pod.spawn("sleep", ["600"]);
  console.log("RESOURCES " + JSON.stringify({ netns: [pod.name, pod.node.name], cgroup: pod.cgroupDir, pid: proc.pid }));
  await new Promise((r) => setTimeout(r, 100));
}
${body}
`,
        );
        const argv =
          runner === "mocha"
            ? [
                join(ROOT, "node_modules/mocha/bin/mocha.js"),
                "--no-config",
                "--reporter",
                "dot",
                script,
              ]
            : [script];
        const result = await run(process.execPath, argv, { timeoutMs: 20_000 });
        expect(result.code, result.stdout + result.stderr).to.not.equal(0);
        const line = result.stdout.split("\n").find((l) => l.includes("RESOURCES "));
        expect(line, result.stdout + result.stderr).to.be.a("string");
        const made = JSON.parse((line as string).slice(line?.indexOf("{"))) as {
          netns: string[];
          cgroup: string;
          pid: number;
        };
        const netnsList = await runChecked("ip", ["netns", "list"]);
        for (const ns of made.netns) expect(netnsList).to.not.include(ns);
        expect(() => readFileSync(join(made.cgroup, "cgroup.procs"))).to.throw(/ENOENT/);
        expect(isAlive(made.pid)).to.equal(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
