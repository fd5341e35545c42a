// RedirectSettings -> the datapath policy (flags, port and CIDR sets) and its byte encodings.
import { expect } from "chai";
import fc from "fast-check";
import { Address6 } from "ip-address";
import {
  addrBytes,
  bareIPs,
  bytesAddr,
  CIDR_KEY_FIXED_BITS,
  containerDirName,
  containerIdOfDir,
  decodeCidrKey,
  decodePortKey,
  decodePortSet,
  decodeRecord,
  encodeCidrKey,
  encodeIfaceKey,
  encodeListenerKey,
  encodeListenerQuery,
  encodePolicy,
  encodePortKey,
  encodePortSet,
  encodeRecord,
  expandPortRanges,
  flagNames,
  ipv6Enabled,
  isLoopbackLike,
  isLoopbackRange,
  MAP_NAMES,
  POLICY,
  podPolicy,
  policyEntries,
  portRanges,
  RECORD_VERSION,
  routeCidr,
  STRUCTS,
  sumCounters,
} from "../../datapath";
import { defaultRedirectSettings, type RedirectSettings } from "../../mesh/redirect-settings";

const NETNS = 0x1122334455667788n;

function settings(patch: (s: RedirectSettings) => void = () => {}): RedirectSettings {
  const s = defaultRedirectSettings();
  patch(s);
  return s;
}

