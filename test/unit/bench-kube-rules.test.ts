import { expect } from "chai";
import {
  endpointProbability,
  floodLevelLabel,
  kubeChainName,
  parseFloodLevel,
  renderKubeRules,
  renderRemoval,
} from "../../bench/kube-rules";

describe("host rule flood: kube-proxy-shaped rules (bench/kube-rules.ts)", () => {
  it("parses named levels and SERVICESxENDPOINTS, and refuses anything else", () => {
    expect(parseFloodLevel("0")).to.deep.equal({ services: 0, endpointsPerService: 0 });
    expect(parseFloodLevel("10k")).to.deep.equal({ services: 50, endpointsPerService: 50 });
    expect(parseFloodLevel("100k")).to.deep.equal({ services: 500, endpointsPerService: 50 });
    expect(parseFloodLevel("250x250")).to.deep.equal({ services: 250, endpointsPerService: 250 });
    for (const bad of ["", "1m", "10x", "x5", "-1x5", "10x0", "70000x1"])
      expect(() => parseFloodLevel(bad), bad).to.throw(/rule level|must be/);
    expect(floodLevelLabel({ services: 500, endpointsPerService: 50 })).to.equal("100k");
    expect(floodLevelLabel({ services: 7, endpointsPerService: 3 })).to.equal("7x3");
  });

  it("the thesis's 500 services x 50 endpoints: 76,020 rules, 101,545 iptables-save lines", () => {
    const r = renderKubeRules(parseFloodLevel("100k"));
    // per service 2 + 3E rules and 1 + E chains, plus the skeleton (7 nat + 12 filter rules)
    expect(r.rules).to.equal(500 * (2 + 3 * 50) + 7 + 1 + 12);
    expect(r.chains).to.equal(500 * 51 + 4 + 6);
    // measured with iptables-nft-save after loading on Linux 6.18 / iptables 1.8.9
    expect(r.saveLines).to.equal(101_545);
    expect(r.restoreInput.split("\n").filter((l) => l.startsWith("-A ")).length).to.equal(r.rules);
  });

  it("every service's endpoints are chosen with kube-proxy's 1/(E-i) probabilities, the last unconditionally", () => {
    const r = renderKubeRules({ services: 1, endpointsPerService: 4 });
    const svc = r.restoreInput.split("\n").filter((l) => /^-A KUBE-SVC-\S+ -m comment/.test(l));
    expect(svc).to.have.length(4);
    expect(svc.map((l) => /--probability (\S+)/.exec(l)?.[1] ?? "none")).to.deep.equal([
      "0.2500000000",
      "0.3333333333",
      "0.5000000000",
      "none",
    ]);
    expect(endpointProbability(0, 50)).to.equal("0.0200000000");
  });

  it("pod traffic walks KUBE-SERVICES: one cluster-IP rule per service, then the nodeports rule last", () => {
    const lines = renderKubeRules({ services: 3, endpointsPerService: 2 }).restoreInput.split("\n");
    const services = lines.filter((l) => l.startsWith("-A KUBE-SERVICES"));
    expect(services).to.have.length(4);
    expect(services[3]).to.contain("--dst-type LOCAL -j KUBE-NODEPORTS");
    expect(services[0]).to.match(
      /^-A KUBE-SERVICES -d 10\.96\.0\.1\/32 -p tcp .* -j KUBE-SVC-[A-Z2-7]{16}$/,
    );
    expect(lines).to.include(
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    );
    // every chain jumped to is declared
    const declared = new Set(
      lines.filter((l) => l.startsWith(":")).map((l) => l.slice(1).split(" ")[0]),
    );
    for (const l of lines.filter((x) => x.startsWith("-A "))) {
      const target = / -j (KUBE-[A-Z0-9-]+)/.exec(l)?.[1];
      if (target) expect(declared.has(target), target).to.equal(true);
    }
  });

  it("chain names are kube-proxy-shaped, stable and distinct", () => {
    const a = kubeChainName("KUBE-SVC-", "ns/a:http tcp");
    expect(a).to.match(/^KUBE-SVC-[A-Z2-7]{16}$/);
    expect(kubeChainName("KUBE-SVC-", "ns/a:http tcp")).to.equal(a);
    expect(kubeChainName("KUBE-SVC-", "ns/b:http tcp")).to.not.equal(a);
  });

  it("zero services renders nothing, so the node keeps no tables at all", () => {
    expect(renderKubeRules(parseFloodLevel("0"))).to.deep.equal({
      restoreInput: "",
      rules: 0,
      chains: 0,
      saveLines: 0,
    });
    expect(renderRemoval("")).to.equal("");
  });

  it("removal deletes the jumps from built-in chains, then flushes and deletes its own chains, per table", () => {
    const input = renderKubeRules({ services: 1, endpointsPerService: 1 }).restoreInput;
    const removal = renderRemoval(input).split("\n");
    expect(removal[0]).to.equal("*nat");
    expect(removal).to.include(
      '-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    );
    expect(removal).to.include("-F KUBE-SERVICES");
    expect(removal).to.include("-X KUBE-SERVICES");
    expect(removal.indexOf("-F KUBE-MARK-MASQ")).to.be.below(removal.indexOf("-X KUBE-SERVICES"));
    expect(removal.filter((l) => l === "COMMIT")).to.have.length(2);
    expect(removal.some((l) => l.startsWith("-A "))).to.equal(false);
    expect(
      removal
        .filter((l) => l.startsWith("-D "))
        .every((l) => /^-D (PREROUTING|OUTPUT|POSTROUTING|INPUT|FORWARD) /.test(l)),
    ).to.equal(true);
  });
});
