// Kernel tests of ebpf-napi's network namespace functions (lib/netns.ts, src/netns_bpf.cc,
// src/netns_interfaces.cc): netns bpf_links (sk_lookup), their info and query, test runs
// inside a netns, and the interfaces and addresses read and changed over rtnetlink. The
// programs come from waggle's inbound object (an sk_lookup program and a tc one).
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { expect } from "chai";
import {
  ADDRESS_SCOPE,
  attachCgroup,
  attachNetns,
  BpfError,
  BpfObject,
  type Link,
  netnsCookie,
  netnsInterfaces,
  netnsLinkInfo,
  netnsQuery,
  netnsReplaceAddress,
  netnsSnapshot,
  type Program,
  testRun,
} from "ebpf-napi";
import { bpfObject } from "../../base/assets";
import { LISTENER_RESULT } from "../../datapath";
import "../support/hooks";
import { createPod, type Pod } from "../support/pod";

function expectBpfError(fn: () => unknown, code: string, op?: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, "no error thrown").to.be.instanceOf(BpfError);
  expect((err as BpfError).code).to.equal(code);
  if (op) expect((err as BpfError).message).to.match(op);
}

describe("ebpf-napi: network namespaces", function () {
  this.timeout(30_000);
  let obj: BpfObject;
  let lookup: Program;
  let tc: Program;
  let pod: Pod;
  const links: Link[] = [];

  before(async () => {
    obj = BpfObject.open(bpfObject("inbound"), { name: "inbound" });
    obj.load();
    lookup = obj.program("waggle_inbound");
    tc = obj.program("waggle_listener");
    pod = await createPod({
      label: "netns api",
      ipv6: true,
      extraInterfaces: [{ name: "net1", ipv4: { pod: "10.201.0.2/24", node: "10.201.0.1/24" } }],
    });
  });
  afterEach(() => {
    for (const l of links.splice(0)) l.close();
  });
  after(async () => {
    lookup?.close();
    tc?.close();
    obj?.close();
    await pod?.destroy();
  });

  it("attachNetns links an sk_lookup program to the netns; info, query and detach agree", () => {
    const link = attachNetns(lookup, pod.netnsPath);
    links.push(link);
    expect(link.info()).to.include({ type: "netns", progId: lookup.info().id });
    expect(netnsLinkInfo(link)).to.deep.equal({
      netnsIno: statSync(pod.netnsPath).ino,
      attachType: "sk_lookup",
    });
    expect(netnsQuery(pod.netnsPath, "sk_lookup")).to.deep.equal([lookup.info().id]);
    link.detach();
    expect(netnsQuery(pod.netnsPath)).to.deep.equal([]);
    expect(netnsLinkInfo(link).netnsIno, "a detached link names no netns").to.equal(0);
  });

  it("closing an unpinned netns link detaches it", () => {
    attachNetns(lookup, pod.netnsPath).close();
    expect(netnsQuery(pod.netnsPath)).to.deep.equal([]);
  });

  it("bad input: a program of another type, a missing netns, a cgroup attach type, a cgroup link", () => {
    expectBpfError(() => attachNetns(tc, pod.netnsPath), "EINVAL", /bpf_link_create/);
    expectBpfError(() => attachNetns(lookup, "/run/netns/no-such-netns-here"), "ENOENT");
    expectBpfError(
      () => netnsQuery(pod.netnsPath, "cgroup_inet4_connect" as "sk_lookup"),
      "EINVAL",
      /does not attach to a network namespace/,
    );
    const sockopsObj = BpfObject.open(bpfObject("origdst"), { name: "origdst" });
    try {
      sockopsObj.load();
      const sockops = sockopsObj.program("waggle_sockops");
      try {
        const cgroupLink = attachCgroup(sockops, pod.cgroupDir, "cgroup_sock_ops");
        try {
          expectBpfError(() => netnsLinkInfo(cgroupLink), "EINVAL", /cgroup link, not netns/);
        } finally {
          cgroupLink.close();
        }
      } finally {
        sockops.close();
      }
    } finally {
      sockopsObj.close();
    }
  });

  it("testRun runs a program once on the data, inside the netns when asked", () => {
    // waggle_listener refuses input shorter than an Ethernet header plus its query
    expect(testRun(tc, Buffer.alloc(20)).retval).to.equal(LISTENER_RESULT.badRun);
    const out = testRun(tc, Buffer.alloc(20, 7), { netns: pod.netnsPath });
    expect(out.retval).to.equal(LISTENER_RESULT.badRun);
    expect(out.dataOut).to.deep.equal(Buffer.alloc(20, 7));
    expectBpfError(() => testRun(tc, Buffer.alloc(20), { netns: "/run/netns/nope" }), "ENOENT");
    expectBpfError(() => testRun(tc, "x" as unknown as Buffer), "EINVAL", /must be a Buffer/);
  });

  it("trips in turn into a pod's netns and the process's own each land where asked, and a failed trip leaves the next unaffected (one kept thread makes them all)", () => {
    const own = netnsCookie("/proc/self/ns/net");
    const inPod = netnsCookie(pod.netnsPath);
    expect(inPod).to.not.equal(own);
    for (let i = 0; i < 3; i++) {
      expect(netnsCookie(pod.netnsPath), `trip ${i} into the pod`).to.equal(inPod);
      expect(netnsCookie("/proc/self/ns/net"), `trip ${i} home`).to.equal(own);
    }
    expectBpfError(() => netnsCookie("/run/netns/no-such-netns-here"), "ENOENT");
    expect(netnsCookie(pod.netnsPath), "after a failed trip").to.equal(inPod);
    // the worker is one thread, kept: more trips start no more threads
    const threads = () =>
      Number(/Threads:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1]);
    const before = threads();
    for (let i = 0; i < 20; i++) netnsCookie(pod.netnsPath);
    expect(threads()).to.equal(before);
  });

  it("after each trip, failed or not, the kept thread goes back to the process's netns: it holds no pod's netns", async () => {
    const own = readlinkSync("/proc/self/ns/net");
    /** The threads of this process in another netns than its own. */
    const away = () =>
      readdirSync("/proc/self/task").filter((tid) => {
        try {
          return readlinkSync(`/proc/self/task/${tid}/ns/net`) !== own;
        } catch {
          return false; // a thread that ended meanwhile
        }
      });
    /** Waits for the thread to go home (it does so after answering, off the caller's way). */
    const settled = async () => {
      for (let i = 0; i < 100 && away().length > 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      return away();
    };
    netnsCookie(pod.netnsPath);
    expect(await settled(), "after a trip").to.deep.equal([]);
    // a packet shorter than an Ethernet header: the kernel refuses the run inside the pod
    expectBpfError(() => testRun(tc, Buffer.alloc(1), { netns: pod.netnsPath }), "EINVAL");
    expect(await settled(), "after a trip whose work failed").to.deep.equal([]);
  });

  it("netnsInterfaces lists every interface with its index and addresses, scope included", () => {
    const ifaces = netnsInterfaces(pod.netnsPath);
    const byName = new Map(ifaces.map((i) => [i.ifname, i]));
    expect([...byName.keys()].sort()).to.deep.equal(["eth0", "lo", "net1"]);
    const lo = byName.get("lo");
    expect(lo?.ifindex).to.equal(1);
    expect(lo?.up).to.equal(true);
    expect(lo?.addresses).to.deep.include({
      family: 4,
      address: "127.0.0.1",
      prefixLength: 8,
      scope: ADDRESS_SCOPE.host,
    });
    const eth0 = byName.get("eth0");
    expect(eth0?.addresses).to.deep.include.members([
      { family: 4, address: pod.address(4), prefixLength: 32, scope: ADDRESS_SCOPE.global },
      { family: 6, address: pod.address(6), prefixLength: 128, scope: ADDRESS_SCOPE.global },
    ]);
    expect(eth0?.addresses.some((a) => a.scope === ADDRESS_SCOPE.link)).to.equal(true); // fe80::
    expect(byName.get("net1")?.addresses).to.deep.include({
      family: 4,
      address: "10.201.0.2",
      prefixLength: 24,
      scope: ADDRESS_SCOPE.global,
    });
    expectBpfError(() => netnsInterfaces("/run/netns/no-such-netns-here"), "ENOENT");
  });

  it("netnsSnapshot gives netnsCookie's cookie and netnsInterfaces' interfaces in one call", () => {
    const snap = netnsSnapshot(pod.netnsPath);
    expect(snap.cookie).to.equal(netnsCookie(pod.netnsPath));
    expect(snap.interfaces).to.deep.equal(netnsInterfaces(pod.netnsPath));
    expect(snap.cookie).to.not.equal(netnsCookie("/proc/self/ns/net"));
    expectBpfError(() => netnsSnapshot("/run/netns/no-such-netns-here"), "ENOENT", /open_netns/);
    expectBpfError(() => netnsSnapshot("/proc/self/ns/uts"), "EINVAL", /setns/);
    expectBpfError(() => netnsSnapshot(""), "EINVAL", /netns_snapshot/);
  });

  it("netnsReplaceAddress adds an address once (ip addr replace); bad input is refused", () => {
    const loAddresses = () =>
      netnsInterfaces(pod.netnsPath)
        .find((i) => i.ifname === "lo")
        ?.addresses.filter((a) => a.address === "::6") ?? [];
    netnsReplaceAddress(pod.netnsPath, "lo", "::6", 128);
    netnsReplaceAddress(pod.netnsPath, "lo", "::6", 128);
    expect(loAddresses()).to.deep.equal([
      { family: 6, address: "::6", prefixLength: 128, scope: ADDRESS_SCOPE.global },
    ]);
    expectBpfError(() => netnsReplaceAddress(pod.netnsPath, "lo", "not-an-ip", 32), "EINVAL");
    expectBpfError(() => netnsReplaceAddress(pod.netnsPath, "lo", "10.0.0.1", 33), "EINVAL");
    expectBpfError(() => netnsReplaceAddress(pod.netnsPath, "nosuch0", "10.9.9.9", 32), "ENODEV");
  });
});
