// removeDatapath (what `waggle uninstall` calls): every pod detached, the shared programs and
// maps unpinned, the root gone; the pod's cgroup has no program left and its traffic is no
// longer captured.
import { existsSync } from "node:fs";
import { expect } from "chai";
import { cgroupQuery } from "ebpf-napi";
import { ensureSharedPrograms, listPods, removeDatapath } from "../../datapath";
import { createPod, type Pod } from "../support/pod";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";

describe("datapath removal (uninstall)", function () {
  this.timeout(60_000);
  let root: BpfRoot;
  const pods: Pod[] = [];

  before(async () => {
    root = new BpfRoot();
    pods.push(await createPod({ label: "rm1" }), await createPod({ label: "rm2" }));
  });
  after(async () => {
    for (const pod of pods) await pod.destroy();
    root?.destroy();
  });

  it("removes every pod's attachment, the shared pins and the root", () => {
    ensureSharedPrograms(root.opts);
    for (const pod of pods) {
      attachTestPod(pod, root.opts);
      expect(cgroupQuery(pod.cgroupDir, "cgroup_inet4_connect")).to.have.length(1);
    }
    expect(listPods(root.opts)).to.have.length(2);

    expect(removeDatapath(root.opts)).to.deep.equal({ pods: 2 });

    expect(existsSync(root.path), "bpf root left behind").to.equal(false);
    for (const pod of pods) {
      expect(cgroupQuery(pod.cgroupDir, "cgroup_inet4_connect")).to.deep.equal([]);
      expect(cgroupQuery(pod.cgroupDir, "cgroup_sock_ops")).to.deep.equal([]);
    }
    // Idempotent: a second uninstall finds nothing and succeeds.
    expect(removeDatapath(root.opts)).to.deep.equal({ pods: 0 });
  });
});
