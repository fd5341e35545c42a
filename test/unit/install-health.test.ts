import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import type { InstallDatapath } from "../../install/datapath-port";
import { startHealthServer } from "../../install/health";
import { Installer, uninstall } from "../../install/main";
import { InstallMetrics } from "../../install/metrics";
import { resolveInstallOptions } from "../../install/options";
import { attachedPod, counters, FRESH_LOAD, recordOf } from "../support/pod-records";
import {
  CALICO_SHAPES,
  capturingLogger,
  FakeFollowPort,
  scratchDir,
  waitFor,
} from "./install-fixtures";

const CA = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";

async function get(port: number, path: string, method = "GET") {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
}

/** A datapath double: records calls; each behaviour can be replaced per test. */
function fakeDatapath(over: Partial<InstallDatapath> = {}): InstallDatapath & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    requireBpffs: () => {},
    upgradePrograms: async ({ bpfRoot }) => {
      calls.push(`load ${bpfRoot}`);
      return FRESH_LOAD;
    },
    listPods: async () => [
      attachedPod({
        containerId: "c1",
        podIPs: ["10.1.0.4"],
        pod: { namespace: "default", name: "app-1" },
        counters: counters({ outbound_redirected: 7 }),
      }),
    ],
    attachPod: async (req, { bpfRoot }) => {
      calls.push(`attach ${bpfRoot} ${req.containerId}`);
      return recordOf(req);
    },
    netnsCookieOf: () => "1",
    removeDatapath: async ({ bpfRoot }) => {
      calls.push(`removeAll ${bpfRoot}`);
      return { pods: 2 };
    },
    ...over,
  };
}