describe("datapath policy from redirect settings", () => {
  it("defaults: capture all outbound, all inbound but 15020/15021/15090, exclude outbound 15020", () => {
    const p = podPolicy({ settings: settings(), podIPs: ["10.1.2.3/32"] });
    expect(flagNames(p.flags)).to.deep.equal(["OUT_INCLUDE_ALL", "OUT_EXCLUDE_PORTS", "IN_ALL"]);
    expect(p.ports).to.deep.equal([
      { kind: "outExclude", port: 15020 },
      { kind: "inExclude", port: 15020 },
      { kind: "inExclude", port: 15021 },
      { kind: "inExclude", port: 15090 },
    ]);
    expect(p.cidrs).to.deep.equal([]);
    expect([p.outboundPort, p.inboundPort, p.dnsPort, p.tunnelPort]).to.deep.equal([
      15001, 15006, 15053, 15008,
    ]);
    expect(p.sourceV4).to.equal("10.1.2.3");
    expect(p.sourceV6).to.equal("");
  });

  it("CIDR lists split by family, host bits cleared, duplicates dropped", () => {
    const p = podPolicy({
      settings: settings((s) => {
        s.outbound.includeIPRanges = ["10.1.2.3/8", "10.0.0.0/8", "fd00::5/64"];
        s.outbound.excludeIPRanges = ["192.168.0.0/16"];
      }),
      podIPs: ["10.1.2.3"],
    });
    expect(p.cidrs.map((c) => `${c.kind} ${c.cidr.network}/${c.cidr.prefixLength}`)).to.deep.equal([
      "outInclude4 10.0.0.0/8",
      "outInclude6 fd00::/64",
      "outExclude4 192.168.0.0/16",
    ]);
    expect(p.flags & POLICY.OUT_INCLUDE_ALL).to.equal(0);
    expect(p.flags & POLICY.OUT_INCLUDE_CIDRS).to.not.equal(0);
    expect(p.flags & POLICY.NO_LOCAL_RULE).to.equal(0);
  });

  it("O4 is skipped when an include range's address is a loopback address (IPv4 or ::1)", () => {
    const skipsO4 = (range: string) =>
      (podPolicy({
        settings: settings((s) => {
          s.outbound.includeIPRanges = [range];
        }),
        podIPs: ["10.1.2.3"],
      }).flags &
        POLICY.NO_LOCAL_RULE) !==
      0;
    for (const range of ["127.0.0.0/8", "127.0.0.5/32", "127.1.0.0/4", "::1/128"]) {
      expect(skipsO4(range), range).to.equal(true);
    }
    // a catch-all merely contains loopback: istio-iptables keeps O4 (HasLoopBackIP is false)
    for (const range of ["0.0.0.0/0", "::/0", "96.0.0.0/3", "10.0.0.0/8"]) {
      expect(skipsO4(range), range).to.equal(false);
    }
  });

  it("inbound: '*' uses the excludes, a list uses only itself, [] captures nothing", () => {
    const all = podPolicy({ settings: settings(), podIPs: ["10.1.2.3"] });
    expect(all.flags & (POLICY.IN_ALL | POLICY.IN_LIST)).to.equal(POLICY.IN_ALL);
    const list = podPolicy({
      settings: settings((s) => {
        s.inbound.includePorts = [8080, 9090];
      }),
      podIPs: ["10.1.2.3"],
    });
    expect(list.flags & (POLICY.IN_ALL | POLICY.IN_LIST)).to.equal(POLICY.IN_LIST);
    expect(list.ports.filter((p) => p.kind.startsWith("in"))).to.deep.equal([
      { kind: "inInclude", port: 8080 },
      { kind: "inInclude", port: 9090 },
    ]);
    const none = podPolicy({
      settings: settings((s) => {
        s.inbound.includePorts = [];
      }),
      podIPs: ["10.1.2.3"],
    });
    expect(none.flags & (POLICY.IN_ALL | POLICY.IN_LIST)).to.equal(0);
  });

  it("IPv6 is captured when the pod has IPv6 and dual stack is on or it has no IPv4", () => {
    const on = settings((s) => {
      s.dualStack = true;
    });
    expect(ipv6Enabled(on, ["10.1.2.3", "fd00::3"])).to.equal(true);
    expect(ipv6Enabled(settings(), ["10.1.2.3", "fd00::3"])).to.equal(false);
    expect(ipv6Enabled(settings(), ["fd00::3"])).to.equal(true);
    expect(ipv6Enabled(on, ["10.1.2.3"])).to.equal(false);
    const dns = podPolicy({
      settings: settings((s) => {
        s.dnsCapture = true;
        s.dualStack = true;
      }),
      podIPs: ["10.1.2.3", "fd00::3"],
    });
    expect(flagNames(dns.flags)).to.include.members(["IPV6", "DNS", "DNS_IPV6"]);
  });

  it("X1 inbound: every interface is captured but lo and excludeInterfaces", () => {
    const interfaces = [
      { ifname: "lo", ifindex: 1 },
      { ifname: "eth0", ifindex: 3 },
      { ifname: "net1", ifindex: 70000 },
      { ifname: "net2", ifindex: 9 },
    ];
    const all = podPolicy({ settings: settings(), podIPs: ["10.1.2.3"], interfaces });
    expect(all.inboundIfindexes).to.deep.equal([3, 70000, 9]);
    const excluded = podPolicy({
      settings: settings((s) => {
        s.excludeInterfaces = ["net1", "absent"];
      }),
      podIPs: ["10.1.2.3"],
      interfaces,
    });
    expect(excluded.inboundIfindexes).to.deep.equal([3, 9]);
    expect(
      policyEntries(NETNS, excluded)
        .filter((e) => e.map === MAP_NAMES.ifaces)
        .map((e) => e.key.toString("hex")),
    ).to.deep.equal(
      [encodeIfaceKey(NETNS, 3), encodeIfaceKey(NETNS, 9)].map((k) => k.toString("hex")),
    );
  });

  it("local addresses: CNI IPs plus interface addresses, never loopback-like ones", () => {
    const p = podPolicy({
      settings: settings(),
      podIPs: ["10.1.2.3/24", "fd00:0:0::3"],
      localAddresses: ["10.200.0.2", "127.0.0.6", "::6", "fe80::1", "10.1.2.3"],
    });
    expect(p.podIPs).to.deep.equal(["10.1.2.3", "fd00::3"]);
    expect(p.localAddresses).to.deep.equal(["10.1.2.3", "fd00::3", "10.200.0.2"]);
  });

  it("bad input is refused with the value named", () => {
    expect(() => bareIPs(["10.1.2"])).to.throw(/10\.1\.2/);
    expect(() =>
      podPolicy({
        settings: settings((s) => {
          s.outbound.excludeIPRanges = ["10.0.0.0/33"];
        }),
        podIPs: ["10.1.2.3"],
      }),
    ).to.throw(/10\.0\.0\.0\/33/);
    expect(() =>
      podPolicy({
        settings: settings((s) => {
          s.outbound.includePorts = [70000];
        }),
        podIPs: ["10.1.2.3"],
      }),
    ).to.throw(/70000/);
  });
});

