// Early-pod repair end to end: a meshed pod runs (netns, pod cgroup laid out like the kubelet
// and containerd lay it out, sandbox and containers as child cgroups) before waggle is
// installed; `waggle install` lists this node's pods from a fake API server (HTTPS, checked
// against the CA the kubeconfig carries) and attaches the pod in place, under its sandbox ID,
// within 10 s; its app's connections are then captured.

import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { checkPod, listPods } from "../../datapath";
import { COMMAND_PATH } from "../support/command";
import { FakeKubeApi, nodePod } from "../support/fake-kube-api";
import { uniqueName } from "../support/names";
import { Pod } from "../support/pod";
import { removeCgroupDirSync, sandboxArgv, testCgroupParent } from "../support/sandbox";
import { CALICO_SHAPES, waitFor } from "../unit/install-fixtures";
import { APP, PROXY } from "./install-capture";
import { CliProcess, httpGet, InstallHost, runCli } from "./install-process";

const NODE = "node-under-test";
const id = (c: string) => c.repeat(64);
const SANDBOX = id("a");
const APP_ID = id("b");
const PROXY_ID = id("c");

describe("install (kernel): early-pod repair", function () {
  this.timeout(90_000);
  let host: InstallHost;
  let api: FakeKubeApi;
  let pod: Pod | undefined;
  let installer: CliProcess | undefined;
  const cgroupRoot = join(testCgroupParent(), uniqueName("c"));
  const uid = randomUUID();
  const podCgroup = join(cgroupRoot, "kubepods", "besteffort", `pod${uid}`);
  const children: ChildProcess[] = [];

  /** Starts `cmd` in the pod's netns and the given container cgroup (like the runtime would). */
  function runInPod(
    container: string,
    cmd: string,
    args: string[],
    as: { uid: number; gid: number },
  ) {
    const child = spawn(
      "sh",
      sandboxArgv((pod as Pod).netnsPath, join(podCgroup, container), cmd, args, as),
      {
        cwd: "/",
        env: { PATH: COMMAND_PATH },
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    children.push(child);
    let out = "";
    let err = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    return { child, output: () => out, errors: () => err };
  }

  before(async () => {
    host = new InstallHost();
    writeFileSync(join(host.netDir, "10-calico.conflist"), CALICO_SHAPES.manifest, { mode: 0o600 });
    api = new FakeKubeApi();
    api.token = "token-1";
    pod = await Pod.create({ label: "early pod" });
    for (const c of [SANDBOX, APP_ID, PROXY_ID]) mkdirSync(join(podCgroup, c), { recursive: true });
  });
  after(async () => {
    installer?.kill();
    await runCli(["uninstall", ...host.uninstallFlags()]);
    removeCgroupDirSync(cgroupRoot);
    await pod?.destroy();
    await api.stop();
    host.remove();
  });

  it("attaches a meshed pod that started before waggle, in place, within 10 s, under its sandbox ID", async () => {
    const p = pod as Pod;
    // The pod as it ran before waggle: pause (sandbox), the proxy, the app's server side.
    runInPod(SANDBOX, "sleep", ["600"], { uid: 65535, gid: 65535 });
    const proxy = runInPod(PROXY_ID, "python3", ["-c", PROXY], { uid: 1337, gid: 1337 });
    await waitFor("the proxy", () => proxy.output().includes("ready")).catch((e: Error) => {
      throw new Error(`${e.message}: ${proxy.errors()}`);
    });
    const containerIds = { app: APP_ID, proxy: PROXY_ID };
    for (const pod of [
      { name: "early", uid, ip: p.address(4), meshed: true, nodeName: NODE, containerIds },
      { name: "plain", uid: randomUUID(), ip: "10.0.0.250", meshed: false, nodeName: NODE },
      { name: "elsewhere", uid: randomUUID(), meshed: true, nodeName: "another-node" },
    ])
      api.addPod(nodePod(pod));
    await api.start({ tlsDir: host.root });
    const port = api.port;

    const started = Date.now();
    installer = new CliProcess([
      "install",
      ...host.flags([
        "--kubernetes-service-host",
        "127.0.0.1",
        "--kubernetes-service-port",
        String(port),
        "--ca-file",
        api.certFile as string,
        "--node-name",
        NODE,
        "--cgroup-root",
        cgroupRoot,
        "--proc-root",
        "/proc",
        "--netns-dir",
        "/run/netns",
      ]),
    ]);
    const attached = await installer.waitForLog("early pod attached", 10_000);
    const seconds = (Date.now() - started) / 1000;
    console.log(`      early pod attached ${seconds.toFixed(2)} s after the installer started`);
    expect(attached).to.deep.include({
      pod: "shop/early",
      containerId: SANDBOX,
      netnsPath: p.netnsPath,
      cgroupPath: podCgroup,
    });

    // Only this node's pods were asked for, with the service account's token, over verified TLS.
    expect(api.requests[0]?.url).to.equal(`/api/v1/pods?fieldSelector=spec.nodeName%3D${NODE}`);
    expect(api.requests[0]?.authorization).to.equal("Bearer token-1");
    const pass = await installer.waitForLog("early-pod repair pass");
    expect(pass).to.deep.include({ attached: ["shop/early"], skipped: 1, failed: [] });

    // Attached for real: links, map entries; recorded under the sandbox ID, so the
    // runtime's DEL for this pod will find it.
    expect(checkPod(SANDBOX, { bpfRoot: host.bpfRoot })).to.deep.equal([]);
    const record = listPods({ bpfRoot: host.bpfRoot }).find((r) => r.containerId === SANDBOX);
    expect(record?.pod).to.deep.equal({ namespace: "shop", name: "early", uid });
    expect(record?.podIPs).to.deep.equal([p.address(4)]);

    // The app's next connection goes to the proxy, with its original destination.
    const app = runInPod(APP_ID, "python3", ["-c", APP, "10.0.0.200", "8080"], {
      uid: 1000,
      gid: 1000,
    });
    await waitFor("the app's first reply", () => app.output().includes("before"), 10_000);
    expect(JSON.parse(app.output().trim().split("\n")[0] as string)).to.deep.equal({
      line: "before",
      originalDst: "10.0.0.200:8080",
    });
    app.child.kill();

    const listening = installer.lines.find((l) => l.message === "health server listening");
    const metrics = await httpGet(listening?.port as number, "/metrics");
    expect(metrics.body).to.match(/^waggle_install_early_pods_attached_total 1$/m);
    expect(metrics.body).to.match(
      /^waggle_pod_events\{namespace="shop",pod="early",counter="[a-z_]+"\} \d+$/m,
    );

    // A restart finds it attached and leaves it alone.
    expect(await installer.terminate()).to.equal(0);
    installer = new CliProcess(["install", ...installer.proc.spawnargs.slice(3)]);
    const again = await installer.waitForLog("early-pod repair pass", 10_000);
    expect(again).to.deep.include({ attached: [], alreadyAttached: 1, failed: [] });

    const uninstalled = await (async () => {
      expect(await installer?.terminate()).to.equal(0);
      return runCli(["uninstall", ...host.uninstallFlags()]);
    })();
    expect(uninstalled.lines.find((l) => l.message === "uninstalled")).to.deep.include({ pods: 1 });
  });
});
