// The capture scenarios as data (test/support/capture-scenarios.ts) and the judging of probe
// results (test/support/capture-lab.ts), without any kernel.

import { expect } from "chai";
import {
  type CaptureMode,
  clientIdentity,
  judgeProbe,
  validateScenario,
} from "../support/capture-lab";
import {
  CAPTURE_SCENARIOS,
  type CaptureScenario,
  type ContractRow,
  DISCREPANCIES,
  type ScenarioProbe,
} from "../support/capture-scenarios";
import type { ProbeResult } from "../support/sockprobe";

const CONTRACT_ROWS: ContractRow[] = [
  "O1",
  "O2",
  "O3",
  "O4",
  "O5",
  "O6",
  "O7",
  "O8",
  "O9",
  "O10",
  "D1",
  "D2",
  "I1",
  "I2",
  "I3",
  "I4",
  "I5",
  "I6",
  "X1",
  "V",
];

const IPTABLES: CaptureMode = { name: "test", setup: async () => {}, teardown: async () => {} };
const CONTRACT_ENOENT: CaptureMode = { ...IPTABLES, untouchedOriginalDst: "ENOENT" };

function accepted(
  listener: string,
  local: string,
  originalDst: string | null,
  error: string | null = null,
): ProbeResult {
  return {
    proto: "tcp",
    to: "x",
    result: "connected",
    reply: {
      event: "accept",
      listener,
      proto: "tcp",
      local,
      peer: "10.0.0.10:40000",
      originalDst,
      originalDstError: error,
    },
  };
}

const redirected: ScenarioProbe = {
  from: "pod",
  as: "app",
  proto: "tcp",
  to: { host: "peer", port: 80 },
  expect: { lands: "pod:outbound", originalDst: { host: "peer", port: 80 } },
};
const local: ScenarioProbe = {
  from: "pod",
  as: "app",
  proto: "tcp",
  to: { host: "pod", port: 8080 },
  expect: { lands: "pod:app", originalDst: "connection-dst" },
};
const dns: ScenarioProbe = {
  from: "pod",
  as: "app",
  proto: "udp",
  to: { host: "peer", port: 53 },
  expect: { lands: "pod:dns", replyFrom: { host: "peer", port: 53 } },
};

describe("capture scenarios (data)", () => {
  it("cover every contract row in IPv4 and IPv6", () => {
    for (const row of CONTRACT_ROWS) {
      for (const family of [4, 6]) {
        expect(
          CAPTURE_SCENARIOS.some((s) => s.row === row && s.family === family),
          `${row} IPv${family}`,
        ).to.equal(true);
      }
    }
  });

  it("have unique names that start with their row and say the family", () => {
    const names = CAPTURE_SCENARIOS.map((s) => s.name);
    expect(new Set(names).size).to.equal(names.length);
    for (const s of CAPTURE_SCENARIOS) {
      expect(s.name.startsWith(`${s.row} `)).to.equal(true);
      expect(s.name.endsWith(`(IPv${s.family})`)).to.equal(true);
    }
  });

  it("are consistent with the lab's listeners and addresses", () => {
    for (const s of CAPTURE_SCENARIOS) validateScenario(s);
  });

  it("run clients as uid 0, 1000 and 1337, and as gid 1337 with another uid", () => {
    const ids = CAPTURE_SCENARIOS.flatMap((s) =>
      s.probes.map((p) => clientIdentity(p.as, s.settings)),
    );
    for (const uid of [0, 1000, 1337]) expect(ids.some((i) => i.uid === uid)).to.equal(true);
    expect(ids.some((i) => i.gid === 1337 && i.uid !== 1337)).to.equal(true);
  });

  it("mark every known discrepancy with the contract on at least one probe", () => {
    const used = new Set(CAPTURE_SCENARIOS.flatMap((s) => s.probes.map((p) => p.discrepancy)));
    for (const d of DISCREPANCIES) expect(used.has(d), d).to.equal(true);
  });

  it("validateScenario rejects a probe whose untouched listener does not bind the port", () => {
    const bad: CaptureScenario = {
      ...CAPTURE_SCENARIOS[0],
      probes: [{ ...local, to: { host: "pod", port: 7777 } }],
    };
    expect(() => validateScenario(bad)).to.throw(/pod:app does not listen on port 7777/);
    const noListener: CaptureScenario = {
      ...CAPTURE_SCENARIOS[0],
      probes: [{ ...redirected, expect: { lands: "peer2:dns", originalDst: "ENOENT" } }],
    };
    expect(() => validateScenario(noListener)).to.throw(/no tcp listener peer2:dns/);
    const v6loopbackOther: CaptureScenario = {
      ...CAPTURE_SCENARIOS[0],
      family: 6,
      probes: [{ ...local, to: { host: "loopbackOther", port: 8080 } }],
    };
    expect(() => validateScenario(v6loopbackOther)).to.throw(/loopbackOther has no IPv6 address/);
  });
});

