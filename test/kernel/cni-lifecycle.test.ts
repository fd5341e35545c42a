// The attachment lifecycle through the libcni harness with the real chain and datapath: DEL
// idempotence (twice, empty or vanished netns, after a half-done ADD, never-seen containers),
// CHECK catching missing links and map entries, GC of attachments whose DEL never
// came, 20 ADDs in parallel, and 200 ADD/DEL cycles that leave nothing behind.
import "../support/hooks";
import { rmSync, unlinkSync } from "node:fs";
import { expect } from "chai";
import { BpfMap, unpin } from "ebpf-napi";
import {
  attachedContainerIds,
  CGROUP_PROGRAMS,
  checkPod,
  detachPod,
  ensureSharedPrograms,
  listPods,
  MAP_NAMES,
  NETNS_PROGRAM,
  netnsKey,
  paths,
} from "../../datapath";
import {
  CniNode,
  type CniNode as CniNodeType,
  type CniPod,
  MESHED_ANNOTATIONS,
} from "../support/cni-node";
import { runChecked } from "../support/command";
import { assertNoLeaks, snapshotLeaks } from "../support/leaks";
import { type Invocation, PluginError } from "../support/libcni";

describe("cni lifecycle: DEL, CHECK, GC and concurrency (real chain and datapath)", function () {
  this.timeout(600_000);
  let cni: CniNodeType;
  const live: CniPod[] = [];

  before(async () => {
    cni = await CniNode.create();
    ensureSharedPrograms(cni.bpf.opts); // so map sizes can be taken before the first ADD
  });
  afterEach(async () => {
    for (const p of live.splice(0)) await p.sandbox.destroy();
  });
  after(async () => {
    await cni?.destroy();
  });

  async function pod(annotations = MESHED_ANNOTATIONS): Promise<CniPod> {
    const p = await cni.pod(annotations);
    live.push(p);
    return p;
  }

  const ids = () => attachedContainerIds(cni.bpf.opts);
  const leakOpts = () => ({ bpffsRoots: [paths.pods(cni.bpf.path)], netns: [cni.node.name] });

  /** Entries in each shared map (the datapath's per-pod state). */
  function mapSizes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of [
      MAP_NAMES.policy,
      MAP_NAMES.podIps,
      MAP_NAMES.ports,
      MAP_NAMES.cidrs,
      MAP_NAMES.counters,
    ]) {
      const m = BpfMap.openPinned(paths.map(cni.bpf.path, name));
      try {
        out[name] = [...m.keys()].length;
      } finally {
        m.close();
      }
    }
    return out;
  }

  async function expectPluginError(p: Promise<unknown>, code: number, text: string): Promise<void> {
    try {
      await p;
    } catch (e) {
      expect(e, (e as Error).message).to.be.instanceOf(PluginError);
      expect((e as PluginError).code, (e as Error).message).to.equal(code);
      expect((e as PluginError).message).to.contain(text);
      return;
    }
    throw new Error(`expected a plugin error ${code}`);
  }

  describe("DEL", () => {
    it("succeeds twice in a row", async () => {
      const { rt } = await pod();
      const list = cni.chain("1.0.0");
      await cni.runtime.addNetworkList(list, rt);
      await cni.runtime.delNetworkList(list, rt);
      await cni.runtime.delNetworkList(list, rt);
      expect(ids()).to.not.include(rt.containerId);
    });

    it("succeeds with an empty CNI_NETNS after the netns is gone, and removes the pod's state", async () => {
      const p = await pod();
      const list = cni.chain("1.0.0");
      await cni.runtime.addNetworkList(list, p.rt);
      await runChecked("ip", ["netns", "del", p.sandbox.name]);
      await cni.runtime.delNetworkList(list, { ...p.rt, netns: "" });
      expect(ids()).to.not.include(p.rt.containerId);
    });

    it("succeeds when CNI_NETNS names a netns that vanished", async () => {
      const p = await pod();
      const list = cni.chain("0.3.1");
      await cni.runtime.addNetworkList(list, p.rt);
      await runChecked("ip", ["netns", "del", p.sandbox.name]);
      await cni.runtime.delNetworkList(list, p.rt);
      expect(ids()).to.not.include(p.rt.containerId);
    });

    it("cleans up after an ADD that failed at waggle (the runtime then DELs the whole list)", async () => {
      const before = snapshotLeaks(leakOpts());
      const { rt } = await pod({
        ...MESHED_ANNOTATIONS,
        "traffic.sidecar.istio.io/excludeInboundPorts": "ssh",
      });
      const list = cni.chain("1.0.0");
      await expectPluginError(cni.runtime.addNetworkList(list, rt), 101, "excludeInboundPorts");
      await cni.runtime.delNetworkList(list, rt);
      expect(ids()).to.not.include(rt.containerId);
      await live.pop()?.sandbox.destroy();
      assertNoLeaks(before, leakOpts());
    });

    it("cleans up a half-done attachment (some links never made)", async () => {
      const { rt } = await pod();
      const list = cni.chain("1.0.0");
      await cni.runtime.addNetworkList(list, rt);
      for (const p of CGROUP_PROGRAMS.slice(0, 4))
        unlinkSync(paths.podLink(cni.bpf.path, rt.containerId, p.name));
      await cni.runtime.delNetworkList(list, rt);
      expect(ids()).to.not.include(rt.containerId);
    });

    it("cleans up a leftover pod directory with no record", async () => {
      const { rt } = await pod();
      const list = cni.chain("1.0.0");
      await cni.runtime.addNetworkList(list, rt);
      rmSync(paths.podRecord(cni.bpf.path, rt.containerId));
      await cni.runtime.delNetworkList({ ...list, plugins: list.plugins.slice(2) }, rt);
      expect(ids()).to.not.include(rt.containerId);
      await cni.runtime.delNetworkList(list, rt);
    });

    it("succeeds for a container it never saw", async () => {
      const { rt } = await pod();
      await cni.runtime.delNetworkList(cni.chain("1.0.0"), rt);
      await cni.runtime.delNetworkList(cni.chain("0.3.1"), { ...rt, netns: "" });
    });
  });

  describe("CHECK", () => {
    async function attached(): Promise<CniPod> {
      const p = await pod();
      await cni.runtime.addNetworkList(cni.chain("1.0.0"), p.rt);
      await cni.runtime.checkNetworkList(cni.chain("1.0.0"), p.rt);
      return p;
    }

    it("fails with code 105 when a cgroup link is gone", async () => {
      const { rt } = await attached();
      unlinkSync(paths.podLink(cni.bpf.path, rt.containerId, "waggle_connect4"));
      await expectPluginError(
        cni.runtime.checkNetworkList(cni.chain("1.0.0"), rt),
        105,
        "link waggle_connect4 is missing",
      );
      await cni.runtime.delNetworkList(cni.chain("1.0.0"), rt);
    });

    it("fails with code 105 when the pod's policy map entry is gone", async () => {
      const { rt } = await attached();
      const [record] = listPods(cni.bpf.opts).filter((r) => r.containerId === rt.containerId);
      const policy = BpfMap.openPinned(paths.map(cni.bpf.path, MAP_NAMES.policy));
      try {
        expect(policy.delete(netnsKey(BigInt(record.netnsCookie)))).to.equal(true);
      } finally {
        policy.close();
      }
      await expectPluginError(
        cni.runtime.checkNetworkList(cni.chain("1.0.0"), rt),
        105,
        "policy entry is missing",
      );
      await cni.runtime.delNetworkList(cni.chain("1.0.0"), rt);
    });

    it("fails with code 105 when the inbound capture link (netns) is gone", async () => {
      const { rt } = await attached();
      unpin(paths.podLink(cni.bpf.path, rt.containerId, NETNS_PROGRAM.name));
      await expectPluginError(
        cni.runtime.checkNetworkList(cni.chain("1.0.0"), rt),
        105,
        `link ${NETNS_PROGRAM.name} is missing`,
      );
      await cni.runtime.delNetworkList(cni.chain("1.0.0"), rt);
    });

    it("fails with code 105 for a meshed pod whose state is entirely gone", async () => {
      const { rt } = await attached();
      detachPod(rt.containerId, cni.bpf.opts); // e.g. someone wiped waggle's pins
      await expectPluginError(
        cni.runtime.checkNetworkList(cni.chain("1.0.0"), rt),
        105,
        `the pod is meshed but waggle has no state for container ${rt.containerId}`,
      );
      await cni.runtime.delNetworkList(cni.chain("1.0.0"), rt);
    });

    it("passes for a pod that is not meshed (nothing attached, nothing expected)", async () => {
      const { rt } = await pod({ "prometheus.io/scrape": "true" });
      await cni.runtime.addNetworkList(cni.chain("1.0.0"), rt);
      await cni.runtime.checkNetworkList(cni.chain("1.0.0"), rt);
      await cni.runtime.delNetworkList(cni.chain("1.0.0"), rt);
    });
  });

  describe("GC", () => {
    it("removes the state of attachments whose DEL never came, keeps the valid ones", async () => {
      const list = cni.chain("1.1.0");
      const [a, b, c] = [await pod(), await pod(), await pod()];
      for (const p of [a, b, c]) await cni.runtime.addNetworkList(list, p.rt);
      // the runtime lost b and c (e.g. containerd ran DEL against another file): no cache, no DEL
      for (const p of [b, c])
        unlinkSync(`${cni.runtime.opts.cacheDir}/results/${list.name}-${p.rt.containerId}-eth0`);
      await cni.runtime.gcNetworkList(list, [{ containerID: a.rt.containerId, ifname: "eth0" }]);
      expect(ids()).to.include(a.rt.containerId);
      expect(ids()).to.not.include(b.rt.containerId);
      expect(ids()).to.not.include(c.rt.containerId);
      expect(checkPod(a.rt.containerId, cni.bpf.opts)).to.deep.equal([]);
      const removed = cni
        .logLines()
        .filter((l) => l.message === "removed by GC")
        .map((l) => l.containerId);
      expect(removed).to.include.members([b.rt.containerId, c.rt.containerId]);
      await cni.runtime.delNetworkList(list, a.rt);
    });

    it("with everything valid, removes nothing", async () => {
      const list = cni.chain("1.1.0");
      const a = await pod();
      await cni.runtime.addNetworkList(list, a.rt);
      await cni.runtime.gcNetworkList(list, [{ containerID: a.rt.containerId, ifname: "eth0" }]);
      expect(checkPod(a.rt.containerId, cni.bpf.opts)).to.deep.equal([]);
      await cni.runtime.delNetworkList(list, a.rt);
    });
  });

  describe("concurrency and repetition", () => {
    it("20 ADDs in parallel on different pods all attach correctly; 20 DELs leave nothing", async () => {
      const before = snapshotLeaks(leakOpts());
      const sizes = mapSizes();
      const pods = await Promise.all(Array.from({ length: 20 }, () => pod()));
      const list = cni.chain("1.0.0");
      const results = await Promise.all(pods.map((p) => cni.runtime.addNetworkList(list, p.rt)));
      const records = listPods(cni.bpf.opts);
      for (const [i, p] of pods.entries()) {
        const record = records.find((r) => r.containerId === p.rt.containerId);
        expect(record, p.rt.containerId).to.not.equal(undefined);
        expect(record?.podIPs).to.deep.equal([results[i].ips?.[0].address.split("/")[0]]);
        expect(record?.cgroupPath).to.equal(p.sandbox.cgroupDir);
        expect(checkPod(p.rt.containerId, cni.bpf.opts), p.rt.containerId).to.deep.equal([]);
      }
      expect(new Set(records.map((r) => r.netnsCookie)).size).to.equal(records.length);
      expect(mapSizes()[MAP_NAMES.policy]).to.equal(sizes[MAP_NAMES.policy] + 20);
      await Promise.all(pods.map((p) => cni.runtime.delNetworkList(list, p.rt)));
      expect(mapSizes()).to.deep.equal(sizes);
      for (const p of live.splice(0)) await p.sandbox.destroy();
      assertNoLeaks(before, leakOpts());
    });

    it("200 ADD/DEL cycles leave no pins, links, filters or map entries", async () => {
      const before = snapshotLeaks(leakOpts());
      const sizes = mapSizes();
      const { sandbox, rt } = await pod();
      const list = cni.chain("1.0.0");
      const recent: Invocation[] = [];
      const runtime = cni.libcni({
        onInvocation: (inv) => {
          recent.push(inv);
          if (recent.length > 8) recent.shift();
        },
      });
      for (let i = 0; i < 200; i++) {
        const cycle = { ...rt, containerId: `${rt.containerId}-${i}` };
        try {
          await runtime.addNetworkList(list, cycle);
          await runtime.delNetworkList(list, cycle);
        } catch (e) {
          const links = await runChecked("ip", ["-n", sandbox.name, "-br", "link"]).catch((x) =>
            String(x),
          );
          const trail = recent.map(
            (v) =>
              `${v.type} ${v.command} ${v.env.CNI_CONTAINERID} exit ${v.exitCode} ${v.ms.toFixed(0)} ms ${JSON.stringify(v.stdout.slice(0, 160))} ${JSON.stringify(v.stderr.slice(0, 200))}`,
          );
          throw new Error(
            `cycle ${i}: ${(e as Error).message}\nlinks in the pod: ${links}\nlast plugin runs:\n${trail.join("\n")}`,
          );
        }
      }
      expect(ids()).to.deep.equal([]);
      expect(mapSizes()).to.deep.equal(sizes);
      expect((await runChecked("bpftool", ["cgroup", "show", sandbox.cgroupDir])).trim()).to.equal(
        "",
      );
      for (const p of live.splice(0)) await p.sandbox.destroy();
      assertNoLeaks(before, leakOpts());
    });
  });
});
