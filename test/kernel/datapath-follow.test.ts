// refreshPod (datapath/follow.ts): an interface with an address and a route added to a
// meshed pod after its ADD (as Multus adds a secondary network after the primary chain), then
// removed. The excluded interface is a veth into a second netns holding the peer. Checked by
// real connections, the three the issue lists, against what istio-iptables decides:
// the app to a peer routed through the excluded interface is left alone; the app to the
// pod's own address on it is left alone (local); the proxy to that address goes to 15006.
import { spawn } from "node:child_process";
import { expect } from "chai";
import { BpfMap } from "ebpf-napi";
import {
  DatapathError,
  detachPod,
  encodeIfaceKey,
  ensureSharedPrograms,
  MAP_NAMES,
  type PodRecordData,
  paths,
  readRecord,
  refreshPod,
  replaceRecord,
} from "../../datapath";
import { defaultRedirectSettings } from "../../mesh/redirect-settings";
import "../support/hooks";
import { uniqueName } from "../support/names";
import { createPod, type Pod } from "../support/pod";
import { type ProbeListeners, probe, startListeners } from "../support/sockprobe";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";

const APP = { uid: 1000, gid: 1000 };
const PROXY = { uid: 1337, gid: 1337 };
const NET1_POD = "10.210.0.2";
const NET1_FAR = "10.210.0.1";
/** A destination routed through net1 (held by the far netns). */
const ROUTED = "10.211.0.5";