describe("judging probe results (capture-lab)", () => {
  it("accepts a redirected connection with the right listener and original destination", () => {
    expect(
      judgeProbe(
        redirected,
        accepted("pod:outbound", "127.0.0.1:15001", "10.0.0.2:80"),
        4,
        IPTABLES,
      ),
    ).to.deep.equal([]);
  });

  it("reports the wrong listener, the wrong original destination and a failed connection", () => {
    expect(
      judgeProbe(redirected, accepted("peer:app", "10.0.0.2:80", null, "ENOENT"), 4, IPTABLES),
    ).to.deep.equal([
      "expected to land on pod:outbound, landed on peer:app (10.0.0.2:80)",
      "expected SO_ORIGINAL_DST 10.0.0.2:80, got ENOENT",
    ]);
    expect(
      judgeProbe(redirected, { proto: "tcp", to: "x", result: "refused" }, 4, IPTABLES),
    ).to.deep.equal(["expected to land on pod:outbound, got refused"]);
  });

  it("resolves addresses per family", () => {
    expect(
      judgeProbe(redirected, accepted("pod:outbound", "[::1]:15001", "[fd00::2]:80"), 6, IPTABLES),
    ).to.deep.equal([]);
  });

  it("holds untouched connections to SO_ORIGINAL_DST = their own destination, or ENOENT when the mode says so", () => {
    const own = accepted("pod:app", "10.0.0.10:8080", "10.0.0.10:8080");
    const enoent = accepted("pod:app", "10.0.0.10:8080", null, "ENOENT");
    expect(judgeProbe(local, own, 4, IPTABLES)).to.deep.equal([]);
    expect(judgeProbe(local, enoent, 4, IPTABLES)).to.deep.equal([
      "expected SO_ORIGINAL_DST 10.0.0.10:8080, got ENOENT",
    ]);
    expect(judgeProbe(local, enoent, 4, CONTRACT_ENOENT)).to.deep.equal([]);
    expect(judgeProbe(local, own, 4, CONTRACT_ENOENT)).to.deep.equal([
      "expected SO_ORIGINAL_DST ENOENT, got 10.0.0.10:8080",
    ]);
  });

  it("checks where a UDP reply came from", () => {
    const reply: ProbeResult = {
      proto: "udp",
      to: "10.0.0.2:53",
      result: "replied",
      replyFrom: "127.0.0.1:15053",
      reply: {
        event: "datagram",
        listener: "pod:dns",
        proto: "udp",
        local: "127.0.0.1:15053",
        peer: "x",
        payload: "",
      },
    };
    expect(judgeProbe(dns, reply, 4, IPTABLES)).to.deep.equal([
      "expected the reply from 10.0.0.2:53, got it from 127.0.0.1:15053",
    ]);
    expect(judgeProbe(dns, { ...reply, replyFrom: "10.0.0.2:53" }, 4, IPTABLES)).to.deep.equal([]);
    expect(
      judgeProbe(dns, { proto: "udp", to: "x", result: "timeout" }, 4, IPTABLES),
    ).to.deep.equal(["expected to land on pod:dns, got timeout"]);
  });
});
