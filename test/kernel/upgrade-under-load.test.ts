// Upgrade under load: while wrk drives kept-alive and new-connection HTTP traffic from a meshed
// client pod through both HAProxy sidecars to nginx in a meshed server pod, the DaemonSet is
// restarted with the next binary: the running `waggle install` (dist/waggle) stops, and the
// next release starts, loads its programs and swaps them into every link of both pods (the
// upgradePrograms path). The next release is a build of its own with different bytecode: the
// same sources compiled for eBPF ISA v3 (this build's clang default is v1), so every program
// the links run afterwards has instructions, and a tag, of its own. Not one request may fail
// and no connection may be reset or time out. The figures are printed for docs/reliability.md.
import "../support/hooks";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { Program } from "ebpf-napi";
import {
  parseWrkOutput,
  WRK_LUA,
  type WrkResult,
  wrkArgv,
  wrkErrorCount,
} from "../../bench/tools/wrk";
import { linkProgId } from "../../datapath";
import { describeRun, podCommand, REPO_ROOT, WAGGLE_BINARY } from "../support/cni-binary";
import { type HaproxySidecar, startHaproxySidecar } from "../support/haproxy";
import { uniqueName } from "../support/names";
import { type NginxServer, startNginx } from "../support/nginx";
import { Node, Pod } from "../support/pod";
import { type TrackedResource, track } from "../support/resources";
import { CALICO_SHAPES } from "../unit/install-fixtures";
import { CliProcess, InstallHost } from "./install-process";

const APP = { uid: 1000, gid: 1000 };
const PROXY = { uid: 1337, gid: 1337 };
const LOAD_SECONDS = Number(process.env.WAGGLE_UPGRADE_LOAD_SECONDS ?? 20);

