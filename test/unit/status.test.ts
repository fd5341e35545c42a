// `waggle status` without the kernel: the policy summary decoded from fixture records (built
// the way attachPod builds them, through podPolicy and policyEntries), the table, the detail,
// the JSON document, pod selection, and the command's errors for a root it cannot use.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { runCli } from "../../app/cli";
import {
  formatDetail,
  formatJson,
  formatStatus,
  formatTable,
  type PodStatus,
  podMatches,
  podStatus,
  policySummary,
  readFailure,
  StatusError,
  type StatusReport,
} from "../../app/status";
import { ALL_PROGRAMS, CGROUP_PROGRAMS, MAP_NAMES, NETNS_PROGRAM } from "../../datapath";
import { captureIo } from "../support/cli-io";
import { attachedPod, counters, settings } from "../support/pod-records";

const FRONTEND_ID = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708";
const BACKEND_ID = "9c1d2e3f4a5b6c7d8e9fa0b1c2d3e4f5";

const frontend = (): PodStatus =>
  podStatus({
    containerId: FRONTEND_ID,
    record: attachedPod({
      containerId: FRONTEND_ID,
      pod: { namespace: "shop", name: "frontend", uid: "0c8e-uid" },
      podIPs: ["10.250.0.3/32"],
      counters: counters({
        outbound_redirected: 2,
        local_redirected: 1,
        passthrough: 14,
        orig_dst_answered: 3,
      }),
    }),
    problems: [],
    exists: () => true,
  });

const backend = (): PodStatus =>
  podStatus({
    containerId: BACKEND_ID,
    record: attachedPod({
      containerId: BACKEND_ID,
      pod: { namespace: "shop", name: "backend" },
      podIPs: ["10.250.0.4", "fd00::4"],
      counters: null,
    }),
    problems: ["link waggle_connect4 is missing", `link ${NETNS_PROGRAM.name} is missing`],
    exists: (path) => !path.startsWith("/var/run/netns/"),
  });

function report(pods: PodStatus[], datapath?: Partial<StatusReport["datapath"]>): StatusReport {
  return {
    bpfRoot: "/sys/fs/bpf/waggle",
    datapath: { loaded: true, missing: [], mapEntries: { waggle_policy: 2 }, ...datapath },
    pods,
  };
}

