// Per-pod lists of realistic size: 70 ports and 70 CIDRs per family, the entry that matters
// at the END of each list, under waggle (no small fixed caps).
import { expect } from "chai";
import { defaultRedirectSettings } from "../../mesh/redirect-settings";
import { describeFailures, runScenario } from "../support/capture-lab";
import { type CaptureScenario, type Family, LAB_ADDRESSES } from "../support/capture-scenarios";
import { useWaggleLab } from "../support/waggle-mode";

const N = 70;

function scenario(family: Family): CaptureScenario {
  const s = defaultRedirectSettings();
  s.dualStack = family === 6;
  const host = (h: "peer" | "peer2") => LAB_ADDRESSES[h][family] as string;
  const filler = (i: number) =>
    family === 4 ? `192.0.${i}.0/24` : `2001:db8:${i.toString(16)}::/48`;
  const bits = family === 4 ? 32 : 128;
  s.outbound.excludeIPRanges = [
    ...Array.from({ length: N - 1 }, (_, i) => filler(i)),
    `${host("peer")}/${bits}`,
  ];
  s.outbound.includeIPRanges = [
    ...Array.from({ length: N - 1 }, (_, i) => filler(100 + i)),
    `${host("peer2")}/${bits}`,
  ];
  s.outbound.includePorts = [...Array.from({ length: N - 1 }, (_, i) => 20000 + i), 8080];
  s.inbound.excludePorts = [
    ...Array.from({ length: N - 1 }, (_, i) => 30000 + i),
    9090,
    15020,
    15021,
    15090,
  ];
  const at = (h: "peer" | "peer2" | "pod", port: number) => ({ host: h, port });
  return {
    name: `P ${N} ports and ${N} CIDRs per list, the deciding entry last (IPv${family})`,
    row: "P",
    family,
    settings: s,
    probes: [
      // O7: the last exclude CIDR wins over O8's include port
      {
        from: "pod",
        as: "app",
        proto: "tcp",
        to: at("peer", 8080),
        expect: { lands: "peer:app", originalDst: "ENOENT" },
      },
      // O8: the last include port
      {
        from: "pod",
        as: "app",
        proto: "tcp",
        to: at("peer2", 8080),
        expect: { lands: "pod:outbound", originalDst: at("peer2", 8080) },
      },
      // O9: the last include CIDR
      {
        from: "pod",
        as: "app",
        proto: "tcp",
        to: at("peer2", 80),
        expect: { lands: "pod:outbound", originalDst: at("peer2", 80) },
      },
      // I3: the last inbound exclude port
      {
        from: "peer",
        as: "app",
        proto: "tcp",
        to: at("pod", 9090),
        expect: { lands: "pod:app", originalDst: "connection-dst" },
      },
      {
        from: "peer",
        as: "app",
        proto: "tcp",
        to: at("pod", 8080),
        expect: { lands: "pod:inbound", originalDst: at("pod", 8080) },
      },
    ],
  };
}

describe("per-pod lists of realistic size under waggle", function () {
  this.timeout(60_000);
  const fx = useWaggleLab();
  for (const family of [4, 6] as const) {
    const sc = scenario(family);
    it(sc.name, async () => {
      const result = await runScenario(fx.waggle, sc, fx.lab);
      expect(result.ok, describeFailures(result)).to.equal(true);
    });
  }
});
