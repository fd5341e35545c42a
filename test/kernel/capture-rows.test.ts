// One kernel test per contract scenario (capture-scenarios.ts), run under waggle: real
// sockets in netns pods, clients as app (1000), root, the proxy uid/gid, checking which
// listener accepted and what SO_ORIGINAL_DST returned.
import { expect } from "chai";
import { describeFailures, runScenario } from "../support/capture-lab";
import { CAPTURE_SCENARIOS } from "../support/capture-scenarios";
import { useWaggleLab } from "../support/waggle-mode";

describe("capture contract under waggle", function () {
  this.timeout(60_000);
  const fx = useWaggleLab();

  for (const scenario of CAPTURE_SCENARIOS) {
    it(scenario.name, async () => {
      const result = await runScenario(fx.waggle, scenario, fx.lab);
      expect(result.ok, describeFailures(result)).to.equal(true);
    });
  }
});