describe("status: the policy summary decoded from a pod's record", () => {
  it("a default pod: every destination but port 15020 out, every port but 15020/15021/15090 in", () => {
    const p = policySummary(attachedPod({ containerId: "a1", podIPs: ["10.1.2.3"] }));
    expect(p).to.deep.equal({
      proxyUid: 1337,
      proxyGid: 1337,
      outbound: { includeCidrs: "*", excludeCidrs: [], includePorts: [], excludePorts: [15020] },
      inbound: { includePorts: "*", excludePorts: [15020, 15021, 15090] },
      excludeInterfaces: [],
      excludedInterfaceCidrs: [],
      dnsCapture: false,
      ipv6Captured: false,
      flags: ["OUT_INCLUDE_ALL", "OUT_EXCLUDE_PORTS", "IN_ALL"],
    });
  });

  it("annotations: include/exclude CIDRs and ports both ways, DNS, dual stack, excluded interface routes apart", () => {
    const s = settings((x) => {
      x.proxyUid = 2000;
      x.proxyGid = 3000;
      x.outbound.includeIPRanges = ["10.96.0.0/12", "fd00:10::/64"];
      x.outbound.excludeIPRanges = ["10.96.0.10/32", "169.254.169.254/32"];
      x.outbound.includePorts = [443, 80];
      x.outbound.excludePorts = [9999];
      x.inbound.includePorts = [8443, 8080];
      x.excludeInterfaces = ["net1"];
      x.dnsCapture = true;
      x.dualStack = true;
    });
    const p = policySummary(
      attachedPod({
        containerId: "a2",
        podIPs: ["10.1.2.3", "fd00::3"],
        settings: s,
        interfaceCidrs: ["10.200.0.0/24", "10.200.0.7/32"],
      }),
    );
    expect(p.proxyUid).to.equal(2000);
    expect(p.proxyGid).to.equal(3000);
    expect(p.outbound).to.deep.equal({
      includeCidrs: ["10.96.0.0/12", "fd00:10::/64"],
      excludeCidrs: ["10.96.0.10/32", "169.254.169.254/32"],
      includePorts: [80, 443],
      excludePorts: [9999],
    });
    expect(p.inbound).to.deep.equal({ includePorts: [8080, 8443], excludePorts: [] });
    expect(p.excludeInterfaces).to.deep.equal(["net1"]);
    expect(p.excludedInterfaceCidrs).to.deep.equal(["10.200.0.0/24", "10.200.0.7/32"]);
    expect(p.dnsCapture).to.equal(true);
    expect(p.ipv6Captured).to.equal(true);
    const detail = formatDetail(
      podStatus({
        containerId: "a2",
        record: attachedPod({
          containerId: "a2",
          podIPs: ["10.1.2.3", "fd00::3"],
          settings: s,
          interfaceCidrs: ["10.200.0.0/24"],
        }),
        problems: [],
        exists: () => true,
      }),
    );
    const policy = detail.slice(detail.indexOf("  policy") + 1, detail.indexOf("  attachments"));
    expect(policy).to.deep.equal([
      "    proxy                uid 2000, gid 3000",
      "    outbound capture     to 10.96.0.0/12, fd00:10::/64",
      "      exclude CIDRs      10.96.0.10/32, 169.254.169.254/32",
      "      include ports      80, 443",
      "      exclude ports      9999",
      "    inbound capture      ports 8080, 8443",
      "    excluded interfaces  net1 (routes excluded: 10.200.0.0/24)",
      "    DNS capture          on",
      "    IPv6                 captured",
    ]);
  });

  it("outbound and inbound capture off: empty include lists, not '*'", () => {
    const p = policySummary(
      attachedPod({
        containerId: "a3",
        podIPs: ["10.1.2.3"],
        settings: settings((x) => {
          x.outbound.includeIPRanges = [];
          x.inbound.includePorts = [];
        }),
      }),
    );
    expect(p.outbound.includeCidrs).to.deep.equal([]);
    expect(p.inbound.includePorts).to.deep.equal([]);
  });

  it("IPv6 is not captured without dual stack when the pod also has IPv4", () => {
    const p = policySummary(attachedPod({ containerId: "a4", podIPs: ["10.1.2.3", "fd00::3"] }));
    expect(p.ipv6Captured).to.equal(false);
  });

  it("a record written before excludeInterfaces was kept says so (null, shown as not recorded)", () => {
    const rec = attachedPod({ containerId: "a5", podIPs: ["10.1.2.3"] });
    delete rec.policy.excludeInterfaces;
    const status = podStatus({ containerId: "a5", record: rec, problems: [], exists: () => true });
    expect(status.policy?.excludeInterfaces).to.equal(null);
    expect(formatDetail(status).join("\n")).to.match(/excluded interfaces +\(not recorded\)/);
  });
});

describe("status: one pod from its record and facts", () => {
  it("netns and cgroup say whether they still exist; problems make it unhealthy", () => {
    const b = backend();
    expect(b.netns).to.deep.equal({
      path: "/var/run/netns/cni-9c1d2e3f",
      cookie: "4242",
      exists: false,
    });
    expect(b.cgroup).to.deep.equal({ path: "/sys/fs/cgroup/kubepods/pod-9c1d2e3f", exists: true });
    expect(b.health).to.deep.equal({
      ok: false,
      problems: ["link waggle_connect4 is missing", `link ${NETNS_PROGRAM.name} is missing`],
    });
    expect(b.counters).to.equal(null);
    expect(b.attachments?.cgroupLinks).to.have.length(CGROUP_PROGRAMS.length);
    expect(b.attachments?.netnsLinks).to.deep.equal([NETNS_PROGRAM.name]);
    expect(b.attachments?.inboundInterfaces).to.deep.equal([{ ifname: "eth0", ifindex: 3 }]);
  });

  it("a pod directory without a readable record: every field present, null, and its problem", () => {
    const s = podStatus({
      containerId: "dead1",
      record: null,
      problems: ["pod record unreadable: pod record version 1 is unknown"],
      exists: () => true,
    });
    expect(s).to.deep.equal({
      containerId: "dead1",
      pod: null,
      podIPs: [],
      localAddresses: [],
      interface: null,
      netns: null,
      cgroup: null,
      attachedAt: null,
      policy: null,
      attachments: null,
      health: { ok: false, problems: ["pod record unreadable: pod record version 1 is unknown"] },
      counters: null,
    });
    expect(formatTable([s])[1]).to.match(/^- +dead1 +- +1 problem +- +- +- +- +-$/);
  });
});

