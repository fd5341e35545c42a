import { expect } from "chai";
import {
  convertLegacyMaps,
  decodeProcessIp,
  decodeSockPair,
  ipv4MappedKey,
  type MerbridgePathCheck,
  merbridgePathProblem,
  POD_CONFIG_BYTES,
  podConfigValue,
  type SockPair,
  sockhashConnections,
} from "../../bench/merbridge";
import { MODES, presetModes } from "../../bench/modes";
import { applyOverrides, estimateSeconds, fullPlan, quickPlan, setupPlan } from "../../bench/plan";
import { haproxyBenchConfig } from "../../bench/sidecars";

/** A sockhash key as Merbridge's programs write it: IPv4-mapped addresses, ports in network order. */
function key(p: SockPair): Buffer {
  const k = Buffer.alloc(36);
  ipv4MappedKey(p.src).copy(k, 0);
  ipv4MappedKey(p.dst).copy(k, 16);
  k.writeUInt16BE(p.sport, 32);
  k.writeUInt16BE(p.dport, 34);
  return k;
}

/** Both sockets of a connection. */
const both = (p: SockPair): SockPair[] => [
  p,
  { src: p.dst, sport: p.dport, dst: p.src, dport: p.sport },
];

describe("bench mode merbridge (bench/merbridge.ts, modes.ts, plan.ts, sidecars.ts; its report section: bench-bypass.test.ts)", () => {
  describe("legacy map declarations", () => {
    const header = `#pragma once
#include "helpers.h"

// a comment about the first map
struct bpf_elf_map __section("maps") first_map = {
    .type = BPF_MAP_TYPE_LRU_HASH,
    .size_key = sizeof(__u64),
    .size_value = sizeof(struct thing),
    .max_elem = 4096,
    // .pinning = PIN_GLOBAL_NS,
};

struct bpf_elf_map __section("maps") second_map = {
    .type = BPF_MAP_TYPE_SOCKHASH, .size_key = sizeof(__u32) * 4,
    .size_value = sizeof(__u32), .max_elem = 16, .flags = 1, .pinning = 2,
};

static inline int helper(void) { return 0; }
`;

    it("become BTF-defined maps in .maps with the same type, sizes, entries and flags; the rest is untouched", () => {
      const { text, maps } = convertLegacyMaps(header);
      expect(maps).to.deep.equal(["first_map", "second_map"]);
      expect(text).to.contain(
        'struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(key_size, sizeof(__u64)); __uint(value_size, sizeof(struct thing)); __uint(max_entries, 4096); } first_map __attribute__((section(".maps"), used));',
      );
      expect(text).to.contain(
        "struct { __uint(type, BPF_MAP_TYPE_SOCKHASH); __uint(key_size, sizeof(__u32) * 4); __uint(value_size, sizeof(__u32)); __uint(max_entries, 16); __uint(map_flags, 1); } second_map",
      );
      expect(text).not.to.contain('__section("maps")');
      expect(text).not.to.contain("pinning");
      // __uint is defined before the first use, once
      expect(text.indexOf("#define __uint")).to.be.below(text.indexOf("first_map"));
      expect(text.match(/#define __uint/g)).to.have.length(1);
      expect(text).to.contain('#include "helpers.h"');
      expect(text).to.contain("static inline int helper(void) { return 0; }");
    });

    it("refuse a header without them, and a field they cannot express", () => {
      expect(() => convertLegacyMaps("int x;\n")).to.throw(/no legacy map definitions/);
      expect(() =>
        convertLegacyMaps('struct bpf_elf_map __section("maps") m = { .type = 1, .colour = 2, };'),
      ).to.throw(/unknown field \.colour/);
    });
  });

  describe("map contents", () => {
    it("a pod's settings: 484 bytes, Istio's status port and excluded inbound ports in host order, all else empty", () => {
      const v = podConfigValue();
      expect(v.length).to.equal(POD_CONFIG_BYTES).and.equal(484);
      expect(v.readUInt16LE(0)).to.equal(15021);
      const excluded = [...Array(20).keys()].map((i) => v.readUInt16LE(404 + 2 * i));
      expect(excluded).to.deep.equal([
        15006,
        15001,
        15008,
        15090,
        15021,
        15020,
        15000,
        ...Array(13).fill(0),
      ]);
      // CIDR lists, included ports and excluded outbound ports: all zero (capture everything)
      expect(v.subarray(2, 404).every((b) => b === 0)).to.equal(true);
      expect(v.subarray(444).every((b) => b === 0)).to.equal(true);
      expect(() => podConfigValue(Array(21).fill(1))).to.throw(/at most 20/);
    });

    it("addresses are IPv4-mapped IPv6 keys; process_ip maps a pid to an address in network order", () => {
      expect([...ipv4MappedKey("10.250.0.4")]).to.deep.equal([
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 250, 0, 4,
      ]);
      expect(() => ipv4MappedKey("10.250.0")).to.throw(/not an IPv4 address/);
      expect(() => ipv4MappedKey("10.250.0.256")).to.throw(/not an IPv4 address/);
      const pid = Buffer.alloc(4);
      pid.writeUInt32LE(12086);
      expect(decodeProcessIp(pid, Buffer.from([10, 250, 0, 5]))).to.deep.equal({
        pid: 12086,
        ip: "10.250.0.5",
      });
    });

    it("a sockhash key reads back as the socket's own address and port, then its peer's", () => {
      const p = { src: "127.0.0.6", sport: 40000, dst: "10.250.0.5", dport: 8080 };
      expect(decodeSockPair(key(p))).to.deep.equal(p);
      expect(() => decodeSockPair(Buffer.alloc(35))).to.throw(/36 bytes/);
    });

    it("counts connections with both sockets in the sockhash, by hop; half-present ones count nowhere", () => {
      const pairs = [
        ...both({ src: "127.0.0.1", sport: 50000, dst: "127.128.0.7", dport: 15001 }),
        ...both({ src: "10.250.0.4", sport: 40001, dst: "10.250.0.5", dport: 15006 }),
        ...both({ src: "127.0.0.6", sport: 40002, dst: "10.250.0.5", dport: 8080 }),
        ...both({ src: "127.0.0.6", sport: 40003, dst: "10.250.0.5", dport: 11111 }),
        // one end only
        { src: "10.250.0.4", sport: 40009, dst: "10.250.0.5", dport: 15006 },
        // not a hop of the path
        ...both({ src: "10.250.0.4", sport: 40010, dst: "10.250.0.9", dport: 9000 }),
      ];
      expect(sockhashConnections(pairs.map((p) => decodeSockPair(key(p))))).to.deep.equal({
        "app-to-sidecar": 1,
        "sidecar-to-sidecar": 1,
        "sidecar-to-app": 2,
      });
      expect(sockhashConnections([])).to.deep.equal({
        "app-to-sidecar": 0,
        "sidecar-to-sidecar": 0,
        "sidecar-to-app": 0,
      });
    });
  });

  describe("the path check", () => {
    const pods = { client: "10.250.0.4", server: "10.250.0.5" };
    const good: MerbridgePathCheck = {
      deployment: "merbridge",
      priming: { succeeded: false, loopsRefused: 1 },
      learned: [
        { side: "client", pid: 10, ip: "10.250.0.4" },
        { side: "server", pid: 11, ip: "10.250.0.5" },
      ],
      connections: 4,
      hops: { "app-to-sidecar": 4, "sidecar-to-sidecar": 4, "sidecar-to-app": 4 },
      segments: 0,
    };

    it("passes with the sidecars' addresses learned, every hop in the sockhash and no TCP segment", () => {
      expect(merbridgePathProblem(good, pods)).to.equal(null);
      expect(merbridgePathProblem({ ...good, segments: 3 }, pods)).to.equal(null);
    });

    it("names an address not learned, or learned wrong", () => {
      const check = {
        ...good,
        learned: [
          { side: "client" as const, pid: 10, ip: null },
          { side: "server" as const, pid: 11, ip: "10.250.0.4" },
        ],
      };
      expect(merbridgePathProblem(check, pods)).to.equal(
        "Merbridge did not learn the sidecars' pod addresses: client sidecar (pid 10) has none, its pod is 10.250.0.4; server sidecar (pid 11) has 10.250.0.4, its pod is 10.250.0.5",
      );
    });

    it("names the hops whose sockets are missing, and messages that crossed TCP", () => {
      expect(
        merbridgePathProblem({ ...good, hops: { ...good.hops, "sidecar-to-app": 2 } }, pods),
      ).to.contain("sidecar-to-app 2");
      expect(merbridgePathProblem({ ...good, segments: 4 }, pods)).to.contain(
        "sent 4 TCP segments",
      );
    });
  });

  describe("modes and presets", () => {
    it("is a mode, but presets list it only when a Merbridge source is given", () => {
      expect(MODES).to.include("merbridge");
      expect(presetModes(false)).not.to.include("merbridge");
      expect(presetModes(true)).to.deep.equal([...MODES]);
      for (const p of [quickPlan(), fullPlan()]) {
        expect(p.modes).not.to.include("merbridge");
        const with_ = applyOverrides(p, { merbridge: true });
        expect(with_.modes).to.deep.equal([...MODES]);
        expect(with_.preset).to.equal(p.preset);
        expect(estimateSeconds(with_)).to.be.above(estimateSeconds(p));
      }
      // no traffic, no modes: a source given changes nothing
      expect(applyOverrides(setupPlan(), { merbridge: true }).modes).to.deep.equal([]);
    });

    it("--modes with merbridge needs a source; --modes without it leaves it out even with one", () => {
      expect(() => applyOverrides(quickPlan(), { modes: ["iptables", "merbridge"] })).to.throw(
        /--merbridge-src DIR or WAGGLE_MERBRIDGE_SRC/,
      );
      expect(
        applyOverrides(quickPlan(), { modes: ["merbridge", "iptables"], merbridge: true }).modes,
      ).to.deep.equal(["iptables", "merbridge"]);
      expect(
        applyOverrides(quickPlan(), { modes: ["iptables"], merbridge: true }).modes,
      ).to.deep.equal(["iptables"]);
    });
  });

  describe("sidecars", () => {
    it("listen as Envoy does where Merbridge depends on it: 15001 on every address, a connection to 15006 itself refused", () => {
      const envoy = haproxyBenchConfig({ kind: "intercept", envoyListeners: true }, "/s.sock");
      expect(envoy).to.contain("bind 0.0.0.0:15001 backlog 4096");
      expect(envoy).to.match(
        /frontend inbound\n {2}bind 0\.0\.0\.0:15006 backlog 4096\n {2}tcp-request connection reject if \{ dst_port 15006 \}\n/,
      );
      const plain = haproxyBenchConfig({ kind: "intercept" }, "/s.sock");
      expect(plain).to.contain("bind 127.0.0.1:15001 backlog 4096");
      expect(plain).not.to.contain("tcp-request");
    });
  });
});
