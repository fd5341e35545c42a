// The iptables baseline: every capture scenario (one per contract row and variant, IPv4 and
// IPv6) under the rules istio-iptables writes in REDIRECT mode, applied to real pods.
// The expected outcomes in capture-scenarios.ts are what these rules do; this test keeps
// them honest, and the waggle tests are held to the same outcomes.

import { expect } from "chai";
import { defaultRedirectSettings } from "../../cni/redirect-settings";
import {
  CaptureLab,
  type CaptureMode,
  describeFailures,
  runScenario,
} from "../support/capture-lab";
import { CAPTURE_SCENARIOS, type CaptureScenario } from "../support/capture-scenarios";
import "../support/hooks";
import {
  applyIstioIptables,
  IptablesCaptureMode,
  removeIstioIptables,
  renderIstioIptables,
  saveIptables,
} from "../support/istio-iptables";
import { assertNoLeaks, snapshotLeaks } from "../support/leaks";
import { createPod, type Pod } from "../support/pod";

/** "-A CHAIN" lines per chain of an iptables-restore or iptables-save text. */
function rulesPerChain(text: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const chain = /^-A (\S+)/.exec(line)?.[1];
    if (chain) counts[chain] = (counts[chain] ?? 0) + 1;
  }
  return counts;
}

describe("kernel: capture contract under the iptables baseline", function () {
  this.timeout(60_000);
  const mode = new IptablesCaptureMode();
  let lab: CaptureLab;

  before(async () => {
    lab = await CaptureLab.create();
  });
  after(async () => {
    await lab?.destroy();
    if (mode.applyMs.length > 0) {
      const sorted = [...mode.applyMs].sort((a, b) => a - b);
      const pick = (q: number) =>
        sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1);
      console.log(
        `      iptables apply per pod (${sorted.length} pods): median ${pick(0.5)} ms, p90 ${pick(0.9)} ms, max ${pick(1)} ms`,
      );
    }
  });

  for (const scenario of CAPTURE_SCENARIOS) {
    it(scenario.name, async () => {
      const result = await runScenario(mode, scenario, lab);
      expect(result.ok, describeFailures(result)).to.equal(true);
    });
  }

  it("(runner check) a mode that captures nothing fails the O9 and D2 scenarios", async () => {
    const nothing: CaptureMode = {
      name: "no capture",
      setup: async () => {},
      teardown: async () => {},
    };
    for (const row of ["O9", "D2"]) {
      const scenario = CAPTURE_SCENARIOS.find(
        (s) => s.row === row && s.family === 4,
      ) as CaptureScenario;
      const result = await runScenario(nothing, scenario, lab);
      expect(result.ok).to.equal(false);
      expect(describeFailures(result)).to.match(
        row === "O9"
          ? /expected to land on pod:outbound, landed on peer:app/
          : /expected to land on pod:dns/,
      );
    }
  });
});

describe("kernel: applying the iptables baseline", function () {
  this.timeout(30_000);
  let pod: Pod;
  let before: ReturnType<typeof snapshotLeaks>;

  beforeEach(async () => {
    before = snapshotLeaks();
    pod = await createPod({ label: "iptables apply", ipv6: true });
  });
  afterEach(async () => {
    await pod?.destroy();
    assertNoLeaks(before);
  });

  it("installs exactly the rendered rules, IPv6 and ::6 only with dual stack", async () => {
    const settings = { ...defaultRedirectSettings(), dnsCapture: true, dualStack: true };
    const applied = await applyIstioIptables(pod, settings);
    expect(applied.applyMs).to.be.greaterThan(0);
    expect(applied.v6).to.be.a("string");
    const saved4 = await saveIptables(pod, 4);
    const saved6 = await saveIptables(pod, 6);
    expect(rulesPerChain(saved4)).to.deep.equal(rulesPerChain(applied.v4));
    expect(rulesPerChain(saved6)).to.deep.equal(rulesPerChain(applied.v6 as string));
    expect(await pod.ip(["-6", "addr", "show", "dev", "lo"])).to.include("inet6 ::6/128");

    await removeIstioIptables(pod);
    expect(rulesPerChain(await saveIptables(pod, 4))).to.deep.equal({});
    expect(rulesPerChain(await saveIptables(pod, 6))).to.deep.equal({});
    expect(await pod.ip(["-6", "addr", "show", "dev", "lo"])).to.not.include("::6/128");

    const v4only = await applyIstioIptables(pod, defaultRedirectSettings());
    expect(v4only.v6).to.equal(null);
    expect(rulesPerChain(await saveIptables(pod, 6))).to.deep.equal({});
  });

  it("refuses invalid settings before touching the pod", async () => {
    const settings = defaultRedirectSettings();
    settings.outbound.excludeIPRanges = ["10.0.0.0/33"];
    const error = await applyIstioIptables(pod, settings).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).to.match(/invalid CIDR "10\.0\.0\.0\/33"/);
    expect(rulesPerChain(await saveIptables(pod, 4))).to.deep.equal({});
  });

  it("leaves no rules behind when a restore fails (a second apply on the same pod)", async () => {
    await applyIstioIptables(pod, defaultRedirectSettings());
    const error = await applyIstioIptables(pod, defaultRedirectSettings()).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).to.match(/iptables-nft-restore.*failed/);
    expect(rulesPerChain(await saveIptables(pod, 4))).to.deep.equal({});
  });

  it("renders one ruleset per family from the same settings", () => {
    const settings = { ...defaultRedirectSettings(), dualStack: true };
    settings.outbound.excludeIPRanges = ["10.1.0.0/16", "fd01::/64"];
    const { v4, v6 } = renderIstioIptables(settings, { ipv4: "10.0.0.9", ipv6: "fd00::9" });
    expect(v4).to.include("-A ISTIO_OUTPUT -d 10.1.0.0/16 -j RETURN").and.not.include("fd01::/64");
    expect(v6).to.include("-A ISTIO_OUTPUT -d fd01::/64 -j RETURN").and.not.include("10.1.0.0/16");
  });
});