describe("status: pod selection", () => {
  const id = { containerId: FRONTEND_ID, pod: { namespace: "shop", name: "frontend" } };
  it("by container id, its start, namespace/name or name; nothing else", () => {
    for (const q of [FRONTEND_ID, "3f2a1b4c5d6e", "shop/frontend", "frontend"]) {
      expect(podMatches(q, id), q).to.equal(true);
    }
    for (const q of ["", "shop", "other/frontend", "front", "2a1b", "shop/backend"]) {
      expect(podMatches(q, id), q).to.equal(false);
    }
    expect(podMatches("frontend", { containerId: "abc", pod: null })).to.equal(false);
  });
});

describe("status: human output", () => {
  it("the table: one row per pod (pod, container, IPs, health, key counters), numbers right-aligned", () => {
    expect(formatTable([backend(), frontend()])).to.deep.equal([
      "POD            CONTAINER     IPS                 HEALTH      OUTBOUND  INBOUND  DNS  PASSTHROUGH  ERRORS",
      "shop/backend   9c1d2e3f4a5b  10.250.0.4,fd00::4  2 problems         -        -    -            -       -",
      "shop/frontend  3f2a1b4c5d6e  10.250.0.3          ok                 2        0    0           14       0",
    ]);
  });

  it("the report: datapath line, table, then each unhealthy pod's problems", () => {
    expect(formatStatus(report([backend(), frontend()]))).to.equal(
      [
        "datapath: shared programs and maps pinned under /sys/fs/bpf/waggle/datapath",
        "",
        ...formatTable([backend(), frontend()]),
        "",
        "problems:",
        "  shop/backend (9c1d2e3f4a5b): link waggle_connect4 is missing",
        `  shop/backend (9c1d2e3f4a5b): link ${NETNS_PROGRAM.name} is missing`,
        "",
      ].join("\n"),
    );
  });

  it("no pods: says so, naming the root", () => {
    const text = formatStatus(report([]));
    expect(text.split("\n")).to.deep.equal([
      "datapath: shared programs and maps pinned under /sys/fs/bpf/waggle/datapath",
      "no meshed pods under /sys/fs/bpf/waggle",
      "",
    ]);
  });

  it("shared programs not loaded, or some pins missing: says which and who loads them", () => {
    const none = formatStatus(
      report([], {
        loaded: false,
        missing: Array(ALL_PROGRAMS.length + Object.values(MAP_NAMES).length).fill("x"),
        mapEntries: null,
      }),
    );
    expect(none).to.match(
      /^datapath: shared programs NOT loaded \(nothing pinned under \/sys\/fs\/bpf\/waggle\/datapath\); `waggle install`/,
    );
    const some = formatStatus(
      report([], { loaded: false, missing: ["progs/waggle_inbound"], mapEntries: null }),
    );
    expect(some).to.include(
      "incomplete (missing under /sys/fs/bpf/waggle/datapath: progs/waggle_inbound)",
    );
  });

  it("the detail: facts, health, policy, attachments and every counter by its datapath name", () => {
    expect(formatDetail(frontend())).to.deep.equal([
      `shop/frontend (container ${FRONTEND_ID})`,
      "  pod uid      0c8e-uid",
      "  pod IPs      10.250.0.3",
      "  interface    eth0",
      "  netns        /var/run/netns/cni-3f2a1b4c (exists, cookie 4242)",
      "  cgroup       /sys/fs/cgroup/kubepods/pod-3f2a1b4c (exists)",
      "  attached at  2025-06-01T12:00:00.000Z",
      "  health       ok",
      "  policy",
      "    proxy                uid 1337, gid 1337",
      "    outbound capture     every destination",
      "      exclude CIDRs      none",
      "      include ports      all",
      "      exclude ports      15020",
      "    inbound capture      every port",
      "      exclude ports      15020, 15021, 15090",
      "    excluded interfaces  none",
      "    DNS capture          off",
      "    IPv6                 not captured",
      "  attachments",
      `    cgroup links  10: ${CGROUP_PROGRAMS.map((p) => p.name).join(", ")}`,
      `    netns link    ${NETNS_PROGRAM.name}`,
      "    inbound on    eth0 (ifindex 3)",
      "  counters",
      "    outbound_redirected             2",
      "    local_redirected                1",
      "    dns_redirected                  0",
      "    inbound_captured                0",
      "    passthrough                    14",
      "    inbound_no_listener             0",
      "    orig_dst_answered               3",
      "    errors                          0",
      "    bypass_sockets                  0",
      "    bypass_msgs                     0",
      "    bypass_bytes                    0",
      "    bypass_fallbacks                0",
      "    bypass_backpressure_fallbacks   0",
      "    bypass_backpressure_bytes       0",
    ]);
  });

  it("the detail of an unhealthy pod lists its problems and a netns that is gone", () => {
    const text = formatDetail(backend()).join("\n");
    expect(text).to.include("(GONE, cookie 4242)");
    expect(text).to.include(
      `  health       2 problems\n    - link waggle_connect4 is missing\n    - link ${NETNS_PROGRAM.name} is missing`,
    );
    expect(text).to.include("  counters\n    (no counters entry)");
  });

  it("verbose: the map entries and every pod's detail after the table, no separate problems list", () => {
    const text = formatStatus(report([frontend(), backend()]), { verbose: true });
    expect(text).to.include("map entries: waggle_policy 2\n");
    expect(text).to.include(`\n\n${formatDetail(frontend()).join("\n")}\n`);
    expect(text).to.include(`\n\n${formatDetail(backend()).join("\n")}\n`);
    expect(text).to.not.include("problems:");
  });
});

