import { expect } from "chai";
import {
  type CheckResult,
  type DoctorFacts,
  effectiveCapabilities,
  evaluate,
  formatResults,
  probeChecks,
} from "../../app/doctor";
import {
  allKernelFeatures,
  attachTypeNeeds,
  BPF_FS_MAGIC,
  helperNeeds,
  kernelFloor,
  mapTypeNeeds,
  progTypeNeeds,
} from "../../app/prerequisites";

const SYSFS_MAGIC = 0x62656572;
// CapEff of root: every capability up to CAP_CHECKPOINT_RESTORE (40).
const ROOT_CAPS = 0x1ffffffffffn;

/** A host where everything is in place: a 6.1 kernel, glibc 2.36, every probe supported. */
function healthyHost(): DoctorFacts {
  const probes: DoctorFacts["probes"] = {};
  for (const p of probeChecks()) probes[p.id] = { value: true };
  return {
    capabilities: { value: ROOT_CAPS },
    kernelRelease: "6.1.0-18-amd64",
    cgroup2: { value: "/sys/fs/cgroup" },
    bpffs: { root: "/sys/fs/bpf", checkedPath: "/sys/fs/bpf", fsType: { value: BPF_FS_MAGIC } },
    glibc: { running: "2.36", floor: { value: { file: "ebpf_napi.node", version: "2.34" } } },
    addon: { value: { path: "/var/lib/waggle/runtime/0123abcd/ebpf_napi.node", libbpf: "v1.1" } },
    probes,
    objects: { outbound: { value: 7 }, inbound: { value: 1 } },
  };
}

function check(results: CheckResult[], id: string): CheckResult {
  const r = results.find((c) => c.id === id);
  if (!r) throw new Error(`no check ${id} in ${results.map((c) => c.id).join(", ")}`);
  return r;
}

function failedIds(results: CheckResult[]): string[] {
  return results.filter((r) => !r.ok).map((r) => r.id);
}

