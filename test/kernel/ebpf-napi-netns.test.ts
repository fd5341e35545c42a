// Kernel tests of ebpf-napi's network namespace functions (lib/netns.ts,
// src/netns_interfaces.cc): the interfaces and addresses of a netns read and changed over
// rtnetlink.
import { expect } from "chai";
import { ADDRESS_SCOPE, BpfError, netnsInterfaces, netnsReplaceAddress } from "ebpf-napi";
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
  let pod: Pod;

  before(async () => {
    pod = await createPod({
      label: "netns api",
      ipv6: true,
      extraInterfaces: [{ name: "net1", ipv4: { pod: "10.201.0.2/24", node: "10.201.0.1/24" } }],
    });
  });
  after(async () => {
    await pod?.destroy();
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