describe("datapath map encodings", () => {
  it("addresses are 16 bytes, IPv4 v4-mapped, and decode back", () => {
    expect(addrBytes("10.1.2.3").toString("hex")).to.equal("00000000000000000000ffff0a010203");
    expect(addrBytes("fd00::3").toString("hex")).to.equal("fd000000000000000000000000000003");
    expect(bytesAddr(addrBytes("10.1.2.3"))).to.equal("10.1.2.3");
    expect(bytesAddr(addrBytes("fd00::3"))).to.equal("fd00::3");
  });

  it("pod_policy bytes follow the struct layout", () => {
    const p = podPolicy({
      settings: settings((s) => {
        s.proxyUid = 2000;
        s.proxyGid = 3000;
        s.dualStack = true;
      }),
      podIPs: ["10.1.2.3", "fd00::3"],
    });
    const b = encodePolicy(p);
    const L = STRUCTS.pod_policy.fields;
    expect(b.length).to.equal(STRUCTS.pod_policy.size);
    expect(b.readUInt32LE(L.flags.offset)).to.equal(p.flags);
    expect(b.readUInt32LE(L.proxy_uid.offset)).to.equal(2000);
    expect(b.readUInt32LE(L.proxy_gid.offset)).to.equal(3000);
    expect(b.readUInt16LE(L.outbound_port.offset)).to.equal(15001);
    expect(b.readUInt16LE(L.inbound_port.offset)).to.equal(15006);
    expect(b.readUInt16LE(L.dns_port.offset)).to.equal(15053);
    expect(b.readUInt16LE(L.tunnel_port.offset)).to.equal(15008);
    expect(b.subarray(L.source_v4.offset, L.source_v4.offset + 4).toString("hex")).to.equal(
      "0a010203",
    );
    expect(b.subarray(L.source_v6.offset, L.source_v6.offset + 16).toString("hex")).to.equal(
      "fd000000000000000000000000000003",
    );
  });

  it("port and CIDR keys carry the netns and kind; CIDR prefix lengths count the fixed bits", () => {
    const pk = encodePortKey(NETNS, "inExclude");
    expect(pk.length).to.equal(STRUCTS.port_key.size);
    expect(pk.toString("hex")).to.equal("88776655443322110400000000000000");
    const v4 = encodeCidrKey(
      NETNS,
      { family: 4, network: "10.0.0.0", prefixLength: 8 },
      "outExclude4",
    );
    expect(v4.readUInt32LE(0)).to.equal(CIDR_KEY_FIXED_BITS + 96 + 8);
    expect(v4.readUInt32LE(4)).to.equal(2);
    expect(v4.readBigUInt64LE(8)).to.equal(NETNS);
    expect(bytesAddr(v4.subarray(16))).to.equal("10.0.0.0");
    const v6 = encodeCidrKey(NETNS, { family: 6, network: "::", prefixLength: 0 }, "outInclude6");
    expect(v6.readUInt32LE(0)).to.equal(CIDR_KEY_FIXED_BITS);
    expect(v6.readUInt32LE(4)).to.equal(3);
  });

  it("a port set is one 8 KiB bitmap: bit p of byte p >> 3; it decodes back to its ports", () => {
    const set = encodePortSet([0, 7, 8, 15020, 65535]);
    expect(set.length).to.equal(STRUCTS.port_set.size);
    expect(set[0]).to.equal(0b1000_0001);
    expect(set[1]).to.equal(0b0000_0001);
    expect(set[15020 >> 3]).to.equal(1 << (15020 & 7));
    expect(set[8191]).to.equal(0b1000_0000);
    expect(decodePortSet(set)).to.deep.equal([0, 7, 8, 15020, 65535]);
  });

  it("port ranges: compact text for the record, expanded back exactly", () => {
    const ports = [15090, 15020, 15021, 80, 20000, 20001, 20002, 15021];
    expect(portRanges(ports)).to.equal("80,15020-15021,15090,20000-20002");
    expect(expandPortRanges("80,15020-15021,15090,20000-20002")).to.deep.equal([
      80, 15020, 15021, 15090, 20000, 20001, 20002,
    ]);
    expect(expandPortRanges("")).to.deep.equal([]);
    expect(portRanges([])).to.equal("");
  });

  it("a tenant listing 40,000 ports writes one port-set entry per kind, not 40,000 keys", () => {
    const many = Array.from({ length: 40_000 }, (_, i) => 20_000 + i);
    const entries = policyEntries(
      NETNS,
      podPolicy({
        settings: {
          ...defaultRedirectSettings(),
          outbound: { ...defaultRedirectSettings().outbound, excludePorts: many },
        },
        podIPs: ["10.1.2.3"],
      }),
    );
    const portEntries = entries.filter((e) => e.map === MAP_NAMES.ports);
    expect(portEntries.map((e) => decodePortKey(e.key).kind).sort()).to.deep.equal([
      "inExclude",
      "outExclude",
    ]);
    const outExclude = portEntries.find((e) => decodePortKey(e.key).kind === "outExclude");
    expect(decodePortSet(outExclude?.value as Buffer)).to.deep.equal(many);
  });

  it("port and CIDR keys decode back to netns, network/prefix, and kind", () => {
    for (const kind of ["outInclude", "outExclude", "inInclude", "inExclude"] as const) {
      expect(decodePortKey(encodePortKey(NETNS, kind))).to.deep.equal({ netns: NETNS, kind });
    }
    const cases = [
      [{ family: 4, network: "10.0.0.0", prefixLength: 8 }, "outExclude4"],
      [{ family: 4, network: "0.0.0.0", prefixLength: 0 }, "outInclude4"],
      [{ family: 4, network: "192.168.1.7", prefixLength: 32 }, "outInclude4"],
      [{ family: 6, network: "fd00::", prefixLength: 8 }, "outExclude6"],
      [{ family: 6, network: "::", prefixLength: 0 }, "outInclude6"],
      [{ family: 6, network: "2001:db8::1", prefixLength: 128 }, "outExclude6"],
    ] as const;
    for (const [cidr, kind] of cases) {
      expect(decodeCidrKey(encodeCidrKey(NETNS, cidr, kind))).to.deep.equal({
        netns: NETNS,
        cidr,
        kind,
      });
    }
    const bad = encodePortKey(NETNS, "inInclude");
    bad.writeUInt8(9, STRUCTS.port_key.fields.kind.offset);
    expect(() => decodePortKey(bad)).to.throw(/kind 9 is unknown/);
  });

  it("interface and listener keys and the listener query follow their struct layouts", () => {
    const iface = encodeIfaceKey(NETNS, 70000);
    expect(iface.length).to.equal(STRUCTS.iface_key.size);
    expect(iface.toString("hex")).to.equal("887766554433221170110100" + "00000000");
    expect(encodeListenerKey(NETNS, 4).toString("hex")).to.equal(
      "8877665544332211" + "02000000" + "00000000",
    );
    expect(
      encodeListenerKey(NETNS, 6).readUInt32LE(STRUCTS.listener_key.fields.family.offset),
    ).to.equal(10);
    const q = encodeListenerQuery(NETNS, "fd00::10", 15006);
    expect(q.length).to.equal(14 + STRUCTS.listener_query.size);
    const body = q.subarray(14);
    const L = STRUCTS.listener_query.fields;
    expect(body.readBigUInt64LE(L.netns.offset)).to.equal(NETNS);
    expect(bytesAddr(body.subarray(L.addr.offset, L.addr.offset + 16))).to.equal("fd00::10");
    expect(body.readUInt16LE(L.port.offset)).to.equal(15006);
    expect(
      bytesAddr(encodeListenerQuery(NETNS, "10.0.0.10", 1).subarray(14 + 8, 14 + 24)),
    ).to.equal("10.0.0.10");
  });

  it("the policy entry is written last, after every set it refers to", () => {
    const p = podPolicy({ settings: settings(), podIPs: ["10.1.2.3"] });
    const entries = policyEntries(NETNS, p);
    expect(entries.at(-1)?.map).to.equal(MAP_NAMES.policy);
    // one port set each: outbound exclude (15020), inbound exclude (15020, 15021, 15090)
    expect(entries.filter((e) => e.map === MAP_NAMES.ports)).to.have.length(2);
    expect(entries.filter((e) => e.map === MAP_NAMES.podIps)).to.have.length(1);
  });

  it("per-CPU counters are summed over CPUs", () => {
    const size = STRUCTS.pod_counters.size;
    const v = Buffer.alloc(size * 3);
    v.writeBigUInt64LE(2n, 0);
    v.writeBigUInt64LE(5n, size);
    v.writeBigUInt64LE(7n, 2 * size + STRUCTS.pod_counters.fields.errors.offset);
    const sums = sumCounters(v);
    expect(sums.outbound_redirected).to.equal(7n);
    expect(sums.errors).to.equal(7n);
    expect(sums.inbound_captured).to.equal(0n);
  });
});