describe("datapath: following a pod's interfaces, addresses and routes after ADD", function () {
  this.timeout(60_000);
  let root: BpfRoot;
  let pod: Pod;
  let far: Pod;
  let rec: PodRecordData;
  const listeners: ProbeListeners[] = [];

  before(async () => {
    root = new BpfRoot();
    ensureSharedPrograms(root.opts);
    pod = await createPod({ label: "followed" });
    far = await createPod({ label: "behind net1", node: pod.node });
    await far.ip(["addr", "add", `${ROUTED}/32`, "dev", "lo"]);
    listeners.push(
      await startListeners(pod, [
        { name: "pod:outbound", proto: "tcp", addr: "0.0.0.0:15001" },
        { name: "pod:inbound", proto: "tcp", addr: "0.0.0.0:15006" },
        { name: "pod:app", proto: "tcp", addr: "0.0.0.0:8080" },
      ]),
      await startListeners(far, [{ name: "far:app", proto: "tcp", addr: "0.0.0.0:80" }]),
    );
    const settings = defaultRedirectSettings();
    settings.excludeInterfaces = ["net1"];
    rec = attachTestPod(pod, root.opts, { settings });
  });
  after(async () => {
    for (const l of listeners) await l.stop();
    if (rec) detachPod(rec.containerId, root.opts);
    await far?.destroy();
    await pod?.destroy();
    root?.destroy();
  });

  /** Where each of the three connections lands (listener name, or the client's failure). */
  async function threeCases(): Promise<Record<string, string>> {
    const land = async (to: string, as: typeof APP) => {
      const [r] = await probe(pod, [{ to, timeout: 2 }], as);
      return r.reply && "listener" in r.reply ? r.reply.listener : r.result;
    };
    return {
      appToRoutedPeer: await land(`${ROUTED}:80`, APP),
      appToOwnNet1Address: await land(`${NET1_POD}:8080`, APP),
      proxyToOwnNet1Address: await land(`${NET1_POD}:8080`, PROXY),
    };
  }

  /** A veth `ifname` in the pod whose other end is in the far netns; returns that end's name. */
  async function vethToFar(ifname: string): Promise<string> {
    const farEnd = uniqueName("v");
    await pod.ip([
      "link",
      "add",
      ifname,
      "type",
      "veth",
      "peer",
      "name",
      farEnd,
      "netns",
      far.name,
    ]);
    return farEnd;
  }

  const record = () => readRecord(root.path, rec.containerId) as PodRecordData;

  it("an excluded interface with an address and a route added after ADD: the three connections land where Istio's rules land them, and go back when it is removed", async () => {
    const atAttach = record();
    const farEnd = await vethToFar("net1");
    await far.ip(["addr", "add", `${NET1_FAR}/24`, "dev", farEnd]);
    await far.ip(["link", "set", farEnd, "up"]);
    await pod.ip(["addr", "add", `${NET1_POD}/24`, "dev", "net1"]);
    await pod.ip(["link", "set", "net1", "up"]);
    await pod.ip(["route", "add", "10.211.0.0/16", "via", NET1_FAR, "dev", "net1"]);

    // not followed yet: what waggle did before (the failures)
    expect(await threeCases()).to.deep.equal({
      appToRoutedPeer: "pod:outbound",
      appToOwnNet1Address: "pod:outbound",
      proxyToOwnNet1Address: "pod:app",
    });

    const applied = refreshPod(rec.containerId, root.opts);
    expect(applied.status).to.equal("applied");
    expect(await threeCases()).to.deep.equal({
      appToRoutedPeer: "far:app",
      appToOwnNet1Address: "pod:app",
      proxyToOwnNet1Address: "pod:inbound",
    });
    const followed = record();
    expect(followed.localAddresses).to.include(NET1_POD);
    expect(followed.policy.excludedInterfaceCidrs).to.include.members([
      "10.210.0.0/24",
      "10.211.0.0/16",
    ]);
    expect(followed.inboundInterfaces.map((i) => i.ifname)).to.not.include("net1");
    expect(refreshPod(rec.containerId, root.opts)).to.deep.equal({
      status: "applied",
      added: 0,
      removed: 0,
    });

    await pod.ip(["link", "del", "net1"]);
    expect(refreshPod(rec.containerId, root.opts).status).to.equal("applied");
    // gone: the peer and the address are no longer behind an excluded interface or local,
    // so Istio's rules capture both app connections again
    const back = await threeCases();
    expect(back.appToRoutedPeer).to.equal("pod:outbound");
    expect(back.appToOwnNet1Address).to.equal("pod:outbound");
    const after = record();
    expect(after.keys).to.deep.equal(atAttach.keys);
    expect(after.localAddresses).to.deep.equal(atAttach.localAddresses);
  });

  it("a new interface that is not excluded gets inbound capture; removed, its entry goes", async () => {
    await vethToFar("net2");
    refreshPod(rec.containerId, root.opts);
    const net2 = record().inboundInterfaces.find((i) => i.ifname === "net2");
    expect(net2, "net2 captured inbound").to.not.equal(undefined);
    const ifaces = BpfMap.openPinned(paths.map(root.path, MAP_NAMES.ifaces));
    try {
      const key = encodeIfaceKey(BigInt(rec.netnsCookie), net2?.ifindex ?? 0);
      expect(ifaces.lookup(key)).to.not.equal(null);
      await pod.ip(["link", "del", "net2"]);
      refreshPod(rec.containerId, root.opts);
      expect(ifaces.lookup(key)).to.equal(null);
      expect(record().inboundInterfaces.map((i) => i.ifname)).to.deep.equal(["eth0"]);
    } finally {
      ifaces.close();
    }
  });

  it("a record written without its settings (an earlier waggle) is skipped, unchanged", () => {
    const current = record();
    const { settings: _settings, ...old } = current;
    replaceRecord(root.path, old);
    try {
      const outcome = refreshPod(rec.containerId, root.opts);
      expect(outcome.status).to.equal("skipped");
      expect(outcome.status === "skipped" && outcome.reason).to.contain(
        "did not record its settings",
      );
      expect(record()).to.deep.equal(old);
    } finally {
      replaceRecord(root.path, current);
    }
  });

  it("more routes through the excluded interface than a pod may have: the refresh fails and changes nothing", async () => {
    const before = record();
    await vethToFar("net1");
    await pod.ip(["link", "set", "net1", "up"]);
    await pod.ipBatch(
      Array.from({ length: 257 }, (_, i) => `route add 10.230.${i >> 8}.${i & 255}/32 dev net1`),
    );
    try {
      expect(() => refreshPod(rec.containerId, root.opts)).to.throw(DatapathError, /at most 256/);
      expect(record()).to.deep.equal(before);
    } finally {
      await pod.ip(["link", "del", "net1"]);
    }
  });

  it("a refresh waits while another process holds the pod's lock (a DEL, an ADD)", async () => {
    const addon = require.resolve("ebpf-napi");
    const dir = paths.pod(root.path, rec.containerId);
    const holder = spawn(
      process.execPath,
      [
        "-e",
        `const r=require(${JSON.stringify(addon)}).lockPath(${JSON.stringify(dir)});console.log("held");setTimeout(r,600);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve) => holder.stdout.once("data", () => resolve()));
    const t0 = Date.now();
    expect(refreshPod(rec.containerId, root.opts).status).to.equal("applied");
    expect(Date.now() - t0).to.be.at.least(400);
    await new Promise((r) => holder.on("exit", r));
  });

  it("a pod that is not attached, or whose netns is gone, is skipped and nothing is written", async () => {
    expect(refreshPod(uniqueName("k"), root.opts)).to.deep.equal({
      status: "skipped",
      reason: "not attached",
    });
    const gone = await createPod({ label: "gone", node: pod.node });
    const goneRec = attachTestPod(gone, root.opts);
    await gone.destroy();
    const outcome = refreshPod(goneRec.containerId, root.opts);
    expect(outcome.status).to.equal("skipped");
    expect(readRecord(root.path, goneRec.containerId)).to.deep.equal(goneRec);
    detachPod(goneRec.containerId, root.opts);
  });
});