describe("status: --json", () => {
  it("a stable document: bpfRoot, datapath, pods with every field and counters as numbers", () => {
    const doc = JSON.parse(formatJson(report([frontend(), backend()])));
    expect(Object.keys(doc)).to.deep.equal(["bpfRoot", "datapath", "pods"]);
    expect(doc.datapath).to.deep.equal({
      loaded: true,
      missing: [],
      mapEntries: { waggle_policy: 2 },
    });
    expect(doc.pods).to.have.length(2);
    for (const pod of doc.pods) {
      expect(Object.keys(pod)).to.deep.equal([
        "containerId",
        "pod",
        "podIPs",
        "localAddresses",
        "interface",
        "netns",
        "cgroup",
        "attachedAt",
        "policy",
        "attachments",
        "health",
        "counters",
      ]);
    }
    expect(doc.pods[0].counters).to.deep.equal(
      counters({
        outbound_redirected: 2,
        local_redirected: 1,
        passthrough: 14,
        orig_dst_answered: 3,
      }),
    );
    expect(doc.pods[0].counters.outbound_redirected).to.be.a("number");
    expect(doc.pods[1].health.problems).to.have.length(2);
    expect(doc.pods[1].counters).to.equal(null);
    expect(JSON.parse(formatJson(report([]))).pods).to.deep.equal([]);
  });
});

describe("status: a root it cannot use (exit 1, a clear error, nothing on stdout)", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-status-test-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a root that does not exist", async () => {
    const io = captureIo();
    const root = join(dir, "missing");
    expect(await runCli(["status", "--bpf-root", root, "--json"], io)).to.equal(1);
    expect(io.stdout).to.equal("");
    expect(io.stderr).to.equal(
      `waggle status: ${root} does not exist: nothing of waggle is pinned on this node (is the waggle-node pod running? is --bpf-root the plugin's bpf_root?)\n`,
    );
  });

  it("a root that is not on a bpffs", async () => {
    const io = captureIo();
    expect(await runCli(["status", "--bpf-root", dir], io)).to.equal(1);
    expect(io.stdout).to.equal("");
    expect(io.stderr).to.match(
      new RegExp(`^waggle status: ${dir} is not on a bpffs \\(filesystem 0x[0-9a-f]+\\)`),
    );
  });
});

describe("status: pins it may not read", () => {
  it("EACCES/EPERM say that reading the pins needs root; other errors are reported as they are", () => {
    const denied = Object.assign(new Error("bpf_obj_get: Permission denied (EACCES): /r/x"), {
      code: "EACCES",
    });
    const e = readFailure("the shared maps", "/r", denied);
    expect(e).to.be.instanceOf(StatusError);
    expect(e.message).to.equal(
      "reading the shared maps under /r failed: bpf_obj_get: Permission denied (EACCES): /r/x (opening waggle's pins needs root: they are mode 0600)",
    );
    const other = Object.assign(new Error("bpf_obj_get: Invalid argument"), { code: "EINVAL" });
    expect(readFailure("the pod records", "/r", other).message).to.equal(
      "reading the pod records under /r failed: bpf_obj_get: Invalid argument",
    );
  });
});
