// waggle in a Calico-shaped chain, run the way a runtime runs it (test/support/libcni.ts):
// ptp + host-local standing in for calico, then portmap, then waggle, at cniVersion 0.3.1,
// 1.0.0 and 1.1.0, with the real datapath. Plugins run inside a test "node" netns, so the
// host's interfaces and routes are never touched.
import "../support/hooks";
import { expect } from "chai";
import { netnsQuery } from "ebpf-napi";
import { checkPod, listPods } from "../../datapath";
import { CniNode } from "../support/cni-node";
import { runChecked } from "../support/command";
import { assertNoLeaks, snapshotLeaks } from "../support/leaks";
import type { PodSandbox } from "../support/libcni";

describe("cni chain: ptp + portmap + waggle through the libcni harness (real datapath)", function () {
  this.timeout(180_000);
  let cni: CniNode;
  let bpf: CniNode["bpf"];
  let runtime: CniNode["runtime"];

  before(async () => {
    cni = await CniNode.create();
    bpf = cni.bpf;
    runtime = cni.runtime;
  });
  after(async () => {
    await cni?.destroy();
  });

  const chain = (version: string, waggle: Record<string, unknown> = {}) =>
    cni.chain(version, waggle);
  const sandbox = async (annotations?: Record<string, string>) => {
    const p = await cni.pod(annotations);
    return { pod: p.sandbox, rt: p.rt };
  };

  const leakOpts = () => ({ bpffsRoots: [`${bpf.path}/pods`], netns: [cni.node.name] });
  const attachedIds = () => listPods(bpf.opts).map((p) => p.containerId);

  /** Programs of the pod netns's sk_lookup hook (inbound capture): [] when none. */
  const inboundPrograms = (pod: PodSandbox) => netnsQuery(pod.netnsPath, "sk_lookup");

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
          expect(address).to.match(/^10\.250\.\d+\.\d+\/16$/);

          const [record] = listPods(bpf.opts).filter((p) => p.containerId === rt.containerId);
          expect(record, "waggle's record").to.not.equal(undefined);
          expect(record.podIPs).to.deep.equal([address.split("/")[0]]);
          expect(record.ifname).to.equal("eth0");
          expect(record.cgroupPath).to.equal(pod.cgroupDir);
          expect(checkPod(rt.containerId, bpf.opts)).to.deep.equal([]);
          expect(inboundPrograms(pod)).to.have.length(1);

          if (version !== "0.3.1") await runtime.checkNetworkList(list, rt);
          if (version === "1.1.0") await runtime.getStatusNetworkList(list);

          // waggle's DEL alone (a one-plugin list of the same network) while eth0 still exists
          await runtime.delNetworkList({ ...list, plugins: list.plugins.slice(2) }, rt);
          expect(attachedIds()).to.not.include(rt.containerId);
          expect(inboundPrograms(pod)).to.deep.equal([]);
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

  /** A runtime over the node that records what waggle got on stdin for each DEL. */
  function watchingDels(): { runtime: CniNode["runtime"]; dels: Record<string, unknown>[] } {
    const dels: Record<string, unknown>[] = [];
    const watcher = cni.libcni({
      onInvocation: (inv) => {
        if (inv.command === "DEL" && inv.type === "waggle") dels.push(inv.stdin);
      },
    });
    return { runtime: watcher, dels };
  }

  it("0.3.1: DEL runs without prevResult and CHECK is not offered", async () => {
    const { pod, rt } = await sandbox();
    const { runtime: watcher, dels } = watchingDels();
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
    const { runtime: watcher, dels } = watchingDels();
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
    const before = snapshotLeaks(leakOpts());
    for (const version of ["0.3.1", "1.0.0", "1.1.0"]) {
      const { pod, rt } = await sandbox();
      try {
        await runtime.addNetworkList(chain(version), rt);
        await runtime.delNetworkList(chain(version), rt);
      } finally {
        await pod.destroy();
      }
    }
    assertNoLeaks(before, leakOpts());
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
