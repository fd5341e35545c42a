// The installer's pod follower (install/pod-follower.ts) on the real datapath and rtnetlink:
// pods are refreshed at start (changes made while the installer was down), followed on
// every interface/address/route change, found when attached later and dropped when
// detached. Measures the window between a change in the pod's netns and its map entry.
import { expect } from "chai";
import { BpfMap, netnsReplaceAddress } from "ebpf-napi";
import {
  detachPod,
  encodeIpKey,
  ensureSharedPrograms,
  MAP_NAMES,
  type PodRecordData,
  paths,
} from "../../datapath";
import { boundFollowPort as followPort } from "../../install/main";
import { PodFollower } from "../../install/pod-follower";
import "../support/hooks";
import { createPod, type Pod } from "../support/pod";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";
import { capturingLogger, waitFor } from "../unit/install-fixtures";

describe("installer: following meshed pods' interfaces after ADD", function () {
  this.timeout(120_000);
  let root: BpfRoot;
  let pod: Pod;
  let rec: PodRecordData;
  let podIps: BpfMap;
  let follower: PodFollower | undefined;

  before(async () => {
    root = new BpfRoot();
    ensureSharedPrograms(root.opts);
    pod = await createPod({ label: "followed by the installer" });
    rec = attachTestPod(pod, root.opts);
    await pod.ip(["link", "add", "net1", "type", "veth", "peer", "name", "net1p"]);
    await pod.ip(["link", "set", "net1", "up"]);
    podIps = BpfMap.openPinned(paths.map(root.path, MAP_NAMES.podIps));
  });
  afterEach(() => {
    follower?.stop();
    follower = undefined;
  });
  after(async () => {
    podIps?.close();
    if (rec) detachPod(rec.containerId, root.opts);
    await pod?.destroy();
    root?.destroy();
  });

  const hasAddress = (ip: string) => podIps.lookup(encodeIpKey(ip)) !== null;
  const start = () => {
    follower = new PodFollower({
      bpfRoot: root.path,
      port: followPort(),
      log: capturingLogger().log,
      scanMs: 200,
    });
    follower.start();
    return follower;
  };

  it("at start, a change made while the installer was down is applied", async () => {
    await pod.ip(["addr", "add", "10.220.0.2/24", "dev", "net1"]);
    expect(hasAddress("10.220.0.2"), "not followed yet").to.equal(false);
    const f = start();
    expect(f.followed()).to.include(rec.containerId);
    expect(hasAddress("10.220.0.2")).to.equal(true);
    await pod.ip(["addr", "del", "10.220.0.2/24", "dev", "net1"]);
  });

  it("an address added and removed while followed: its entry follows, and the window is short", async () => {
    const f = start();
    const addMs: number[] = [];
    const delMs: number[] = [];
    /** ms from t0 until cond holds, polling every ms (the follower runs in between). */
    const until = async (cond: () => boolean, t0: bigint) => {
      while (!cond()) {
        if (Number(process.hrtime.bigint() - t0) / 1e6 > 5000)
          throw new Error("not followed in 5 s");
        await new Promise((r) => setTimeout(r, 1));
      }
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    for (let i = 0; i < 10; i++) {
      const ip = `10.221.0.${i + 2}`;
      netnsReplaceAddress(pod.netnsPath, "net1", ip, 24); // returns once the kernel has it
      addMs.push(await until(() => hasAddress(ip), process.hrtime.bigint()));
      await pod.ip(["addr", "del", `${ip}/24`, "dev", "net1"]);
      delMs.push(await until(() => !hasAddress(ip), process.hrtime.bigint()));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(
      `      window, change -> map: add median ${median(addMs).toFixed(1)} ms max ${Math.max(...addMs).toFixed(1)} ms; ` +
        `delete (from ip's exit) median ${median(delMs).toFixed(1)} ms max ${Math.max(...delMs).toFixed(1)} ms`,
    );
    expect(Math.max(...addMs)).to.be.below(1000);
    expect(f.counts.failed).to.equal(0);
  });

  it("a pod attached later is followed; detached, it is dropped", async () => {
    const f = start();
    const late = await createPod({ label: "attached later", node: pod.node });
    try {
      const lateRec = attachTestPod(late, root.opts);
      await waitFor(
        "the late pod followed",
        () => f.followed().includes(lateRec.containerId),
        3000,
      );
      await late.ip(["link", "add", "net1", "type", "veth", "peer", "name", "net1p"]);
      await late.ip(["addr", "add", "10.222.0.2/24", "dev", "net1"]);
      await waitFor("its address followed", () => hasAddress("10.222.0.2"), 3000);
      detachPod(lateRec.containerId, root.opts);
      expect(hasAddress("10.222.0.2")).to.equal(false);
      await waitFor(
        "the detached pod dropped",
        () => !f.followed().includes(lateRec.containerId),
        3000,
      );
    } finally {
      await late.destroy();
    }
  });
});
