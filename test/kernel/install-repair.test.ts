// Early-pod repair end to end: a meshed pod runs (netns, pod cgroup laid out like the kubelet
// and containerd lay it out, sandbox and containers as child cgroups) before waggle is
// installed; `waggle install` lists this node's pods from a fake API server (HTTPS, checked
// against the CA the kubeconfig carries) and attaches the pod in place, under its sandbox ID,
// within 10 s; its app's connections are then captured.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import { expect } from "chai";
import { checkPod, listPods } from "../../datapath";
import { COMMAND_PATH } from "../support/command";
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

/** An HTTPS stand-in for the API server's pod list, with a self-signed certificate. */
class FakeApiServer {
  readonly requests: Array<{ url: string; authorization?: string }> = [];
  pods: V1Pod[] = [];
  private server?: Server;
  readonly certFile: string;
  private readonly keyFile: string;

  constructor(dir: string) {
    this.certFile = join(dir, "api.crt");
    this.keyFile = join(dir, "api.key");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        this.keyFile,
        "-out",
        this.certFile,
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
  }

  async start(token: string): Promise<number> {
    const server = createServer(
      { key: readFileSync(this.keyFile), cert: readFileSync(this.certFile) },
      (req, res) => {
        this.requests.push({ url: req.url ?? "", authorization: req.headers.authorization });
        const url = new URL(req.url ?? "/", "https://x");
        const send = (code: number, body: object) => {
          res.writeHead(code, { "content-type": "application/json" });
          res.end(JSON.stringify(body));
        };
        if (req.headers.authorization !== `Bearer ${token}`)
          return send(401, { kind: "Status", code: 401 });
        if (url.pathname !== "/api/v1/pods") return send(404, { kind: "Status", code: 404 });
        const selector = url.searchParams.get("fieldSelector");
        const items = this.pods.filter((p) => selector === `spec.nodeName=${p.spec?.nodeName}`);
        send(200, { apiVersion: "v1", kind: "PodList", metadata: {}, items });
      },
    );
    this.server = server;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

function podObject(name: string, uid: string, ip: string, meshed: boolean, nodeName = NODE): V1Pod {
  return {
    metadata: {
      namespace: "shop",
      name,
      uid,
      annotations: meshed ? { "sidecar.istio.io/status": '{"containers":["istio-proxy"]}' } : {},
    },
    spec: {
      nodeName,
      containers: meshed ? [{ name: "app" }, { name: "istio-proxy" }] : [{ name: "app" }],
    },
    status: {
      phase: "Running",
      podIP: ip,
      podIPs: [{ ip }],
      containerStatuses: [
        {
          name: "app",
          containerID: `containerd://${APP_ID}`,
          image: "",
          imageID: "",
          ready: true,
          restartCount: 0,
        },
        {
          name: "istio-proxy",
          containerID: `containerd://${PROXY_ID}`,
          image: "",
          imageID: "",
          ready: true,
          restartCount: 0,
        },
      ],
    },
  };
}

describe("install (kernel): early-pod repair", function () {
  this.timeout(90_000);
  let host: InstallHost;
  let api: FakeApiServer;
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
    api = new FakeApiServer(host.root);
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
    api.pods = [
      podObject("early", uid, p.address(4), true),
      podObject("plain", randomUUID(), "10.0.0.250", false),
      podObject("elsewhere", randomUUID(), "10.0.0.251", true, "another-node"),
    ];
    const port = await api.start("token-1");

    const started = Date.now();
    installer = new CliProcess([
      "install",
      ...host.flags([
        "--kubernetes-service-host",
        "127.0.0.1",
        "--kubernetes-service-port",
        String(port),
        "--ca-file",
        api.certFile,
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
