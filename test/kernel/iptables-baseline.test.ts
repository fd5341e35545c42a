// The iptables baseline: every capture scenario (one per contract row and variant, IPv4 and
// IPv6) under the rules istio-iptables writes in REDIRECT mode, applied to real pods.
// The expected outcomes in capture-scenarios.ts are what these rules do; this test keeps
// them honest, and the waggle tests are held to the same outcomes.

import { expect } from "chai";
import { defaultRedirectSettings } from "../../mesh/redirect-settings";
import {
  CaptureLab,
  type CaptureMode,
  describeFailures,
  runScenario,
} from "../support/capture-lab";
import { CAPTURE_SCENARIOS, type CaptureScenario } from "../support/capture-scenarios";
import "../support/hooks";
import { type HaproxySidecar, startHaproxySidecar } from "../support/haproxy";
import {
  applyIstioIptables,
  IptablesCaptureMode,
  removeIstioIptables,
  renderIstioIptables,
  saveIptables,
} from "../support/istio-iptables";
import { assertNoLeaks, snapshotLeaks } from "../support/leaks";
import { startNginx } from "../support/nginx";
import { createNode, createPod, type Node, type Pod } from "../support/pod";
import { httpGet } from "../support/sockprobe";

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

describe("kernel: HAProxy sidecars carry HTTP between pods under the iptables baseline", function () {
  this.timeout(30_000);
  let node: Node;
  const pods: Pod[] = [];

  before(async () => {
    node = await createNode({ label: "sidecar node" });
  });
  after(async () => {
    for (const pod of pods) await pod.destroy();
    await node?.destroy();
  });

  async function meshedPod(label: string): Promise<{ pod: Pod; sidecar: HaproxySidecar }> {
    const pod = await createPod({ node, label });
    pods.push(pod);
    await applyIstioIptables(pod, defaultRedirectSettings());
    return { pod, sidecar: await startHaproxySidecar(pod) };
  }

  it("app (uid 1000) -> its sidecar on 15001 -> the server's sidecar on 15006 -> nginx, from 127.0.0.6", async () => {
    const client = await meshedPod("client");
    const server = await meshedPod("server");
    const nginx = await startNginx(server.pod, { body: "hello through two sidecars\n" });
    const target = `${server.pod.ipv4}:${nginx.port}`;

    const response = await httpGet(client.pod, `http://${target}/`, { uid: 1000 });
    expect(response).to.deep.equal({
      result: "ok",
      status: 200,
      body: "hello through two sidecars\n",
    });

    // The client's sidecar accepted the app's connection on 15001 and dialled its original destination.
    const out = await client.sidecar.waitForConnection((c) => c.frontend === "outbound");
    expect(out).to.include({ accepted: target, server: target });
    expect(out.client.startsWith(`${client.pod.ipv4}:`)).to.equal(true);
    // The server's sidecar accepted that connection on 15006 and passed it to the app from 127.0.0.6.
    const inbound = await server.sidecar.waitForConnection((c) => c.frontend === "inbound");
    expect(inbound).to.include({ client: out.source, accepted: target, server: target });
    expect(inbound.source.startsWith("127.0.0.6:")).to.equal(true);
    const request = await nginx.waitForRequest((r) => r.request === "GET / HTTP/1.1");
    expect(request).to.include({ client: inbound.source, server: target, status: 200 });
    // Only these hops: nothing else went through either sidecar.
    expect(client.sidecar.connections()).to.have.length(1);
    expect(server.sidecar.connections()).to.have.length(1);
  });

  it("without capture the same request goes straight to nginx, bypassing both sidecars", async () => {
    const client = await createPod({ node, label: "plain client" });
    pods.push(client);
    const server = await meshedPod("server2");
    const nginx = await startNginx(server.pod, { port: 8081 });
    await removeIstioIptables(server.pod);
    const response = await httpGet(client, `http://${server.pod.ipv4}:8081/`, { uid: 1000 });
    expect(response.status).to.equal(200);
    const request = await nginx.waitForRequest(() => true);
    expect(request.client.startsWith(`${client.ipv4}:`)).to.equal(true);
    expect(server.sidecar.connections()).to.deep.equal([]);
  });
});
