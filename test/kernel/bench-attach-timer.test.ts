// The bench's attach worker (bench/attach-timer.ts): attachPod and detachPod run and are timed
// in a process of their own; a failed call answers with its error and the worker goes on;
// once the worker is gone (closed or killed) every call says so instead of hanging.
import { expect } from "chai";
import { cgroupQuery } from "ebpf-napi";
import { AttachTimer } from "../../bench/attach-timer";
import { detachPod, ensureSharedPrograms, listPods } from "../../datapath";
import { createPod, type Pod } from "../support/pod";
import { BpfRoot, testAttachRequest } from "../support/waggle-mode";

describe("bench attach worker", function () {
  this.timeout(60_000);
  let root: BpfRoot;
  let pod: Pod;
  let timer: AttachTimer | undefined;

  before(async () => {
    root = new BpfRoot();
    pod = await createPod({ label: "timer" });
    ensureSharedPrograms(root.opts);
  });
  afterEach(async () => {
    await timer?.close();
    timer = undefined;
  });
  after(async () => {
    await pod?.destroy();
    root?.destroy();
  });

  it("attaches and detaches a pod in its own process, timing each", async () => {
    timer = AttachTimer.start();
    const req = testAttachRequest(pod);
    const attachMs = await timer.attach(req, root.opts);
    expect(attachMs).to.be.above(0).and.below(10_000);
    expect(listPods(root.opts).map((p) => p.containerId)).to.deep.equal([req.containerId]);
    expect(cgroupQuery(pod.cgroupDir, "cgroup_inet4_connect")).to.have.length(1);
    expect(await timer.detach(req.containerId, root.opts)).to.be.above(0);
    expect(listPods(root.opts)).to.deep.equal([]);
    expect(cgroupQuery(pod.cgroupDir, "cgroup_inet4_connect")).to.deep.equal([]);
  });

  it("a failed attach answers with its error and code, and the worker serves the next call", async () => {
    timer = AttachTimer.start();
    const bad = testAttachRequest(pod, { netnsPath: "/run/netns/no-such-netns" });
    const err = await timer.attach(bad, root.opts).then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.message).to.contain("does not exist");
    expect(err?.code).to.equal("NETNS");
    const req = testAttachRequest(pod);
    expect(await timer.attach(req, root.opts)).to.be.above(0);
    expect(await timer.detach(req.containerId, root.opts)).to.be.above(0);
  });

  it("calls after close, and calls to a worker that died, reject instead of hanging", async () => {
    timer = AttachTimer.start();
    await timer.close();
    const closed = await timer.detach("k-none", root.opts).then(
      () => null,
      (e: Error) => e,
    );
    expect(closed?.message).to.contain("the attach worker exited");

    // killed while it still loads its modules: the request it was sent is never answered
    timer = AttachTimer.start();
    const pending = timer.attach(testAttachRequest(pod), root.opts);
    process.kill(timer.pid as number, "SIGKILL");
    const killed = await pending.then(
      () => null,
      (e: Error) => e,
    );
    expect(killed?.message).to.equal("the attach worker exited (SIGKILL)");
    const after = await timer.attach(testAttachRequest(pod), root.opts).then(
      () => null,
      (e: Error) => e,
    );
    expect(after?.message).to.equal("the attach worker exited (SIGKILL)");
    for (const p of listPods(root.opts)) detachPod(p.containerId, root.opts);
  });
});
