// `waggle status` on real pods: two pods of one node attached into a test bpffs root, one
// redirected connection in the first; status (in-process through the command line, and as
// the built binary: dist/waggle when it is current, else node over out/) lists both with
// their IPs, health ok and the connection counted; a removed link pin shows as the pod's
// problem; detached pods are gone; an empty root says the programs are not loaded. The
// process loads neither winston nor the Kubernetes client.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { unpin } from "ebpf-napi";
import { runCli } from "../../app/cli";
import type { StatusReport } from "../../app/status";
import { detachPod, ensureSharedPrograms, paths } from "../../datapath";
import { captureIo } from "../support/cli-io";
import { type CommandResult, run } from "../support/command";
import { REPO, waggleBinary } from "../support/libcni";
import { uniqueName } from "../support/names";
import { createNode, createPod, type Node, type Pod } from "../support/pod";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";

// One connection from an app (uid 1000) to an outside address: redirected to 15001, where a
// listener (root, as the sidecar would be uid 1337) accepts it.
const ONE_CONNECTION = `
import os, socket
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 15001)); srv.listen(8)
pid = os.fork()
if pid == 0:
    os.setgroups([]); os.setgid(1000); os.setuid(1000)
    s = socket.socket(); s.connect(("10.99.0.1", 80)); s.close()
    os._exit(0)
c, _ = srv.accept(); c.close(); os.waitpid(pid, 0); print("done")
`;

/** Records the modules a process loaded (written at exit to RECORD_TO). */
const RECORDER = `
process.on("exit", () => {
  require("node:fs").writeFileSync(process.env.RECORD_TO, JSON.stringify(Object.keys(require.cache)));
});
`;