describe("doctor: judging the host's facts", () => {
  it("a healthy host passes every check, one per prerequisite", () => {
    const results = evaluate(healthyHost());
    expect(failedIds(results)).to.deep.equal([]);
    const ids = results.map((r) => r.id);
    expect(ids).to.include.members(["privileges", "kernel", "cgroup2", "bpffs", "glibc", "addon"]);
    for (const n of progTypeNeeds) expect(ids).to.include(`prog:${n.progType}`);
    for (const n of attachTypeNeeds) expect(ids).to.include(`attach:${n.attachType}`);
    for (const n of mapTypeNeeds) expect(ids).to.include(`map:${n.mapType}`);
    for (const n of helperNeeds) expect(ids).to.include(`helper:${n.progType}:${n.helper}`);
    expect(ids).to.include.members(["object:outbound", "object:inbound"]);
    expect(new Set(ids).size).to.equal(ids.length);
    for (const r of results) expect(r.remedy).to.equal(undefined);
  });

  it("the kernel floor is the newest feature minimum: 5.17, for the arrival interface in sk_lookup", () => {
    const floor = kernelFloor();
    expect(floor.version).to.equal("5.17");
    const newest = allKernelFeatures().filter((f) => f.since === floor.version);
    expect(floor.setBy).to.have.members([...new Set(newest.map((f) => f.name))]);
    expect(floor.setBy).to.have.members(["`ingress_ifindex` in sk_lookup programs"]);
  });

  it("an old kernel fails the kernel check with the floor in the remedy", () => {
    const facts = { ...healthyHost(), kernelRelease: "5.10.0-28-amd64" };
    const kernel = check(evaluate(facts), "kernel");
    expect(kernel.ok).to.equal(false);
    expect(kernel.found).to.equal("5.10.0-28-amd64");
    expect(kernel.what).to.contain(">= 5.17");
    expect(kernel.remedy).to.contain("5.17");
  });

  it("a kernel exactly at the floor passes; below it or unparsable fails", () => {
    const kernelOk = (release: string) =>
      check(evaluate({ ...healthyHost(), kernelRelease: release }), "kernel").ok;
    expect(kernelOk("5.17.0")).to.equal(true);
    expect(kernelOk("5.17")).to.equal(true);
    expect(kernelOk("6.18.44-fc-v657")).to.equal(true);
    expect(kernelOk("5.15.21")).to.equal(false);
    expect(kernelOk("linux")).to.equal(false);
  });

  it("no cgroup2 mount fails cgroup2 with how to get one", () => {
    const facts = { ...healthyHost(), cgroup2: { error: "cgroup v2 is not mounted" } };
    const r = check(evaluate(facts), "cgroup2");
    expect(r.ok).to.equal(false);
    expect(r.found).to.equal("cgroup v2 is not mounted");
    expect(r.remedy).to.contain("systemd.unified_cgroup_hierarchy=1");
    expect(failedIds(evaluate(facts))).to.deep.equal(["cgroup2"]);
  });

  it("bpffs not mounted at the root (sysfs underneath) fails bpffs with the mount command", () => {
    const facts = {
      ...healthyHost(),
      bpffs: { root: "/sys/fs/bpf", checkedPath: "/sys/fs/bpf", fsType: { value: SYSFS_MAGIC } },
    };
    const results = evaluate(facts);
    const r = check(results, "bpffs");
    expect(r.ok).to.equal(false);
    expect(r.found).to.contain("0x62656572").and.contain("not bpffs");
    expect(r.remedy).to.contain("mount -t bpf bpf /sys/fs/bpf");
    expect(failedIds(results)).to.deep.equal(["bpffs"]);
  });

  it("a bpf root below an existing bpffs directory passes; an unreadable one fails", () => {
    const below = {
      ...healthyHost(),
      bpffs: {
        root: "/sys/fs/bpf/waggle",
        checkedPath: "/sys/fs/bpf",
        fsType: { value: BPF_FS_MAGIC },
      },
    };
    expect(check(evaluate(below), "bpffs").ok).to.equal(true);
    const unreadable = {
      ...healthyHost(),
      bpffs: { root: "/x", checkedPath: "/x", fsType: { error: "EACCES: permission denied" } },
    };
    const r = check(evaluate(unreadable), "bpffs");
    expect(r.ok).to.equal(false);
    expect(r.found).to.contain("EACCES");
  });

  it("a glibc older than the shipped files need fails glibc, naming the file", () => {
    const facts = {
      ...healthyHost(),
      glibc: { running: "2.31", floor: { value: { file: "ebpf_napi.node", version: "2.34" } } },
    };
    const r = check(evaluate(facts), "glibc");
    expect(r.ok).to.equal(false);
    expect(r.what).to.contain("2.34").and.contain("ebpf_napi.node");
    expect(r.found).to.equal("2.31");
    expect(r.remedy).to.contain("2.34");
  });

  it("glibc: equal passes, a non-glibc libc fails, an unknown floor fails", () => {
    const at = {
      ...healthyHost(),
      glibc: { running: "2.34", floor: { value: { file: "x", version: "2.34" } } },
    };
    expect(check(evaluate(at), "glibc").ok).to.equal(true);
    const musl = {
      ...healthyHost(),
      glibc: { running: null, floor: { value: { file: "x", version: "2.34" } } },
    };
    expect(check(evaluate(musl), "glibc").found).to.equal("not a glibc system");
    expect(check(evaluate(musl), "glibc").ok).to.equal(false);
    const unknown = {
      ...healthyHost(),
      glibc: { running: "2.36", floor: { error: "objdump: not found" } },
    };
    expect(check(evaluate(unknown), "glibc").ok).to.equal(false);
    expect(check(evaluate(unknown), "glibc").found).to.contain("objdump: not found");
  });

  it("an addon that does not load fails addon and every probe, pointing at the runtime dir", () => {
    const facts: DoctorFacts = {
      ...healthyHost(),
      addon: { error: "no usable runtime directory for the eBPF addon (...)" },
      probes: {},
      objects: {},
    };
    const results = evaluate(facts);
    const addon = check(results, "addon");
    expect(addon.ok).to.equal(false);
    expect(addon.remedy).to.contain("WAGGLE_RUNTIME_DIR");
    for (const p of probeChecks()) {
      const r = check(results, p.id);
      expect(r.ok, p.id).to.equal(false);
      expect(r.found).to.contain("addon did not load");
    }
  });

  it("a helper the kernel lacks fails that helper with its kernel minimum", () => {
    const facts = healthyHost();
    facts.probes["helper:sk_lookup:sk_assign"] = { value: false };
    const results = evaluate(facts);
    const r = check(results, "helper:sk_lookup:sk_assign");
    expect(r.ok).to.equal(false);
    expect(r.found).to.equal("not supported by this kernel");
    expect(r.remedy).to.contain("5.9");
    expect(failedIds(results)).to.deep.equal(["helper:sk_lookup:sk_assign"]);
  });

  it("a program type the kernel lacks names the kernel configuration that provides it", () => {
    const facts = healthyHost();
    facts.probes["prog:cgroup_sockopt"] = { value: false };
    const r = check(evaluate(facts), "prog:cgroup_sockopt");
    expect(r.ok).to.equal(false);
    expect(r.remedy).to.contain("CONFIG_CGROUP_BPF");
  });

  it("a probe that errors (e.g. EPERM) fails with the error", () => {
    const facts = healthyHost();
    facts.probes["map:lpm_trie"] = { error: "probe: Operation not permitted (EPERM)" };
    const r = check(evaluate(facts), "map:lpm_trie");
    expect(r.ok).to.equal(false);
    expect(r.found).to.contain("EPERM");
  });

  it("a BPF object the verifier rejects fails object:<name>", () => {
    const facts = healthyHost();
    facts.objects.inbound = {
      error: "bpf_object__load: Permission denied (EACCES): invalid mem access",
    };
    const r = check(evaluate(facts), "object:inbound");
    expect(r.ok).to.equal(false);
    expect(r.found).to.contain("invalid mem access");
    expect(r.remedy).to.contain("verifier");
  });

  it("the flow control's object refused by a kernel new enough by version: doctor passes, the bypass is unavailable, naming the refusal", () => {
    const facts = { ...healthyHost(), kernelRelease: "6.12.0-1-amd64" };
    facts.objects = {
      ...facts.objects,
      bypass_recv: {
        error: "libbpf: prog 'waggle_bypass_recv': relo #3: field msg_tot_len not found",
      },
    };
    const results = evaluate(facts);
    expect(failedIds(results)).to.deep.equal([]);
    const object = check(results, "object:bypass_recv");
    expect(object.what).to.contain("optional");
    expect(object.found).to.contain("msg_tot_len");
    const bypass = check(results, "socket-bypass");
    expect(bypass.found).to.match(/^kernel 6\.12\.0 refuses the flow control's program/);
    expect(bypass.found).to.contain("msg_tot_len");
    expect(bypass.found).to.contain("bypass unavailable");
  });

  it("the flow control's object loaded: the bypass verdict is the kernel version's", () => {
    const facts = { ...healthyHost(), kernelRelease: "6.18.44-1" };
    facts.objects = { ...facts.objects, bypass_recv: { value: 1 } };
    const results = evaluate(facts);
    expect(check(results, "object:bypass_recv").ok).to.equal(true);
    expect(check(results, "socket-bypass").found).to.contain("can run the bypass, off unless");
  });

  it("a required object refused still fails doctor; only the optional one is let off", () => {
    const facts = healthyHost();
    facts.objects = {
      ...facts.objects,
      outbound: { error: "invalid mem access" },
      bypass_recv: { error: "no BTF" },
    };
    expect(failedIds(evaluate(facts))).to.deep.equal(["object:outbound"]);
  });

  it("privileges: CAP_NET_ADMIN with CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON pass; without fail", () => {
    const caps = (...bits: number[]) => bits.reduce((a, b) => a | (1n << BigInt(b)), 0n);
    const withCaps = (c: bigint) =>
      check(evaluate({ ...healthyHost(), capabilities: { value: c } }), "privileges");
    expect(withCaps(caps(12, 21)).ok).to.equal(true);
    expect(withCaps(caps(12, 38, 39)).ok).to.equal(true);
    expect(withCaps(caps(12, 39)).ok).to.equal(false);
    expect(withCaps(caps(21)).ok).to.equal(false);
    const none = withCaps(0n);
    expect(none.ok).to.equal(false);
    expect(none.remedy).to.contain("root");
  });

  it("reads CapEff from /proc/self/status text", () => {
    const status =
      "Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
    expect(effectiveCapabilities(status)).to.equal(ROOT_CAPS);
    expect(() => effectiveCapabilities("Name:\tnode\n")).to.throw(/CapEff/);
  });

  it("prints one line per check, FAIL lines with a remedy, and a summary naming the failures", () => {
    const facts = healthyHost();
    facts.bpffs = {
      root: "/sys/fs/bpf",
      checkedPath: "/sys/fs/bpf",
      fsType: { value: SYSFS_MAGIC },
    };
    facts.kernelRelease = "5.4.0";
    const results = evaluate(facts);
    const lines = formatResults(results).trimEnd().split("\n");
    expect(lines).to.have.length(results.length + 1);
    const bpffs = lines.find((l) => l.includes("bpffs mounted at /sys/fs/bpf"));
    expect(bpffs)
      .to.match(/^FAIL /)
      .and.match(/ -- remedy: .*mount -t bpf bpf \/sys\/fs\/bpf/);
    expect(lines.find((l) => l.includes("cgroup v2"))).to.match(
      /^ok {3}cgroup v2 mounted: \/sys\/fs\/cgroup$/,
    );
    expect(lines.at(-1)).to.equal(
      `waggle doctor: 2 of ${results.length} prerequisites missing: kernel, bpffs`,
    );
    expect(formatResults(evaluate(healthyHost())).trimEnd().split("\n").at(-1)).to.equal(
      `waggle doctor: all ${evaluate(healthyHost()).length} prerequisites met`,
    );
  });
});
