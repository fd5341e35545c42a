// Finding the pod cgroup (mesh/pod-cgroup.ts) in a directory tree laid out like a cgroup2
// mount: cgroupfs paths, systemd slice names, and lookup by pod UID for both drivers.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import {
  cgroupPathToRelative,
  expandSlice,
  findPodCgroupByUid,
  PodCgroupError,
  resolvePodCgroup,
} from "../../mesh/pod-cgroup";

const UID = "5f1f4e0c-1b2a-4c3d-8e9f-0a1b2c3d4e5f";
const UID_ = UID.replace(/-/g, "_");

describe("cni pod cgroup", () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "waggle-cgroup-"));
    // cgroupfs driver: burstable and besteffort pods, one guaranteed pod directly under kubepods
    mkdirSync(join(root, "kubepods/burstable", `pod${UID}`, "c0ffee"), { recursive: true });
    mkdirSync(join(root, "kubepods/besteffort/pod11111111-2222-3333-4444-555555555555"), {
      recursive: true,
    });
    mkdirSync(join(root, "kubepods/pod99999999-0000-0000-0000-000000000000"), { recursive: true });
    // systemd driver
    mkdirSync(
      join(root, "kubepods.slice/kubepods-burstable.slice", `kubepods-burstable-pod${UID_}.slice`),
      {
        recursive: true,
      },
    );
    mkdirSync(join(root, "kubepods.slice/kubepods-pod77777777_0000_0000_0000_000000000000.slice"), {
      recursive: true,
    });
    // kind-style nesting under kubelet.slice
    mkdirSync(
      join(
        root,
        "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice",
        "kubelet-kubepods-besteffort-pod88888888_0000_0000_0000_000000000000.slice",
      ),
      { recursive: true },
    );
    // an unrelated tree the search must not enter
    mkdirSync(join(root, "system.slice/pod12121212-0000-0000-0000-000000000000"), {
      recursive: true,
    });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("expands a systemd slice name the way systemd nests it", () => {
    expect(expandSlice(`kubepods-burstable-pod${UID_}.slice`)).to.equal(
      `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`,
    );
    expect(expandSlice("kubepods.slice")).to.equal("kubepods.slice");
    expect(expandSlice("-.slice")).to.equal("");
  });

  for (const bad of ["kubepods--x.slice", "-kubepods.slice", "kubepods-.slice", "kubepods"]) {
    it(`refuses the slice name ${JSON.stringify(bad)}`, () => {
      expect(() => expandSlice(bad)).to.throw(PodCgroupError);
    });
  }

  it("reads libcontainer's slice:prefix:name form by its slice", () => {
    expect(cgroupPathToRelative("kubepods-besteffort-podx.slice:cri-containerd:abc")).to.equal(
      "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice",
    );
  });

  it("cgroupPath, cgroupfs style: /kubepods/burstable/pod<uid>", () => {
    expect(
      resolvePodCgroup({ cgroupPath: `/kubepods/burstable/pod${UID}`, cgroupRoot: root }),
    ).to.equal(join(root, "kubepods/burstable", `pod${UID}`));
  });

  it("cgroupPath, systemd slice name: kubepods-burstable-pod<uid>.slice", () => {
    expect(
      resolvePodCgroup({ cgroupPath: `kubepods-burstable-pod${UID_}.slice`, cgroupRoot: root }),
    ).to.equal(
      join(root, "kubepods.slice/kubepods-burstable.slice", `kubepods-burstable-pod${UID_}.slice`),
    );
  });

  it("cgroupPath, systemd full path", () => {
    const p = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`;
    expect(resolvePodCgroup({ cgroupPath: p, cgroupRoot: root })).to.equal(join(root, p));
  });

  it("cgroupPath wins over the UID", () => {
    const dir = resolvePodCgroup({
      cgroupPath: "/kubepods/besteffort/pod11111111-2222-3333-4444-555555555555",
      podUid: UID,
      cgroupRoot: root,
    });
    expect(dir).to.equal(join(root, "kubepods/besteffort/pod11111111-2222-3333-4444-555555555555"));
  });

  it("a cgroupPath that does not exist is an error naming it", () => {
    expect(() =>
      resolvePodCgroup({ cgroupPath: "/kubepods/burstable/podnothere", cgroupRoot: root }),
    ).to.throw(PodCgroupError, "kubepods/burstable/podnothere");
  });

  it("a cgroupPath leaving the mount is refused", () => {
    expect(() => resolvePodCgroup({ cgroupPath: "/../../etc", cgroupRoot: root })).to.throw(
      PodCgroupError,
      "leaves the cgroup2 mount",
    );
  });

  it("by UID, cgroupfs driver (burstable, besteffort, guaranteed)", () => {
    expect(resolvePodCgroup({ podUid: UID, cgroupRoot: root })).to.satisfy(
      (d: string) =>
        d === join(root, "kubepods/burstable", `pod${UID}`) || d.endsWith(`pod${UID_}.slice`),
    );
    expect(findPodCgroupByUid(root, "11111111-2222-3333-4444-555555555555")).to.equal(
      join(root, "kubepods/besteffort/pod11111111-2222-3333-4444-555555555555"),
    );
    expect(findPodCgroupByUid(root, "99999999-0000-0000-0000-000000000000")).to.equal(
      join(root, "kubepods/pod99999999-0000-0000-0000-000000000000"),
    );
  });

  it("by UID, systemd driver (guaranteed, and kind's kubelet.slice nesting)", () => {
    expect(findPodCgroupByUid(root, "77777777-0000-0000-0000-000000000000")).to.equal(
      join(root, "kubepods.slice/kubepods-pod77777777_0000_0000_0000_000000000000.slice"),
    );
    expect(findPodCgroupByUid(root, "88888888-0000-0000-0000-000000000000")).to.equal(
      join(
        root,
        "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice",
        "kubelet-kubepods-besteffort-pod88888888_0000_0000_0000_000000000000.slice",
      ),
    );
  });

  it("by UID, outside kubelet's directories nothing is found", () => {
    expect(findPodCgroupByUid(root, "12121212-0000-0000-0000-000000000000")).to.equal(undefined);
  });

  it("by UID, a UID with path characters is never searched", () => {
    expect(findPodCgroupByUid(root, "../kubepods")).to.equal(undefined);
  });

  it("an unknown UID is an error naming both names tried", () => {
    expect(() =>
      resolvePodCgroup({ podUid: "abcdef01-0000-0000-0000-000000000000", cgroupRoot: root }),
    ).to.throw(
      PodCgroupError,
      "podabcdef01-0000-0000-0000-000000000000 and *-podabcdef01_0000_0000_0000_000000000000.slice",
    );
  });

  it("neither cgroupPath nor UID is an error saying what is missing", () => {
    expect(() => resolvePodCgroup({ cgroupRoot: root })).to.throw(PodCgroupError, "no cgroupPath");
  });
});
