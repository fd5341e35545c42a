// Every error code of waggle's plugin, triggered for real (the executable, the real datapath,
// the chain through the libcni harness where a runtime would see it), and nothing left
// behind afterwards: no pod state under the bpffs root, no new links, filters, netns or
// processes, and the runtime's DEL after a failed ADD succeeds.
import "../support/hooks";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { BpfMap, Link } from "ebpf-napi";
import { attachedContainerIds, ensureSharedPrograms, MAP_NAMES, paths } from "../../datapath";
import { REFUSED_ANNOTATIONS } from "../../mesh/redirect-settings";
import { CniNode, type CniPod, MESHED_ANNOTATIONS, SIDECAR_STATUS } from "../support/cni-node";
import { FakeKubeApi } from "../support/fake-kube-api";
import { assertNoLeaks, type LeakSnapshot, snapshotLeaks } from "../support/leaks";
import { PluginError } from "../support/libcni";
import { uniqueName } from "../support/names";

describe("cni errors: every code, triggered for real, nothing left behind", function () {
  this.timeout(300_000);
  let cni: CniNode;
  let leaksBefore: LeakSnapshot;
  const live: CniPod[] = [];

  const leakOpts = () => ({ bpffsRoots: [paths.pods(cni.bpf.path)], netns: [cni.node.name] });

  before(async () => {
    cni = await CniNode.create();
    ensureSharedPrograms(cni.bpf.opts);
  });
  after(async () => {
    await cni?.destroy();
  });
  beforeEach(() => {
    leaksBefore = snapshotLeaks(leakOpts());
  });
  afterEach(async function () {
    for (const p of live.splice(0)) await p.sandbox.destroy();
    if (this.currentTest?.state === "passed") {
      expect(attachedContainerIds(cni.bpf.opts)).to.deep.equal([]);
      assertNoLeaks(leaksBefore, leakOpts());
    }
  });

  async function pod(annotations: Record<string, string> = MESHED_ANNOTATIONS): Promise<CniPod> {
    const p = await cni.pod(annotations);
    live.push(p);
    return p;
  }

  /** ADD fails at waggle with `code`; the runtime's DEL of the whole list then succeeds. */
  async function addFails(p: CniPod, waggle: Record<string, unknown>, code: number, text: string) {
    const list = cni.chain("1.0.0", waggle);
    try {
      await cni.runtime.addNetworkList(list, p.rt);
      throw new Error("ADD succeeded");
    } catch (e) {
      expect(e, (e as Error).message).to.be.instanceOf(PluginError);
      const err = e as PluginError;
      expect(err.invocation.type).to.equal("waggle");
      expect(err.code, err.message).to.equal(code);
      expect(err.message).to.contain(text);
      expect(JSON.parse(err.invocation.stdout).cniVersion).to.equal("1.0.0");
    }
    await cni.runtime.delNetworkList(list, p.rt);
  }

  const ENV = (p: CniPod, command = "ADD"): Record<string, string> => ({
    CNI_COMMAND: command,
    CNI_CONTAINERID: p.rt.containerId,
    CNI_NETNS: p.rt.netns,
    CNI_IFNAME: "eth0",
    CNI_ARGS: (p.rt.args ?? []).map(([k, v]) => `${k}=${v}`).join(";"),
  });

  /** A request as the runtime would send it to waggle after Calico (prevResult given). */
  function request(p: CniPod, over: Record<string, unknown> = {}, version = "1.0.0") {
    return {
      ...cni.waggleEntry(),
      cniVersion: version,
      name: "k8s-pod-network",
      runtimeConfig: {
        cgroupPath: p.rt.capabilityArgs?.cgroupPath,
        "io.kubernetes.cri.pod-annotations": MESHED_ANNOTATIONS,
      },
      prevResult: {
        cniVersion: version,
        interfaces: [{ name: "cali0123456789a" }, { name: "eth0", sandbox: p.rt.netns }],
        ips: [{ address: "10.250.9.9/32", interface: 1 }],
      },
      ...over,
    };
  }

  it("1 incompatible version: cniVersion 0.2.0", async () => {
    const p = await pod();
    const r = await cni.execWaggle(ENV(p), request(p, { cniVersion: "0.2.0" }));
    expect(r.code).to.equal(1);
    expect(r.json).to.include({ code: 1, msg: "incompatible CNI versions", cniVersion: "0.2.0" });
  });

  it("2 unsupported field: ambient_enabled true", async () => {
    await addFails(await pod(), { ambient_enabled: true }, 2, "ambient_enabled=true");
  });

  it("4 environment: CNI_IFNAME missing, and malformed CNI_ARGS", async () => {
    const p = await pod();
    const { CNI_IFNAME: _, ...env } = ENV(p);
    const r = await cni.execWaggle(env, request(p));
    expect(r.json).to.include({ code: 4, msg: "required env variables [CNI_IFNAME] missing" });
    const bad = await cni.execWaggle({ ...ENV(p), CNI_ARGS: "K8S_POD_NAME" }, request(p));
    expect(bad.json?.code).to.equal(4);
    expect(String(bad.json?.msg)).to.contain("CNI_ARGS");
  });

  it("6 decode: stdin is not JSON, and a malformed prevResult", async () => {
    const p = await pod();
    const r = await cni.execWaggle(ENV(p), "{not json");
    expect(r.json).to.include({ code: 6 });
    const prev = await cni.execWaggle(
      ENV(p),
      request(p, { prevResult: { cniVersion: "1.0.0", ips: [{ address: "10.0.0.1" }] } }),
    );
    expect(prev.json?.code).to.equal(6);
    expect(String(prev.json?.msg)).to.contain("ips[0].address");
  });

  it("7 invalid config: a relative bpf_root fails ADD; the runtime's DEL still succeeds", async () => {
    await addFails(
      await pod(),
      { bpf_root: "sys/fs/bpf" },
      7,
      "bpf_root: must be an absolute path",
    );
  });

  it("8 invalid netns: CNI_NETNS is the plugin's own network namespace", async () => {
    const p = await pod();
    const r = await cni.execWaggle({ ...ENV(p), CNI_NETNS: cni.node.netnsPath }, request(p));
    expect(r.json).to.include({ code: 8 });
  });

  describe("the Kubernetes API (fake server on loopback; waggle run in this netns)", () => {
    let api: FakeKubeApi;
    let dir: string;
    before(async () => {
      api = new FakeKubeApi();
      await api.start();
      dir = mkdtempSync(join(tmpdir(), "waggle-kc-"));
      api.writeKubeconfig(join(dir, "kubeconfig"));
    });
    after(async () => {
      await api.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    const withApi = (p: CniPod) =>
      request(p, {
        kubernetes: { kubeconfig: join(dir, "kubeconfig") },
        api_attempts: 3,
        api_retry_interval_ms: 50,
        api_timeout_ms: 1000,
      });

    it("11 try again: the API answers 503 to every attempt; fail closed naming the cause", async () => {
      const p = await pod();
      api.requests.length = 0;
      api.script.push(...Array(3).fill({ status: 503, message: "etcdserver: leader changed" }));
      const r = await cni.execWaggle(ENV(p), withApi(p), { hostNetns: true });
      expect(r.json).to.deep.equal({
        cniVersion: "1.0.0",
        code: 11,
        msg: `cannot read pod shop/${p.sandbox.name} from the API server after 3 attempts: HTTP 503 (etcdserver: leader changed)`,
      });
      expect(api.requests).to.have.length(3);
    });

    it("100 pod lookup failed: the API does not know the pod (404), not retried", async () => {
      const p = await pod();
      api.requests.length = 0;
      const r = await cni.execWaggle(ENV(p), withApi(p), { hostNetns: true });
      expect(r.json?.code).to.equal(100);
      expect(String(r.json?.msg)).to.contain(`HTTP 404 (pods "${p.sandbox.name}" not found)`);
      expect(api.requests).to.have.length(1);
    });

    it("101 from the API's pod: istio-proxy runs as uid 1337 and the pod has an invalid annotation", async () => {
      const p = await pod();
      api.addPod({
        metadata: {
          namespace: "shop",
          name: p.sandbox.name,
          annotations: { "sidecar.istio.io/status": SIDECAR_STATUS },
        },
        spec: { containers: [{ name: "istio-proxy", args: ["proxy", "sidecar"] }] },
      });
      const r = await cni.execWaggle(
        ENV(p),
        {
          ...withApi(p),
          runtimeConfig: {
            cgroupPath: p.rt.capabilityArgs?.cgroupPath,
            "io.kubernetes.cri.pod-annotations": {
              ...MESHED_ANNOTATIONS,
              "sidecar.istio.io/interceptionMode": "NONE",
            },
          },
        },
        { hostNetns: true },
      );
      expect(r.json?.code).to.equal(101);
      expect(String(r.json?.msg)).to.contain("sidecar.istio.io/interceptionMode");
    });
  });

  it("101 invalid pod annotation (through the chain), naming it", async () => {
    await addFails(
      await pod({
        ...MESHED_ANNOTATIONS,
        "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0.0/8,bogus",
      }),
      {},
      101,
      "traffic.sidecar.istio.io/excludeOutboundIPRanges",
    );
  });

  for (const annotation of Object.values(REFUSED_ANNOTATIONS)) {
    it(`101 a pod asking for VM interface capture (${annotation}) never starts: refused through the chain, naming it`, async () => {
      await addFails(
        await pod({ ...MESHED_ANNOTATIONS, [annotation]: "vmnet0" }),
        {},
        101,
        `annotation ${annotation}="vmnet0" is invalid: capture of traffic forwarded from VM interfaces is not implemented`,
      );
    });
  }

  it("102 pod cgroup not found: the runtime's cgroupPath does not exist", async () => {
    const p = await pod();
    p.rt.capabilityArgs = { ...p.rt.capabilityArgs, cgroupPath: `/waggle-test/${uniqueName("c")}` };
    await addFails(p, {}, 102, "does not exist under the cgroup2 mount");
  });

  it("103 no pod address: prevResult has no IP for the pod's interface", async () => {
    const p = await pod();
    const r = await cni.execWaggle(
      ENV(p),
      request(p, {
        prevResult: {
          cniVersion: "1.0.0",
          interfaces: [{ name: "eth0", sandbox: p.rt.netns }],
          ips: [],
        },
      }),
    );
    expect(r.json).to.include({ code: 103 });
  });

  it("104 attach failed: the netns cannot be used; nothing is left half-attached", async () => {
    const p = await pod();
    const r = await cni.execWaggle(
      { ...ENV(p), CNI_NETNS: `/run/netns/${uniqueName("n")}` },
      request(p),
    );
    expect(r.json?.code).to.equal(104);
    expect(String(r.json?.msg)).to.contain("does not exist");
  });

  describe("state waggle cannot remove (a link pin replaced by a map pin)", () => {
    // bpffs refuses to unlink nothing; a pin that is not a link makes link detach fail.
    function spoilLinkPin(containerId: string): string {
      const pin = paths.podLink(cni.bpf.path, containerId, "waggle_connect4");
      const link = Link.openPinned(pin);
      link.close();
      rmSync(pin);
      const map = BpfMap.openPinned(paths.map(cni.bpf.path, MAP_NAMES.policy));
      try {
        map.pin(pin);
      } finally {
        map.close();
      }
      return pin;
    }

    it("106 detach failed: DEL reports what is left; after the fix a DEL succeeds", async () => {
      const p = await pod();
      const list = cni.chain("1.0.0");
      await cni.runtime.addNetworkList(list, p.rt);
      const pin = spoilLinkPin(p.rt.containerId);
      try {
        await cni.runtime.delNetworkList(list, p.rt);
        throw new Error("DEL succeeded");
      } catch (e) {
        expect((e as PluginError).code, (e as Error).message).to.equal(106);
        expect((e as Error).message).to.contain("waggle_connect4");
      }
      rmSync(pin);
      await cni.runtime.delNetworkList(list, p.rt);
    });

    it("107 GC failed: GC keeps going past the failure and reports it", async () => {
      const list = cni.chain("1.1.0");
      const [a, b] = [await pod(), await pod()];
      for (const p of [a, b]) await cni.runtime.addNetworkList(list, p.rt);
      for (const p of [a, b])
        rmSync(join(cni.runtime.opts.cacheDir, "results", `${list.name}-${p.rt.containerId}-eth0`));
      const pin = spoilLinkPin(a.rt.containerId);
      try {
        await cni.runtime.gcNetworkList(list, []);
        throw new Error("GC succeeded");
      } catch (e) {
        const errors = (e as AggregateError).errors as PluginError[];
        expect(errors.map((x) => x.code)).to.deep.equal([107]);
        expect(errors[0].details).to.contain(a.rt.containerId);
      }
      expect(attachedContainerIds(cni.bpf.opts)).to.deep.equal([a.rt.containerId]); // b was removed
      rmSync(pin);
      await cni.runtime.gcNetworkList(list, []);
    });
  });

  it("51 STATUS: bpf_root is not on a bpffs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "waggle-nobpffs-"));
    try {
      const r = await cni.execWaggle(
        { CNI_COMMAND: "STATUS" },
        {
          ...cni.waggleEntry({ bpf_root: join(dir, "waggle") }),
          cniVersion: "1.1.0",
          name: "k8s-pod-network",
        },
      );
      expect(r.json).to.include({ code: 51 });
      expect(String(r.json?.msg)).to.contain("no bpffs at");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("STATUS succeeds on this host (bpffs, cgroup v2, programs load)", async () => {
    const r = await cni.execWaggle(
      { CNI_COMMAND: "STATUS" },
      { ...cni.waggleEntry(), cniVersion: "1.1.0", name: "k8s-pod-network" },
    );
    expect(r.code, r.stdout).to.equal(0);
    expect(r.stdout).to.equal("");
  });
});
