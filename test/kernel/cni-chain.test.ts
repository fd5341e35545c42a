// waggle in a Calico-shaped chain, run the way a runtime runs it (test/support/libcni.ts):
// ptp + host-local standing in for calico, then portmap, then waggle, at cniVersion 0.3.1,
// 1.0.0 and 1.1.0, with the real datapath. Plugins run inside a test "node" netns, so the
// host's interfaces and routes are never touched.
import "../support/hooks";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { checkPod, listPods } from "../../cni/datapath";
import { runChecked } from "../support/command";
import { assertNoLeaks, snapshotLeaks } from "../support/leaks";
import {
  k8sArgs,
  Libcni,
  type NetworkConfigList,
  PodSandbox,
  preparePluginDir,
  type RuntimeConf,
  SYSTEM_CNI_DIR,
} from "../support/libcni";
import { uniqueName } from "../support/names";
import { createNode, type Node } from "../support/pod";
import { BpfRoot } from "../support/waggle-mode";

const STATUS = JSON.stringify({
  initContainers: ["istio-validation"],
  containers: ["istio-proxy"],
});
const MESHED = { "sidecar.istio.io/status": STATUS };

describe("cni chain: ptp + portmap + waggle through the libcni harness (real datapath)", function () {
  this.timeout(180_000);
  let node: Node;
  let bpf: BpfRoot;
  let plugins: ReturnType<typeof preparePluginDir>;
  let work: string;
  let runtime: Libcni;

  before(async () => {
    node = await createNode({ label: "cni node" });
    bpf = new BpfRoot();
    plugins = preparePluginDir({ shim11: ["ptp", "portmap"] });
    work = mkdtempSync(join(tmpdir(), "waggle-cni-"));
    runtime = new Libcni({
      path: [plugins.dir, SYSTEM_CNI_DIR],
      cacheDir: join(work, "cache"),
      runtimeNetns: node.netnsPath,
    });
  });
  after(async () => {
    await node?.destroy();
    bpf?.destroy();
    plugins?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** The Calico-shaped list: the primary plugin, portmap, then waggle's entry. */
  function chain(version: string, waggle: Record<string, unknown> = {}): NetworkConfigList {
    return {
      cniVersion: version,
      name: "k8s-pod-network",
      plugins: [
        {
          type: "ptp",
          ipMasq: false,
          mtu: 1500,
          ipam: {
            type: "host-local",
            subnet: "10.250.0.0/24",
            dataDir: join(work, "host-local"),
            routes: [{ dst: "0.0.0.0/0" }],
          },
        },
        { type: "portmap", snat: true, capabilities: { portMappings: true } },
        {
          type: "waggle",
          bpf_root: bpf.path,
          log_level: "debug",
          log_file: join(work, "waggle.log"),
          capabilities: { cgroupPath: true, "io.kubernetes.cri.pod-annotations": true },
          ...waggle,
        },
      ],
    };
  }

  async function sandbox(
    annotations: Record<string, string> = MESHED,
  ): Promise<{ pod: PodSandbox; rt: RuntimeConf }> {
    const pod = await PodSandbox.create();
    const containerId = uniqueName("k");
    const rt: RuntimeConf = {
      containerId,
      netns: pod.netnsPath,
      ifname: "eth0",
      args: k8sArgs({ namespace: "shop", name: pod.name, uid: "", infraContainerId: containerId }),
      capabilityArgs: {
        cgroupPath: pod.cgroupPath,
        "io.kubernetes.cri.pod-annotations": annotations,
        portMappings: [],
      },
    };
    return { pod, rt };
  }

  const attachedIds = () => listPods(bpf.opts).map((p) => p.containerId);

  async function tcFilters(pod: PodSandbox): Promise<string> {
    return runChecked("tc", ["-n", pod.name, "filter", "show", "dev", "eth0", "ingress"]);
  }

  /** Programs attached to the pod cgroup, as bpftool lists them ("" when none). */
  async function cgroupPrograms(pod: PodSandbox): Promise<string> {
    return (await runChecked("bpftool", ["cgroup", "show", pod.cgroupDir])).trim();
  }

  for (const version of ["0.3.1", "1.0.0", "1.1.0"]) {
    describe(`cniVersion ${version}`, () => {
      it("ADD attaches a meshed pod and passes the chain's result through", async () => {
        const { pod, rt } = await sandbox();
        try {
          const list = chain(version);
          const result = await runtime.addNetworkList(list, rt);
          expect(result.cniVersion).to.equal(version);
          const eth0 = result.interfaces?.findIndex((i) => i.sandbox === pod.netnsPath);
          expect(eth0).to.be.at.least(0);
          const address = result.ips?.find((ip) => ip.interface === eth0)?.address ?? "";
          expect(address).to.match(/^10\.250\.0\.\d+\/24$/);

          const [record] = listPods(bpf.opts).filter((p) => p.containerId === rt.containerId);
          expect(record, "waggle's record").to.not.equal(undefined);
          expect(record.podIPs).to.deep.equal([address.split("/")[0]]);
          expect(record.ifname).to.equal("eth0");
          expect(record.cgroupPath).to.equal(pod.cgroupDir);
          expect(checkPod(rt.containerId, bpf.opts)).to.deep.equal([]);
          expect(await tcFilters(pod)).to.contain("bpf");

          if (version !== "0.3.1") await runtime.checkNetworkList(list, rt);
          if (version === "1.1.0") await runtime.getStatusNetworkList(list);

          // waggle's DEL alone (a one-plugin list of the same network) while eth0 still exists
          await runtime.delNetworkList({ ...list, plugins: list.plugins.slice(2) }, rt);
          expect(attachedIds()).to.not.include(rt.containerId);
          expect(await tcFilters(pod)).to.not.contain("bpf");
          expect(await cgroupPrograms(pod)).to.equal("");
          // then the whole list (the cache went with the first DEL: no prevResult this time)
          await runtime.delNetworkList(list, rt);
          expect(runtime.cachedAttachments().map((c) => c.containerId)).to.not.include(
            rt.containerId,
          );
        } finally {
          await pod.destroy();
        }
      });

      it("ADD of an unmeshed pod changes nothing and still passes the result through", async () => {
        const { pod, rt } = await sandbox({ "prometheus.io/scrape": "true" });
        try {
          const list = chain(version);
          const result = await runtime.addNetworkList(list, rt);
          expect(result.ips).to.have.length(1);
          expect(attachedIds()).to.not.include(rt.containerId);
          await runtime.delNetworkList(list, rt);
        } finally {
          await pod.destroy();
        }
      });
    });
  }

  it("0.3.1: DEL runs without prevResult and CHECK is not offered", async () => {
    const { pod, rt } = await sandbox();
    const dels: Record<string, unknown>[] = [];
    const watcher = new Libcni({
      ...runtime.opts,
      onInvocation: (inv) => {
        if (inv.command === "DEL" && inv.type === "waggle") dels.push(inv.stdin);
      },
    });
    try {
      const list = chain("0.3.1");
      await watcher.addNetworkList(list, rt);
      await expectRejects(watcher.checkNetworkList(list, rt), "does not support the CHECK command");
      await watcher.delNetworkList(list, rt);
      expect(dels).to.have.length(1);
      expect(dels[0]).to.not.have.property("prevResult");
      expect(attachedIds()).to.not.include(rt.containerId);
    } finally {
      await pod.destroy();
    }
  });

  it("1.0.0: DEL gets the cached result as prevResult", async () => {
    const { pod, rt } = await sandbox();
    const dels: Record<string, unknown>[] = [];
    const watcher = new Libcni({
      ...runtime.opts,
      onInvocation: (inv) => {
        if (inv.command === "DEL" && inv.type === "waggle") dels.push(inv.stdin);
      },
    });
    try {
      const list = chain("1.0.0");
      const result = await watcher.addNetworkList(list, rt);
      await watcher.delNetworkList(list, rt);
      expect(dels[0].prevResult).to.deep.equal(result);
    } finally {
      await pod.destroy();
    }
  });

  it("leaves nothing behind after ADD/DEL at each version", async () => {
    const before = snapshotLeaks({ bpffsRoots: [join(bpf.path, "pods")], netns: [node.name] });
    for (const version of ["0.3.1", "1.0.0", "1.1.0"]) {
      const { pod, rt } = await sandbox();
      try {
        await runtime.addNetworkList(chain(version), rt);
        await runtime.delNetworkList(chain(version), rt);
      } finally {
        await pod.destroy();
      }
    }
    assertNoLeaks(before, { bpffsRoots: [join(bpf.path, "pods")], netns: [node.name] });
  });
});

async function expectRejects(p: Promise<unknown>, text: string): Promise<Error> {
  try {
    await p;
  } catch (e) {
    expect((e as Error).message).to.contain(text);
    return e as Error;
  }
  throw new Error(`expected a rejection containing ${JSON.stringify(text)}`);
}
