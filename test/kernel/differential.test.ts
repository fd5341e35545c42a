// The differential test: every contract scenario under real istio-iptables rules and under
// waggle must land on the same listener with the same original destination (and the same
// reply source, the same peer as the client sees it, the same client address as the
// listener sees it). Real iptables is the arbiter.
import { expect } from "chai";
import { describeProbe, runScenario, type ScenarioResult } from "../support/capture-lab";
import { CAPTURE_SCENARIOS, type ScenarioProbe } from "../support/capture-scenarios";
import { IptablesCaptureMode } from "../support/istio-iptables";
import type { ProbeResult } from "../support/sockprobe";
import { useWaggleLab } from "../support/waggle-mode";

/** "[fd00::10]:41234" / "10.0.0.10:41234" -> the host part. */
function host(endpoint: string | undefined): string | undefined {
  if (endpoint === undefined) return undefined;
  const m = /^\[?([^\]]*)\]?:\d+$/.exec(endpoint);
  return m ? m[1] : endpoint;
}

/** What must be identical between the modes for one probe. */
function observable(r: ProbeResult) {
  const reply = r.reply ?? undefined;
  return {
    result: r.result,
    listener: reply?.listener,
    // the host only: inbound capture keeps the original port (sk_assign), REDIRECT shows 15006
    listenerHost: host(reply?.local),
    originalDst:
      reply?.event === "accept" ? (reply.originalDst ?? reply.originalDstError) : undefined,
    clientAddressSeen: host(reply?.peer),
    replyFrom: r.replyFrom,
    peerSeenByClient: r.peer,
  };
}

/**
 * Differences docs/datapath.md documents, by probe: the cgroup hooks run before routing, so a
 * redirected socket is bound to the pod's primary address, where the kernel would have picked
 * the address of the interface the route goes through (only a secondary interface differs).
 */
function documented(p: ScenarioProbe, key: string): boolean {
  return key === "clientAddressSeen" && p.to.host === "net1Node";
}

function differences(iptables: ScenarioResult, waggle: ScenarioResult): string[] {
  const out: string[] = [];
  iptables.outcomes.forEach((o, i) => {
    const a = observable(o.result);
    const b = observable(waggle.outcomes[i].result);
    for (const key of Object.keys(a) as (keyof typeof a)[]) {
      if (a[key] !== b[key] && !documented(o.probe, key)) {
        out.push(
          `${describeProbe(o.probe, iptables.scenario.family)}: ${key} iptables=${a[key]} waggle=${b[key]}`,
        );
      }
    }
  });
  return out;
}

describe("differential: istio-iptables vs waggle", function () {
  this.timeout(90_000);
  const fx = useWaggleLab();
  const iptables = new IptablesCaptureMode();

  for (const scenario of CAPTURE_SCENARIOS) {
    it(`${scenario.name}: same listener, original destination, reply source and peers`, async () => {
      const a = await runScenario(iptables, scenario, fx.lab);
      const b = await runScenario(fx.waggle, scenario, fx.lab);
      expect(differences(a, b), "iptables vs waggle").to.deep.equal([]);
    });
  }
});
