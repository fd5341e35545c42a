// A broken node: the datapath refuses a bpf root that is not on a bpffs at once (it once looped
// on mkdir in sysfs, burning a core), and a pod can be torn down without the eBPF addon by
// unlinking its link pins: the kernel detaches the programs, and a later DEL with the addon
// removes the map entries the record still names.
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  utimesSync,
} from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { BpfMap, cgroupQuery, netnsQuery } from "ebpf-napi";
import {
  DatapathError,
  detachPod,
  ensureSharedPrograms,
  loadSharedPrograms,
  mapEntryCounts,
  paths,
  removeDatapath,
  upgradePrograms,
} from "../../datapath";
import {
  attachedContainerIds,
  hasPodState,
  leftoverStaging,
  requireBpffs,
  STALE_STAGING_MS,
  unlinkPodLinks,
} from "../../datapath/pins";
import { createPod, type Pod } from "../support/pod";
import { attachTestPod, BpfRoot } from "../support/waggle-mode";
import { waitFor } from "../unit/install-fixtures";

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

  describe("a bpf root another user could have made or changed", () => {
    let root: BpfRoot;
    beforeEach(() => {
      root = new BpfRoot();
    });
    afterEach(() => root.destroy());

    const refusals = {
      "the root owned by uid 1000 (made first on a 1777 bpffs)": (r: string) => {
        mkdirSync(r, { mode: 0o755 });
        chownSync(r, 1000, 1000);
      },
      "the root writable by others": (r: string) => {
        mkdirSync(r);
        chmodSync(r, 0o777);
      },
      "pods/ owned by uid 1000 (swapped for an empty one)": (r: string) => {
        mkdirSync(join(r, "pods"), { recursive: true, mode: 0o755 });
        chownSync(join(r, "pods"), 1000, 1000);
      },
      "datapath/ a symlink": (r: string) => {
        mkdirSync(r, { mode: 0o755 });
        symlinkSync("/sys/fs/bpf", join(r, "datapath"));
      },
    };
    for (const [what, make] of Object.entries(refusals)) {
      it(`${what}: load, DEL's and GC's reads all refuse it, naming it`, () => {
        make(root.path);
        for (const fn of [
          () => ensureSharedPrograms(root.opts),
          () => upgradePrograms(root.opts),
          () => hasPodState(root.path, "c1"),
          () => attachedContainerIds(root.path),
        ]) {
          const { err } = expectDatapathError(fn, "UNTRUSTED_ROOT");
          expect(err.message).to.contain("will not use a bpf root another user could have made");
        }
      });
    }

    it("a root that does not exist holds no state: DEL's and GC's reads succeed", () => {
      expect(hasPodState(root.path, "c1")).to.equal(false);
      expect(attachedContainerIds(root.path)).to.deep.equal([]);
    });
  });

  describe("leftovers of a killed load", () => {
    let root: BpfRoot;
    beforeEach(() => {
      root = new BpfRoot();
    });
    afterEach(() => root.destroy());

    /** A staging directory as a killed loader leaves it: a pinned map inside, `ageMs` old. */
    function leftover(dir: string, ageMs: number): void {
      mkdirSync(join(dir, "maps"), { recursive: true });
      const map = BpfMap.create({
        type: "array",
        name: "waggle_test",
        keySize: 4,
        valueSize: 4096,
        maxEntries: 256,
      });
      try {
        map.pin(join(dir, "maps", "m"));
      } finally {
        map.close();
      }
      const then = new Date(Date.now() - ageMs);
      utimesSync(dir, then, then);
    }

    it("a first load and an upgrade remove staging copies older than 2 minutes and keep younger ones", () => {
      mkdirSync(root.path, { mode: 0o755 });
      const old = join(root.path, "staging-4242-deadbeef");
      const young = join(root.path, "staging-4243-cafef00d");
      leftover(old, STALE_STAGING_MS + 1000);
      leftover(young, 1000);
      expect(leftoverStaging(root.path)).to.deep.equal([old]);

      expect(loadSharedPrograms(root.opts)).to.equal("loaded");
      expect(existsSync(old)).to.equal(false);
      expect(existsSync(young)).to.equal(true);

      const oldProgs = join(paths.datapath(root.path), "progs-new-0badf00d");
      leftover(oldProgs, STALE_STAGING_MS + 1000);
      upgradePrograms(root.opts);
      expect(existsSync(oldProgs)).to.equal(false);
      expect(existsSync(young)).to.equal(true);
    });

    it("uninstall removes every staging copy, however young, and the root", () => {
      mkdirSync(root.path, { mode: 0o755 });
      ensureSharedPrograms(root.opts);
      leftover(join(root.path, "staging-4244-0000aaaa"), 0);
      removeDatapath(root.opts);
      expect(existsSync(root.path)).to.equal(false);
    });
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

    it("unlinking a pod's link pins detaches its programs and keeps its record; DEL later removes the map entries", async () => {
      ensureSharedPrograms(root.opts);
      const empty = mapEntryCounts(root.opts);
      const { containerId } = attachTestPod(pod, root.opts);
      expect(cgroupQuery(pod.cgroupDir, "cgroup_inet4_connect")).to.have.length(1);
      expect(netnsQuery(pod.netnsPath, "sk_lookup")).to.have.length(1);

      const unlinked = unlinkPodLinks(root.path, containerId);

      expect(unlinked).to.have.length(11);
      // The kernel drops a pin's reference when it frees the inode, after an RCU grace period:
      // the links detach a moment after the unlink, not during it.
      const attachTypes = ["cgroup_inet4_connect", "cgroup_sock_ops", "cgroup_getsockopt"] as const;
      await waitFor(
        "every program detached",
        () =>
          attachTypes.every((t) => cgroupQuery(pod.cgroupDir, t).length === 0) &&
          netnsQuery(pod.netnsPath, "sk_lookup").length === 0,
        10_000,
      );
      expect(readdirSync(paths.pod(root.path, containerId))).to.deep.equal(["record"]);
      expect(hasPodState(root.path, containerId)).to.equal(true);
      expect(mapEntryCounts(root.opts)).to.not.deep.equal(empty);

      detachPod(containerId, root.opts);

      expect(hasPodState(root.path, containerId)).to.equal(false);
      expect(mapEntryCounts(root.opts)).to.deep.equal(empty);
    });
  });
});