describe("install: health server and the installer's readiness", () => {
  let dir: string;
  let remove: () => void;
  let installer: Installer | undefined;
  beforeEach(() => {
    ({ dir, remove } = scratchDir("health"));
  });
  afterEach(async () => {
    await installer?.stop();
    installer = undefined;
    remove();
  });

  it("/readyz is 503 until every check holds; /healthz 200; /metrics in Prometheus format; 404 and 405", async () => {
    let entry = false;
    const metrics = new InstallMetrics();
    const server = await startHealthServer({
      port: 0,
      address: "127.0.0.1",
      metrics,
      log: capturingLogger().log,
      checks: { entryInPlace: () => entry, programsLoaded: () => true },
    });
    try {
      expect(await get(server.port, "/healthz")).to.include({ status: 200, body: "ok\n" });
      const notReady = await get(server.port, "/readyz");
      expect(notReady.status).to.equal(503);
      expect(JSON.parse(notReady.body)).to.deep.equal({
        ready: false,
        checks: { entryInPlace: false, programsLoaded: true },
        warnings: {},
      });
      entry = true;
      expect((await get(server.port, "/readyz")).status).to.equal(200);
      const m = await get(server.port, "/metrics");
      expect(m.type).to.match(/^text\/plain/);
      expect(m.body).to.match(/^# TYPE waggle_install_repairs_total counter$/m);
      expect((await get(server.port, "/other")).status).to.equal(404);
      expect((await get(server.port, "/healthz", "POST")).status).to.equal(405);
    } finally {
      await server.close();
    }
  });

  it("/readyz lists the warnings raised now, and a warning never makes the node unready", async () => {
    let missing = true;
    const server = await startHealthServer({
      port: 0,
      address: "127.0.0.1",
      metrics: new InstallMetrics(),
      log: capturingLogger().log,
      checks: { entryInPlace: () => true },
      warnings: {
        netnsDir: () => (missing ? "the netns directory is not mounted" : null),
        other: () => null,
      },
    });
    try {
      const warned = await get(server.port, "/readyz");
      expect(warned.status).to.equal(200);
      expect(JSON.parse(warned.body)).to.deep.equal({
        ready: true,
        checks: { entryInPlace: true },
        warnings: { netnsDir: "the netns directory is not mounted" },
      });
      missing = false;
      expect(JSON.parse((await get(server.port, "/readyz")).body).warnings).to.deep.equal({});
    } finally {
      await server.close();
    }
  });

  it("a port in use is a clear error", async () => {
    const log = capturingLogger().log;
    const first = await startHealthServer({
      port: 0,
      address: "127.0.0.1",
      metrics: new InstallMetrics(),
      log,
      checks: {},
    });
    try {
      await startHealthServer({
        port: first.port,
        address: "127.0.0.1",
        metrics: new InstallMetrics(),
        log,
        checks: {},
      }).then(
        () => expect.fail("should fail"),
        (err: Error) =>
          expect(err.message).to.match(
            /health server cannot listen on 127.0.0.1:\d+: .*EADDRINUSE/,
          ),
      );
    } finally {
      await first.close();
    }
  });

  function layout() {
    const bin = join(dir, "bin");
    const net = join(dir, "net");
    mkdirSync(bin);
    mkdirSync(net);
    writeFileSync(join(dir, "token"), "t");
    writeFileSync(join(dir, "ca.crt"), CA);
    copyFileSync("/bin/true", join(dir, "waggle-build"));
    writeFileSync(join(net, "10-calico.conflist"), CALICO_SHAPES.operator, { mode: 0o600 });
    return resolveInstallOptions(
      {
        "cni-bin-dir": bin,
        "cni-net-dir": net,
        "bpf-root": join(dir, "bpf"),
        binary: join(dir, "waggle-build"),
        "token-file": join(dir, "token"),
        "ca-file": join(dir, "ca.crt"),
        "health-port": 0,
        "health-address": "127.0.0.1",
      },
      { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" },
    );
  }

  it("ready only once programs are loaded AND the entry is in place; per-pod counters in /metrics", async () => {
    const options = layout();
    let release: () => void = () => {};
    const programsGate = new Promise<void>((r) => {
      release = r;
    });
    const datapath = fakeDatapath({
      upgradePrograms: async () => {
        await programsGate;
        return FRESH_LOAD;
      },
    });
    installer = new Installer(options, { log: capturingLogger().log, datapath });
    const started = installer.start();
    await waitFor("health server", () => installer?.healthPort !== undefined);
    const port = installer.healthPort as number;
    const before = JSON.parse((await get(port, "/readyz")).body);
    expect(before).to.deep.equal({
      ready: false,
      checks: { entryInPlace: false, programsLoaded: false },
      warnings: {},
    });
    release();
    await started;
    expect((await get(port, "/readyz")).status).to.equal(200);
    const metrics = (await get(port, "/metrics")).body;
    expect(metrics).to.match(
      /^waggle_pod_events\{namespace="default",pod="app-1",counter="outbound_redirected"\} 7$/m,
    );
  });

  it("follows the attached pods once the programs are loaded, and stops following on stop", async () => {
    const options = layout();
    const follow = new FakeFollowPort(join(options.bpfRoot, "pods"));
    follow.pods.set("a", "/run/netns/a");
    installer = new Installer(options, {
      log: capturingLogger().log,
      datapath: fakeDatapath(),
      follow,
    });
    await installer.start();
    expect(follow.refreshed).to.deep.equal(["a"]);
    expect([...follow.watches.values()]).to.deep.equal(["/run/netns/a"]);
    await installer.stop();
    expect(follow.closed).to.equal(true);
  });

  it("a failing program load fails start (nothing chained) and leaves readiness false", async () => {
    const options = layout();
    const datapath = fakeDatapath({
      upgradePrograms: async () => {
        throw new Error("verifier says no");
      },
    });
    installer = new Installer(options, { log: capturingLogger().log, datapath });
    await installer.start().then(
      () => expect.fail("should fail"),
      (err: Error) => expect(err.message).to.equal("verifier says no"),
    );
    expect(readFileSync(join(options.cniNetDir, "10-calico.conflist"), "utf8")).to.equal(
      CALICO_SHAPES.operator,
    );
    expect(installer.entryInPlace).to.equal(false);
  });

  it("a bpf root that is no bpffs fails start before the binary, kubeconfig or entry are written", async () => {
    const options = layout();
    const datapath = fakeDatapath({
      requireBpffs: (root) => {
        throw new Error(`${root} is not on a bpffs`);
      },
    });
    installer = new Installer(options, { log: capturingLogger().log, datapath });
    await installer.start().then(
      () => expect.fail("should fail"),
      (err: Error) => expect(err.message).to.equal(`${options.bpfRoot} is not on a bpffs`),
    );
    expect(readdirSync(options.cniBinDir)).to.deep.equal([]);
    expect(readdirSync(options.cniNetDir)).to.deep.equal(["10-calico.conflist"]);
    expect(datapath.calls).to.deep.equal([]);
  });

  it("uninstall calls the datapath after the config is restored; its failure is the command's", async () => {
    const options = layout();
    const datapath = fakeDatapath();
    installer = new Installer(options, { log: capturingLogger().log, datapath });
    await installer.start();
    await installer.stop();
    const report = await uninstall(options, { log: capturingLogger().log, datapath });
    expect(report).to.deep.include({ binaryRemoved: true, kubeconfigRemoved: true, pods: 2 });
    expect(datapath.calls).to.deep.equal([
      `load ${options.bpfRoot}`,
      `removeAll ${options.bpfRoot}`,
    ]);
    expect(readFileSync(join(options.cniNetDir, "10-calico.conflist"), "utf8")).to.equal(
      CALICO_SHAPES.operator,
    );
    const failing = fakeDatapath({
      removeDatapath: async () => {
        throw new Error("link busy");
      },
    });
    await uninstall(options, { log: capturingLogger().log, datapath: failing }).then(
      () => expect.fail("should fail"),
      (err: Error) => expect(err.message).to.equal("link busy"),
    );
    expect(existsSync(join(options.cniBinDir, "waggle"))).to.equal(false);
  });
});
