// attachPod's cgroup links come from one batched addon call (pinCgroupLinks). A failure in the
// middle of that batch must leave the node as it was: the links pinned before the failing one
// are undone by attachPod's rollback, the failing one left nothing, the rest were never made.
// The failure is injected by pinning a program of the wrong type under one cgroup program's name.
import { existsSync } from "node:fs";
import { expect } from "chai";
import { BpfError, cgroupQuery, Program, unpin } from "ebpf-napi";
import {
  attachedContainerIds,
  CGROUP_PROGRAMS,
  DatapathError,
  ensureSharedPrograms,
  mapEntryCounts,
  NETNS_PROGRAM,
  paths,
} from "../../datapath";
import { createPod, type Pod } from "../support/pod";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";

describe("datapath: attach rollback after a failure inside the batched cgroup links", function () {
  this.timeout(60_000);
  let root: BpfRoot;
  let pod: Pod;

  before(async () => {
    root = new BpfRoot();
    pod = await createPod({ label: "attach rollback" });
  });
  after(async () => {
    await pod?.destroy();
    root?.destroy();
  });

  it("a failure at the k-th cgroup link rolls back the links before it and leaves no trace", () => {
    ensureSharedPrograms(root.opts);
    const emptyCounts = mapEntryCounts(root.opts);
    const k = 4; // not the first, not the last: links 0..3 are made before it fails
    const victim = CGROUP_PROGRAMS[k];
    if (!victim || k >= CGROUP_PROGRAMS.length - 1) throw new Error("too few cgroup programs");
    const victimPin = paths.prog(root.path, victim.name);
    const original = Program.openPinned(victimPin);
    const wrongType = Program.openPinned(paths.prog(root.path, NETNS_PROGRAM.name));
    try {
      unpin(victimPin);
      wrongType.pin(victimPin); // an sk_lookup program: bpf_link_create refuses it (EINVAL)

      let err: unknown;
      try {
        attachTestPod(pod, root.opts, { containerId: "rollback-k" });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(DatapathError);
      expect((err as DatapathError).code).to.equal("ATTACH");
      const cause = (err as { cause?: unknown }).cause;
      expect(cause).to.be.instanceOf(BpfError);
      expect([(cause as BpfError).op, (cause as BpfError).code]).to.deep.equal([
        "bpf_link_create",
        "EINVAL",
      ]);

      for (const cp of CGROUP_PROGRAMS) {
        expect(cgroupQuery(pod.cgroupDir, cp.attachType), cp.name).to.deep.equal([]);
      }
      expect(existsSync(paths.pod(root.path, "rollback-k")), "pod directory").to.equal(false);
      expect(attachedContainerIds(root.opts)).to.deep.equal([]);
      expect(mapEntryCounts(root.opts)).to.deep.equal(emptyCounts);

      // the right program back: the same pod attaches cleanly, every link made once
      unpin(victimPin);
      original.pin(victimPin);
      attachTestPod(pod, root.opts, { containerId: "rollback-k" });
      for (const cp of CGROUP_PROGRAMS) {
        expect(cgroupQuery(pod.cgroupDir, cp.attachType), cp.name).to.have.length(1);
      }
    } finally {
      original.close();
      wrongType.close();
    }
  });
});