describe("datapath records and names", () => {
  it("a pod record round-trips through its map value", () => {
    const rec = {
      version: RECORD_VERSION,
      containerId: "abc",
      netnsCookie: "42",
      netnsPath: "/run/netns/x",
      ifname: "eth0",
      cgroupPath: "/sys/fs/cgroup/x",
      podIPs: ["10.1.2.3"],
      localAddresses: ["10.1.2.3"],
      policy: {
        flags: [],
        proxyUid: 1337,
        proxyGid: 1337,
        ports: 0,
        cidrs: 0,
        excludedInterfaceCidrs: [],
      },
      inboundInterfaces: [{ ifname: "eth0", ifindex: 3 }],
      keys: { ports: [], cidrs: [], podIps: [], ifaces: ["887766554433221103000000000000"] },
      links: [],
      attachedAt: "2025-01-01T00:00:00.000Z",
    };
    const b = encodeRecord(rec);
    expect(b.length % 8).to.equal(0);
    expect(decodeRecord(b)).to.deep.equal(rec);
    expect(() => decodeRecord(Buffer.from([0xff, 0, 0, 0]))).to.throw(/truncated/);
  });

  it("container ids map to dot-free bpffs names and back", () => {
    for (const id of ["0123abcd", "a.b_c-d", "x_2ey"]) {
      const dir = containerDirName(id);
      expect(dir).to.not.include(".");
      expect(containerIdOfDir(dir)).to.equal(id);
    }
  });

  it("ip route destinations become CIDRs", () => {
    expect(routeCidr("default", 4)).to.equal("0.0.0.0/0");
    expect(routeCidr("default", 6)).to.equal("::/0");
    expect(routeCidr("10.0.0.5", 4)).to.equal("10.0.0.5/32");
    expect(routeCidr("fd10::/64", 6)).to.equal("fd10::/64");
  });
});