describe("upgrade under load: the DaemonSet restarts with the next binary while wrk runs through two meshed pods", function () {
  this.timeout(240_000);
  let host: InstallHost;
  let node: Node;
  let client: Pod;
  let server: Pod;
  let installer: CliProcess | undefined;
  let next: string;
  const sidecars: HaproxySidecar[] = [];
  let nginx: NginxServer | undefined;
  const containers: { pod: Pod; containerId: string }[] = [];
  let scratch: string;
  let scratchTracked: TrackedResource | undefined;

  before(async function () {
    // building the next release: about a minute on a quiet machine, several on a loaded one
    this.timeout(600_000);
    host = new InstallHost();
    writeFileSync(join(host.netDir, "10-calico.conflist"), CALICO_SHAPES.manifest, { mode: 0o600 });
    scratch = mkdtempSync(join(tmpdir(), "waggle-upgrade-load-"));
    chmodSync(scratch, 0o755);
    scratchTracked = track(`upgrade-under-load scratch ${scratch}`, () =>
      rmSync(scratch, { recursive: true, force: true }),
    );
    next = buildNextRelease(scratch);
    node = await Node.create({ label: "upgrade-under-load node" });
    client = await Pod.create({ node, label: "meshed client" });
    server = await Pod.create({ node, label: "meshed server" });
  });
  after(async () => {
    installer?.kill();
    for (const s of sidecars) await s.stop();
    await nginx?.process.kill();
    for (const c of containers)
      await podCommand("DEL", { pod: c.pod, containerId: c.containerId, bpfRoot: host.bpfRoot });
    const uninstall = new CliProcess(["uninstall", ...host.uninstallFlags()], {}, WAGGLE_BINARY);
    await uninstall.exited;
    await client?.destroy();
    await server?.destroy();
    await node?.destroy();
    host.remove();
    scratchTracked?.release();
  });

  /** The program tags (hashes of the instructions) of the given program ids. */
  const tags = (ids: number[]) =>
    ids.map((id) => {
      const prog = Program.fromId(id);
      try {
        return prog.info().tag;
      } finally {
        prog.close();
      }
    });

  /** The program ids behind every link pinned for the pods (each pod's dir under pods/). */
  function linkProgs(): number[] {
    const dir = join(host.bpfRoot, "pods");
    const ids: number[] = [];
    for (const path of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
      try {
        ids.push(linkProgId(join(dir, path)) as number);
      } catch {
        // a directory or the pod's record (a map), not a link
      }
    }
    return ids.sort((a, b) => a - b);
  }

  it("zero failed requests, zero resets, zero timeouts across the swap of every program", async () => {
    installer = new CliProcess(["install", ...host.flags()], {}, WAGGLE_BINARY);
    await installer.waitForLog("entry written", 60_000);
    for (const pod of [client, server]) {
      const containerId = uniqueName("k");
      const add = await podCommand("ADD", { pod, containerId, bpfRoot: host.bpfRoot });
      expect(add.outcome, describeRun(add)).to.equal("ok");
      containers.push({ pod, containerId });
    }
    const oldProgs = linkProgs();
    // 11 links a pod: its 10 cgroup programs and sk_lookup on its netns
    expect(oldProgs, "the pods' links").to.have.length(22);
    const oldTags = new Set(tags(oldProgs));

    nginx = await startNginx(server, { port: 8080, body: "served through the mesh\n" });
    sidecars.push(await startHaproxySidecar(client, PROXY));
    sidecars.push(await startHaproxySidecar(server, PROXY));

    const lua = join(scratch, "done.lua");
    writeFileSync(lua, WRK_LUA, { mode: 0o644 });
    const url = `http://${server.address(4)}:8080/`;
    const wrk = (newConnection: boolean, connections: number) =>
      client.spawn(
        "wrk",
        wrkArgv({
          url,
          connections,
          durationS: LOAD_SECONDS,
          newConnection,
          scriptPath: lua,
          timeoutS: 10,
        }),
        APP,
      );
    const t0 = Date.now();
    const keptAlive = wrk(false, 4);
    const fresh = wrk(true, 2);

    // A third into the run: the DaemonSet's pod is replaced by one of the next release.
    await new Promise((r) => setTimeout(r, (LOAD_SECONDS * 1000) / 3));
    const swapStart = Date.now() - t0;
    expect(await installer.terminate(10_000)).to.equal(0);
    installer = new CliProcess(["install", ...host.flags(["--binary", next])], {}, next);
    const loaded = await installer.waitForLog("shared programs loaded", 60_000);
    const swapEnd = Date.now() - t0;
    expect(loaded).to.deep.include({ pods: 2, skipped: [] });
    const newProgs = linkProgs();
    expect(newProgs).to.have.length(22);
    // Every cgroup and netns link (11 a pod) now runs a program the first installer did not load.
    expect(loaded.linksUpdated).to.equal(22);
    expect(
      newProgs.filter((id) => !oldProgs.includes(id)),
      "links on a new program",
    ).to.have.length(22);
    // ... and a program of the next build: no link runs instructions the first installer loaded.
    const newTags = tags(newProgs);
    expect(
      newTags.filter((t) => oldTags.has(t)),
      "links still on the first build's bytecode",
    ).to.deep.equal([]);

    const results: Record<string, WrkResult> = {};
    for (const [name, proc] of [
      ["kept-alive", keptAlive],
      ["new-connection", fresh],
    ] as const) {
      const exit = await proc.exited;
      expect(exit.code, `wrk ${name}: ${proc.output()}`).to.equal(0);
      results[name] = parseWrkOutput(proc.stdoutLines.join("\n"));
    }
    const figures = Object.fromEntries(
      Object.entries(results).map(([k, r]) => [k, { requests: r.requests, errors: r.errors }]),
    );
    process.stdout.write(
      `UPGRADE-UNDER-LOAD ${JSON.stringify({ loadSeconds: LOAD_SECONDS, swapMs: [swapStart, swapEnd], linksUpdated: loaded.linksUpdated, tags: { before: oldTags.size, after: new Set(newTags).size }, ...figures })}\n`,
    );
    for (const [name, r] of Object.entries(results)) {
      expect(r.requests, `${name} requests`).to.be.greaterThan(0);
      expect(wrkErrorCount(r), `${name} errors ${JSON.stringify(r.errors)}`).to.equal(0);
    }
    // The traffic really went through both sidecars, also after the swap.
    const outbound = sidecars[0].connections().filter((c) => c.frontend === "outbound");
    const inbound = sidecars[1].connections().filter((c) => c.frontend === "inbound");
    expect(outbound.length).to.be.greaterThan(results["new-connection"].requests / 2);
    expect(inbound.length).to.be.greaterThan(results["new-connection"].requests / 2);
    expect(outbound.every((c) => c.accepted === `${server.address(4)}:8080`)).to.equal(true);
  });
});

/**
 * The next release as a node would pull it in a new image: a binary built by this checkout's
 * build scripts from the same sources, its BPF objects compiled for eBPF ISA v3 (so every
 * program differs from dist/waggle's in its instructions). Made in `dir`; returns its path.
 */
function buildNextRelease(dir: string): string {
  const objects = join(dir, "bpf-next");
  const binary = join(dir, "waggle-next");
  const run = (file: string, args: string[]) =>
    execFileSync(file, args, { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "pipe"] });
  run("make", ["-s", "-C", "bpf", `BUILD=${objects}`, "BPF_CPU=v3"]);
  run(process.execPath, ["scripts/build-sea.mjs", "--bpf-dir", objects, "--output", binary]);
  chmodSync(binary, 0o755);
  return binary;
}
