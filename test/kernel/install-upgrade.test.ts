// An upgrade: a new `waggle install` takes over from the old one and swaps its programs into
// the links of a running meshed pod, under a live connection that keeps working (and whose
// original destination the proxy can still read: the sockets' state outlives the programs).

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { linkProgId, paths } from "../../datapath";
import { Node, Pod } from "../support/pod";
import type { SandboxProcess } from "../support/sandbox";
import { attachTestPod } from "../support/waggle-mode";
import { CALICO_SHAPES } from "../unit/install-fixtures";
import { APP, PROXY } from "./install-capture";
import { CliProcess, InstallHost, runCli } from "./install-process";

describe("install (kernel): upgrade under a live connection", function () {
  this.timeout(90_000);
  let host: InstallHost;
  let node: Node | undefined;
  let client: Pod | undefined;
  let installer: CliProcess | undefined;

  before(async () => {
    host = new InstallHost();
    writeFileSync(join(host.netDir, "10-calico.conflist"), CALICO_SHAPES.manifest, { mode: 0o600 });
    node = await Node.create({ label: "upgrade node" });
    client = await Pod.create({ node, label: "meshed client" });
  });
  after(async () => {
    installer?.kill();
    await runCli(["uninstall", ...host.uninstallFlags()]);
    await client?.destroy();
    await node?.destroy();
    host.remove();
  });

  it("swaps every link's program atomically; the connection survives and new ones are captured", async () => {
    const pod = client as Pod;
    installer = new CliProcess(["install", ...host.flags()]);
    await installer.waitForLog("entry written");

    // The CNI plugin's ADD for this pod, against the installer's pins.
    const { containerId } = attachTestPod(pod, { bpfRoot: host.bpfRoot });
    const linkProg = () => linkProgId(paths.podLink(host.bpfRoot, containerId, "waggle_connect4"));
    const oldProg = linkProg();

    const proxy = pod.spawn("python3", ["-c", PROXY], { uid: 1337, gid: 1337 });
    await proxy.waitForLine((l) => l === "ready");
    const target = "10.0.0.200";
    const app: SandboxProcess = pod.spawn("python3", ["-c", APP, target, "8080"], {
      uid: 1000,
      gid: 1000,
    });
    const before = JSON.parse(await app.waitForLine((l) => l.includes('"before"'), 10_000));
    expect(before).to.deep.equal({ line: "before", originalDst: `${target}:8080` });

    // The upgrade: the old installer stops (leaving everything), the new one takes over.
    expect(await installer.terminate()).to.equal(0);
    installer = new CliProcess(["install", ...host.flags()]);
    const loaded = await installer.waitForLog("shared programs loaded");
    expect(loaded).to.deep.include({ pods: 1, linksUpdated: 11, skipped: [] });
    const newProg = linkProg();
    expect(newProg, "the link runs the new program").to.not.equal(oldProg);

    app.child.stdin.write("go\n");
    const after = JSON.parse(await app.waitForLine((l) => l.includes('"after"'), 10_000));
    expect(after, "same connection, original destination still readable").to.deep.equal({
      line: "after",
      originalDst: `${target}:8080`,
    });
    expect((await app.exited).code).to.equal(0);

    // A new connection goes through the new program to the proxy.
    const fresh = pod.spawn("python3", ["-c", APP, "10.0.0.201", "9090"], { uid: 1000, gid: 1000 });
    const first = JSON.parse(await fresh.waitForLine((l) => l.includes('"before"'), 10_000));
    expect(first).to.deep.equal({ line: "before", originalDst: "10.0.0.201:9090" });
    await fresh.kill();
    await proxy.kill();
  });
});
