// `waggle install` (the single executable, not the image) on a containerd node: containerd
// 1.6 runs the Calico-shaped chain without waggle, and a meshed pod starts before waggle is
// installed. The installer, pointed at containerd's own CNI bin and conf dirs, its netns
// directory and a stand-in API server listing the node's pods, copies the binary, chains
// waggle into containerd's primary config (which containerd reloads by itself) and repairs
// the early pod in place, under the sandbox ID containerd's DEL will name. Afterwards a new
// pod goes through the chained plugin, the early pod's app is captured, containerd's own DEL
// detaches it, and uninstall leaves containerd's dirs as they were.
import "../support/hooks";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { listPods } from "../../datapath";
import { WAGGLE_BINARY } from "../support/cni-binary";
import { calicoShapedChain, MESHED_ANNOTATIONS } from "../support/cni-node";
import { runChecked } from "../support/command";
import { PrivateContainerd, type RunningPod } from "../support/containerd";
import { FakeKubeApi, nodePod } from "../support/fake-kube-api";
import { SidecarPods } from "../support/sidecar-pods";
import { BpfRoot } from "../support/waggle-mode";
import { CliProcess } from "./install-process";

const NODE = "containerd-node";

describe("waggle install on a containerd 1.6 node: chains itself into containerd's config and repairs a pod that started before it", function () {
  this.timeout(240_000);
  let ctrd: PrivateContainerd;
  let pods: SidecarPods;
  let api: FakeKubeApi;
  let installer: CliProcess | undefined;
  let conflistBefore: string;
  let early: RunningPod;
  const bpf = new BpfRoot();
  const conflistPath = () => join(ctrd.cniConf, "10-calico.conflist");
  const attachedIds = () => listPods(bpf.opts).map((p) => p.containerId);
  const installerFlags = () => [
    ...["--cni-bin-dir", ctrd.cniBin, "--cni-net-dir", ctrd.cniConf, "--bpf-root", bpf.path],
    // the installer runs on the host here: the conf dir's host path is the same
    ...["--host-cni-net-dir", ctrd.cniConf],
    ...["--binary", WAGGLE_BINARY, "--token-file", join(ctrd.work, "token")],
  ];

  before(async () => {
    // containerd's chain as Calico leaves it before waggle: ptp, host-local, portmap.
    ctrd = await PrivateContainerd.start({
      conflist: ({ work }) => {
        const chain = calicoShapedChain("0.3.1", join(work, "host-local"), { type: "waggle" });
        return { ...chain, plugins: chain.plugins.filter((p) => p.type !== "waggle") };
      },
    });
    conflistBefore = readFileSync(conflistPath(), "utf8");
    pods = new SidecarPods(ctrd);
    api = new FakeKubeApi();
    writeFileSync(join(ctrd.work, "token"), api.token);
    await api.start({ tlsDir: ctrd.work });
    // The plugin runs where containerd runs (the node netns) and reads pods from the API too.
    await ctrd.forwardHostPort(api.port);
  });
  after(async () => {
    installer?.kill();
    await ctrd?.destroy();
    await api?.stop();
    bpf.destroy();
  });

  it("a meshed pod started before waggle runs uncaptured: no call to waggle, nothing attached", async () => {
    early = await pods.run({ name: "early", annotations: MESHED_ANNOTATIONS });
    expect(ctrd.callsFor(early.sandboxId)).to.deep.equal([]);
    expect(attachedIds()).to.deep.equal([]);
    // Its app reaches a pod directly (no sidecar in the path).
    const peer = await pods.run({ name: "peer", annotations: {} });
    expect(await pods.appGet(early, `http://${peer.ip}:8080/`)).to.equal("served by peer\n");
    expect(pods.proxyLog(early)).to.deep.equal([]);
    await ctrd.kubelet.removePod(ctrd.cri, peer);
  });

  it("the installer copies the binary, chains waggle last in containerd's config and attaches the early pod under its sandbox ID", async () => {
    api.addPod(pods.apiPod(early, NODE));
    installer = new CliProcess(
      [
        "install",
        ...installerFlags(),
        ...["--ca-file", api.certFile as string, "--kubernetes-service-host", "127.0.0.1"],
        ...["--kubernetes-service-port", String(api.port), "--node-name", NODE],
        ...["--netns-dir", ctrd.netnsDir, "--proc-root", "/proc"],
        ...["--health-address", "127.0.0.1", "--health-port", "0"],
        ...["--plugin-log-file", join(ctrd.work, "waggle.log"), "--plugin-log-level", "debug"],
      ],
      {},
      WAGGLE_BINARY,
    );
    const attached = await installer.waitForLog("early pod attached", 30_000);
    expect(attached).to.deep.include({
      pod: "shop/early",
      containerId: early.sandboxId,
      netnsPath: early.netnsPath, // containerd's bind mount, what its DEL names
      cgroupPath: early.cgroupDir,
    });
    expect(readFileSync(join(ctrd.cniBin, "waggle")).equals(readFileSync(WAGGLE_BINARY))).to.equal(
      true,
    );
    const chain = JSON.parse(readFileSync(conflistPath(), "utf8")) as {
      plugins: Array<{ type: string }>;
    };
    expect(chain.plugins.map((p) => p.type)).to.deep.equal(["ptp", "portmap", "waggle"]);
    expect(attachedIds()).to.deep.equal([early.sandboxId]);
  });

  it("a pod started after the install goes through the chained plugin, and the early pod's app is captured on the way to it", async () => {
    const { pod: server, attempts } = await pods.runUntilAttached(
      "late",
      (id) => attachedIds().includes(id),
      (name, uid) => api.addPod(nodePod({ name, uid, meshed: true, nodeName: NODE })),
    );
    console.log(`      ${attempts} pod(s) started until containerd used the chained config`);
    expect(await pods.appGet(early, `http://${server.ip}:8080/`)).to.equal(
      `served by ${server.config.hostname}\n`,
    );
    const out = await pods.waitForProxy(early, (c) => c.frontend === "outbound");
    expect(out.accepted).to.equal(`${server.ip}:8080`); // SO_ORIGINAL_DST in the repaired pod
    const inb = await pods.waitForProxy(server, (c) => c.frontend === "inbound");
    expect(inb.client.split(":")[0]).to.equal(early.ip);
    await ctrd.kubelet.removePod(ctrd.cri, server);
    expect(attachedIds()).to.deep.equal([early.sandboxId]);
  });

  it("containerd's own DEL of the repaired pod detaches it: the repair used the ID the runtime names", async () => {
    await ctrd.cri.stopPodSandbox(early.sandboxId);
    expect(attachedIds()).to.deep.equal([]);
    expect((await runChecked("bpftool", ["cgroup", "show", early.cgroupDir])).trim()).to.equal("");
    await ctrd.cri.removePodSandbox(early.sandboxId);
    ctrd.kubelet.removePodCgroup(early);
  });

  it("uninstall leaves containerd's dirs as they were before the install", async () => {
    expect(await (installer as CliProcess).terminate()).to.equal(0);
    const uninstall = new CliProcess(["uninstall", ...installerFlags()], {}, WAGGLE_BINARY);
    expect(await uninstall.exited, uninstall.stderr.slice(-2000)).to.equal(0);
    expect(readFileSync(conflistPath(), "utf8")).to.equal(conflistBefore);
    expect(existsSync(join(ctrd.cniBin, "waggle"))).to.equal(false);
    expect(readdirSync(ctrd.cniConf)).to.deep.equal(["10-calico.conflist"]);
    expect(readdirSync(ctrd.netnsDir)).to.deep.equal([]);
  });
});
