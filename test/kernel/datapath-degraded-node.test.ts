// A broken node: the datapath refuses a bpf root that is not on a bpffs at once (it once looped
// on mkdir in sysfs, burning a core), and a pod can be torn down without the eBPF addon by
// unlinking its link pins: the kernel detaches the programs, and a later DEL with the addon
// removes the map entries the record still names.
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { cgroupQuery, netnsQuery } from "ebpf-napi";
import {
  DatapathError,
  detachPod,
  ensureSharedPrograms,
  mapEntryCounts,
  paths,
  upgradePrograms,
} from "../../datapath";
import { hasPodState, requireBpffs, unlinkPodLinks } from "../../datapath/pins";
import { createPod, type Pod } from "../support/pod";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";

/** Runs fn, expecting a DatapathError with `code`; returns it and how long fn took. */
function expectDatapathError(fn: () => unknown, code: string): { err: DatapathError; ms: number } {
  const t0 = performance.now();
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(DatapathError);
    expect((err as DatapathError).code).to.equal(code);
    return { err: err as DatapathError, ms: performance.now() - t0 };
  }
  throw new Error(`expected a DatapathError ${code}`);
}

describe("datapath on a broken node", function () {
  this.timeout(60_000);

  describe("a bpf root that is not on a bpffs", () => {
    const roots = {
      "sysfs (no bpffs mounted where one is expected)": "/sys/kernel/waggle-test-no-bpffs/waggle",
      procfs: "/proc/waggle-test/waggle",
      "a plain directory": "", // filled in before()
    };
    let plain: string;
    before(() => {
      plain = mkdtempSync(join("/var/tmp", "waggle-not-bpffs-"));
      roots["a plain directory"] = join(plain, "pins");
    });
    after(() => rmSync(plain, { recursive: true, force: true }));

    for (const what of Object.keys(roots) as (keyof typeof roots)[]) {
      it(`${what}: loading and upgrading fail at once with BPFFS, creating nothing`, () => {
        const bpfRoot = roots[what];
        for (const fn of [
          () => ensureSharedPrograms({ bpfRoot }),
          () => upgradePrograms({ bpfRoot }),
          () => requireBpffs(bpfRoot),
        ]) {
          const { err, ms } = expectDatapathError(fn, "BPFFS");
          expect(err.message).to.contain(`${bpfRoot} is not on a bpffs`);
          expect(ms).to.be.below(1000);
        }
        expect(existsSync(bpfRoot)).to.equal(false);
      });
    }
  });

  describe("teardown without the addon", () => {
    let root: BpfRoot;
    let pod: Pod;
    before(async () => {
      root = new BpfRoot();
      pod = await createPod({ label: "degr" });
    });
    after(async () => {
      await pod?.destroy();
      root?.destroy();
    });

    it("unlinking a pod's link pins detaches its programs and keeps its record; DEL later removes the map entries", () => {
      ensureSharedPrograms(root.opts);
      const empty = mapEntryCounts(root.opts);
      const { containerId } = attachTestPod(pod, root.opts);
      expect(cgroupQuery(pod.cgroupDir, "cgroup_inet4_connect")).to.have.length(1);
      expect(netnsQuery(pod.netnsPath, "sk_lookup")).to.have.length(1);

      const unlinked = unlinkPodLinks(root.path, containerId);

      expect(unlinked).to.have.length(11);
      for (const attachType of ["cgroup_inet4_connect", "cgroup_sock_ops", "cgroup_getsockopt"]) {
        expect(cgroupQuery(pod.cgroupDir, attachType as "cgroup_sock_ops")).to.deep.equal([]);
      }
      expect(netnsQuery(pod.netnsPath, "sk_lookup")).to.deep.equal([]);
      expect(readdirSync(paths.pod(root.path, containerId))).to.deep.equal(["record"]);
      expect(hasPodState(root.path, containerId)).to.equal(true);
      expect(mapEntryCounts(root.opts)).to.not.deep.equal(empty);

      detachPod(containerId, root.opts);

      expect(hasPodState(root.path, containerId)).to.equal(false);
      expect(mapEntryCounts(root.opts)).to.deep.equal(empty);
    });
  });
});
