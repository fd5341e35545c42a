import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import {
  CgroupV2NotMountedError,
  cgroup2Root,
  parseCgroup2Mounts,
  unescapeMountinfoField,
} from "../../base/cgroup2";

// Real mountinfo shapes: a unified host (systemd default since 2021), a hybrid host (this
// machine), a v1-only host, and a container with a bind-mounted subtree first.
const UNIFIED = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 22 0:24 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:5 - bpf bpf rw,mode=700
`;

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 23 0:39 / /sys/fs/bpf rw,relatime - bpf bpf rw
`;

const V1_ONLY = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
`;

// A subtree bind mount listed before the full hierarchy; optional fields before "-".
const SUBTREE_FIRST = `100 90 0:40 /kubepods/pod1 /run/pod\\040cgroup rw,relatime shared:9 master:3 - cgroup2 cgroup2 rw
101 90 0:40 / /host/sys/fs/cgroup rw,relatime shared:10 - cgroup2 cgroup2 rw
`;

describe("cgroup2Root (base/cgroup2)", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-cgroup2-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function mountinfoFile(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  it("finds /sys/fs/cgroup on a unified host", () => {
    expect(cgroup2Root(mountinfoFile("unified", UNIFIED))).to.equal("/sys/fs/cgroup");
  });

  it("finds /sys/fs/cgroup/unified on a hybrid host", () => {
    expect(cgroup2Root(mountinfoFile("hybrid", HYBRID))).to.equal("/sys/fs/cgroup/unified");
  });

  it("prefers the mount showing the whole hierarchy over an earlier subtree mount", () => {
    expect(cgroup2Root(mountinfoFile("subtree", SUBTREE_FIRST))).to.equal("/host/sys/fs/cgroup");
  });

  it("falls back to a subtree mount when no mount shows the root", () => {
    const onlySubtree = SUBTREE_FIRST.split("\n")[0];
    expect(cgroup2Root(mountinfoFile("only-subtree", onlySubtree))).to.equal("/run/pod cgroup");
  });

  it("unescapes octal escapes in mount points (space, tab, newline, backslash)", () => {
    const text = "50 1 0:40 / /mnt/a\\040b\\011c\\012d\\134e rw - cgroup2 none rw\n";
    expect(cgroup2Root(mountinfoFile("escaped", text))).to.equal("/mnt/a b\tc\nd\\e");
    expect(unescapeMountinfoField("plain")).to.equal("plain");
  });

  it("throws CgroupV2NotMountedError naming the remedy on a v1-only host", () => {
    const path = mountinfoFile("v1", V1_ONLY);
    expect(() => cgroup2Root(path))
      .to.throw(
        CgroupV2NotMountedError,
        /cgroup v2 is not mounted: waggle needs the unified hierarchy/,
      )
      .with.property("code", "ECGROUP2");
  });

  it("throws on an empty mountinfo", () => {
    expect(() => cgroup2Root(mountinfoFile("empty", ""))).to.throw(CgroupV2NotMountedError);
  });

  it("propagates the read error when mountinfo does not exist", () => {
    expect(() => cgroup2Root(join(dir, "missing"))).to.throw(/ENOENT/);
  });

  it("ignores malformed lines and a cgroup2 word outside the filesystem-type field", () => {
    const text = "garbage\n1 2 3\n60 1 0:41 / /cgroup2 rw - tmpfs cgroup2 rw\n";
    expect(parseCgroup2Mounts(text)).to.deep.equal([]);
  });

  it("reads this machine's mountinfo by default and returns a real cgroup2 root", () => {
    expect(existsSync(join(cgroup2Root(), "cgroup.controllers"))).to.equal(true);
  });
});