describe("datapath policy: the loopback checks, held to ip-address", () => {
  /** Addresses with the special ones often: ::1, ::6, link-local (fe80::/10) and just outside. */
  const address = fc.oneof(
    fc.ipV4(),
    fc.ipV6(),
    fc.constantFrom("::1", "::6", "0:0:0:0:0:0:0:6", "::7", "fe80::", "febf:ffff::1", "fec0::1"),
    fc
      .tuple(fc.integer({ min: 0xfe00, max: 0xfeff }), fc.integer({ min: 0, max: 0xffff }))
      .map(([first, last]) => `${first.toString(16)}::${last.toString(16)}`),
  );

  it("isLoopbackLike: 127/8, ::1, ::6 and fe80::/10, and nothing else", () => {
    fc.assert(
      fc.property(address, (ip) => {
        const a = ip.includes(":") ? new Address6(ip) : null;
        const oracle =
          a === null
            ? ip.startsWith("127.")
            : a.isLoopback() ||
              a.correctForm() === "::6" ||
              a.isInSubnet(new Address6("fe80::/10"));
        expect(isLoopbackLike(ip), ip).to.equal(oracle);
      }),
      { numRuns: 20_000 },
    );
  });

  it("isLoopbackRange: the range's address as written is loopback (127.x, ::1)", () => {
    fc.assert(
      fc.property(address, fc.integer({ min: 0, max: 32 }), (ip, prefix) => {
        const oracle = ip.includes(":") ? new Address6(ip).isLoopback() : ip.startsWith("127.");
        expect(isLoopbackRange(`${ip}/${prefix}`), ip).to.equal(oracle);
      }),
      { numRuns: 20_000 },
    );
  });
});