describe("waggle status on real pods", function () {
  this.timeout(120_000);
  let root: BpfRoot;
  let node: Node;
  let podA: Pod;
  let podB: Pod;
  let dir: string;
  const idA = uniqueName("k");
  const idB = uniqueName("k");
  const nameA = "frontend";
  const nameB = "backend";
  const attached: string[] = [];
  /** The binary under test: dist/waggle when current, else node over out/app/main.js. */
  let binary: { cmd: string; args: string[] };

  before(async () => {
    binary =
      waggleBinary().kind === "dist"
        ? { cmd: join(REPO, "dist", "waggle"), args: [] }
        : { cmd: process.execPath, args: [join(REPO, "out", "app", "main.js")] };
    dir = mkdtempSync(join(tmpdir(), "waggle-status-kernel-"));
    writeFileSync(join(dir, "recorder.cjs"), RECORDER);
    root = new BpfRoot();
    ensureSharedPrograms(root.opts);
    node = await createNode({ label: "status node" });
    podA = await createPod({ node, label: "status a" });
    podB = await createPod({ node, label: "status b" });
    for (const [id, pod, name] of [
      [idA, podA, nameA],
      [idB, podB, nameB],
    ] as const) {
      attachTestPod(pod, root.opts, { containerId: id, pod: { namespace: "shop", name } });
      attached.push(id);
    }
    expect(await podA.execChecked("python3", ["-c", ONE_CONNECTION])).to.equal("done\n");
  });

  after(async () => {
    for (const id of attached) detachPod(id, root.opts);
    await podA?.destroy();
    await podB?.destroy();
    await node?.destroy();
    root?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function inProcess(args: string[]): Promise<CommandResult> {
    const io = captureIo();
    const code = await runCli(["status", "--bpf-root", root.path, ...args], io);
    return { code, signal: null, stdout: io.stdout, stderr: io.stderr };
  }

  function asBinary(args: string[]): Promise<CommandResult> {
    return run(binary.cmd, [...binary.args, "status", "--bpf-root", root.path, ...args], {
      timeoutMs: 30_000,
    });
  }

  for (const [how, status] of [
    ["in-process (the command line runner)", inProcess],
    ["as the built binary", asBinary],
  ] as const) {
    it(`lists both pods with their IPs, health ok and the redirected connection counted (${how})`, async () => {
      const json = await status(["--json"]);
      expect(json.code, json.stderr).to.equal(0);
      const doc = JSON.parse(json.stdout) as StatusReport;
      expect(doc.datapath.loaded).to.equal(true);
      expect(doc.pods.map((p) => p.containerId).sort()).to.deep.equal([idA, idB].sort());
      const a = doc.pods.find((p) => p.containerId === idA);
      const b = doc.pods.find((p) => p.containerId === idB);
      expect(a?.pod).to.deep.equal({ namespace: "shop", name: nameA });
      expect(a?.podIPs).to.deep.equal([podA.address(4)]);
      expect(b?.podIPs).to.deep.equal([podB.address(4)]);
      expect(a?.health).to.deep.equal({ ok: true, problems: [] });
      expect(b?.health).to.deep.equal({ ok: true, problems: [] });
      expect(a?.netns).to.deep.include({ path: podA.netnsPath, exists: true });
      expect(a?.cgroup).to.deep.equal({ path: podA.cgroupDir, exists: true });
      expect(a?.counters?.outbound_redirected).to.equal(1);
      expect(a?.counters?.errors).to.equal(0);
      expect(b?.counters?.outbound_redirected).to.equal(0);
      expect(a?.policy?.outbound.excludePorts).to.deep.equal([15020]);
      expect(a?.attachments?.inboundInterfaces.map((i) => i.ifname)).to.deep.equal(["eth0"]);
      expect(a?.attachments?.netnsLinks).to.deep.equal(["waggle_inbound"]);
      expect(doc.datapath.mapEntries?.waggle_policy).to.be.at.least(2);

      const table = await status([]);
      expect(table.code, table.stderr).to.equal(0);
      const rowA = table.stdout.split("\n").find((l) => l.startsWith(`shop/${nameA} `));
      const rowB = table.stdout.split("\n").find((l) => l.startsWith(`shop/${nameB} `));
      // POD CONTAINER IPS HEALTH OUTBOUND INBOUND DNS PASSTHROUGH ERRORS
      expect(rowA?.split(/ +/)).to.deep.equal([
        `shop/${nameA}`,
        idA.slice(0, 12),
        podA.address(4),
        "ok",
        "1",
        "0",
        "0",
        String(a?.counters?.passthrough),
        "0",
      ]);
      expect(rowB?.split(/ +/).slice(2, 5)).to.deep.equal([podB.address(4), "ok", "0"]);
    });
  }

  it("a named pod is shown in detail; a name that matches nothing is exit 1", async () => {
    const one = await asBinary([nameA]);
    expect(one.code, one.stderr).to.equal(0);
    expect(one.stdout).to.include(`shop/${nameA} (container ${idA})`);
    expect(one.stdout).to.match(/outbound_redirected +1\n/);
    expect(one.stdout).to.not.include(`shop/${nameB}`);
    const none = await asBinary(["shop/nosuchpod"]);
    expect(none.code).to.equal(1);
    expect(none.stderr).to.include(`no meshed pod matches "shop/nosuchpod" under ${root.path}`);
  });

  it("loads neither winston nor the Kubernetes client", async () => {
    const recordTo = join(dir, "modules.json");
    const r = await run(
      process.execPath,
      [
        ...["--require", join(dir, "recorder.cjs")],
        ...[join(REPO, "out", "app", "main.js"), "status", "--bpf-root", root.path],
      ],
      { env: { ...process.env, RECORD_TO: recordTo } },
    );
    expect(r.code, r.stderr).to.equal(0);
    const modules = JSON.parse(readFileSync(recordTo, "utf8")) as string[];
    expect(modules.some((m) => m.includes("/ebpf-napi/"))).to.equal(true);
    expect(modules.filter((m) => /node_modules\/(winston|@kubernetes)\//.test(m))).to.deep.equal(
      [],
    );
  });

  it("a removed link pin is the pod's problem, in the table, the problems list and the JSON", async () => {
    unpin(paths.podLink(root.path, idB, "waggle_connect4"));
    const table = await asBinary([]);
    expect(table.code, table.stderr).to.equal(0);
    const rowB = table.stdout.split("\n").find((l) => l.startsWith(`shop/${nameB} `));
    expect(rowB).to.include(" 1 problem ");
    expect(table.stdout).to.include(
      `problems:\n  shop/${nameB} (${idB.slice(0, 12)}): link waggle_connect4 is missing\n`,
    );
    const doc = JSON.parse((await inProcess(["--json"])).stdout) as StatusReport;
    expect(doc.pods.find((p) => p.containerId === idB)?.health).to.deep.equal({
      ok: false,
      problems: ["link waggle_connect4 is missing"],
    });
    expect(doc.pods.find((p) => p.containerId === idA)?.health.ok).to.equal(true);
  });

  it("detached pods are gone: no meshed pods under the root", async () => {
    for (const id of attached.splice(0)) detachPod(id, root.opts);
    const r = await asBinary([]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal(
      [
        `datapath: shared programs and maps pinned under ${paths.datapath(root.path)}`,
        `no meshed pods under ${root.path}`,
        "",
      ].join("\n"),
    );
    const doc = JSON.parse((await inProcess(["--json"])).stdout) as StatusReport;
    expect(doc.pods).to.deep.equal([]);
  });

  it("an empty bpffs root: the shared programs are not loaded, and no pods (exit 0)", async () => {
    const empty = new BpfRoot();
    try {
      mkdirSync(empty.path);
      const io = captureIo();
      expect(await runCli(["status", "--bpf-root", empty.path], io)).to.equal(0);
      expect(io.stdout).to.equal(
        [
          `datapath: shared programs NOT loaded (nothing pinned under ${paths.datapath(empty.path)}); \`waggle install\` (the waggle-node pod) loads them, as does the first meshed pod's CNI ADD`,
          `no meshed pods under ${empty.path}`,
          "",
        ].join("\n"),
      );
    } finally {
      empty.destroy();
    }
  });
});
