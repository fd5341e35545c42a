// The iptables baseline renderer (test/support/istio-iptables.ts): the exact rules
// istio-iptables writes per setting, in its order.

import { expect } from "chai";
import { defaultRedirectSettings, type RedirectSettings } from "../../mesh/redirect-settings";
import { ipv6Enabled, renderIstioIptables } from "../support/istio-iptables";

const POD = { ipv4: "10.0.0.9" };
const DUAL = { ipv4: "10.0.0.9", ipv6: "fd00::9" };

function settings(patch: (s: RedirectSettings) => void = () => {}): RedirectSettings {
  const s = defaultRedirectSettings();
  patch(s);
  return s;
}

function rules(text: string, chain?: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(chain ? `-A ${chain} ` : "-A "));
}

describe("istio-iptables baseline renderer", () => {
  it("renders a default pod exactly like istio-cni's REDIRECT ruleset", () => {
    const { v4, v6 } = renderIstioIptables(defaultRedirectSettings(), POD);
    expect(v6).to.equal(null);
    expect(v4).to.equal(
      [
        "*nat",
        "-N ISTIO_INBOUND",
        "-N ISTIO_REDIRECT",
        "-N ISTIO_IN_REDIRECT",
        "-N ISTIO_OUTPUT",
        "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN",
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
        "-A OUTPUT -j ISTIO_OUTPUT",
        "-A ISTIO_OUTPUT -p tcp --dport 15020 -j RETURN",
        "-A ISTIO_OUTPUT -p udp --dport 15020 -j RETURN",
        "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
        "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT",
        "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
        "COMMIT",
        "",
      ].join("\n"),
    );
  });

  it("with DNS capture: uid rule skips 53 and 15008, TCP/UDP 53 to 15053, conntrack zones in raw", () => {
    const { v4 } = renderIstioIptables(
      settings((s) => (s.dnsCapture = true)),
      POD,
    );
    expect(rules(v4, "ISTIO_OUTPUT").slice(3, 10)).to.deep.equal([
      "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
      "-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --uid-owner 1337 -j RETURN",
      "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
      "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT",
      "-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --gid-owner 1337 -j RETURN",
      "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN",
      "-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS",
    ]);
    const raw = v4.slice(v4.indexOf("*raw"));
    expect(rules(v4.slice(0, v4.indexOf("*raw")), "ISTIO_OUTPUT_DNS")).to.deep.equal([
      "-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -j REDIRECT --to-ports 15053",
      "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j REDIRECT --to-ports 15053",
    ]);
    expect(rules(raw)).to.deep.equal([
      "-A OUTPUT -j ISTIO_OUTPUT_DNS",
      "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 1337 -j CT --zone 1",
      "-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --uid-owner 1337 -j CT --zone 2",
      "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --gid-owner 1337 -j CT --zone 1",
      "-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --gid-owner 1337 -j CT --zone 2",
      "-A PREROUTING -j ISTIO_INBOUND",
      "-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j CT --zone 2",
      "-A ISTIO_INBOUND -p udp --sport 53 -j CT --zone 1",
    ]);
    expect(raw).to.include("-N ISTIO_OUTPUT_DNS\n-N ISTIO_INBOUND\n");
  });

  it("enables IPv6 for dual-stack pods only with dual stack on, and for IPv6-only pods always", () => {
    expect(ipv6Enabled(defaultRedirectSettings(), DUAL)).to.equal(false);
    expect(
      ipv6Enabled(
        settings((s) => (s.dualStack = true)),
        DUAL,
      ),
    ).to.equal(true);
    expect(ipv6Enabled(defaultRedirectSettings(), { ipv6: "fd00::9" })).to.equal(true);
    expect(
      ipv6Enabled(
        settings((s) => (s.dualStack = true)),
        POD,
      ),
    ).to.equal(false);
    const { v6 } = renderIstioIptables(
      settings((s) => (s.dualStack = true)),
      DUAL,
    );
    expect(v6).to.include("-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN");
    expect(v6).to.include(
      "-A ISTIO_OUTPUT -o lo ! -d ::1/128 -p tcp ! --dport 15008 -m owner --uid-owner 1337",
    );
    expect(v6).to.include("-A ISTIO_OUTPUT -d ::1/128 -j RETURN");
    expect(v6).to.not.include("127.0.0");
  });

  it("splits include and exclude CIDRs by family, excludes before includes", () => {
    const s = settings((x) => {
      x.dualStack = true;
      x.outbound.includeIPRanges = ["10.96.0.0/12", "fd00:96::/108"];
      x.outbound.excludeIPRanges = ["10.96.0.10/32", "fd00:96::a/128"];
    });
    const { v4, v6 } = renderIstioIptables(s, DUAL);
    expect(rules(v4, "ISTIO_OUTPUT").slice(-3)).to.deep.equal([
      "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
      "-A ISTIO_OUTPUT -d 10.96.0.10/32 -j RETURN",
      "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT",
    ]);
    expect(rules(v6 as string, "ISTIO_OUTPUT").slice(-3)).to.deep.equal([
      "-A ISTIO_OUTPUT -d ::1/128 -j RETURN",
      "-A ISTIO_OUTPUT -d fd00:96::a/128 -j RETURN",
      "-A ISTIO_OUTPUT -d fd00:96::/108 -j ISTIO_REDIRECT",
    ]);
  });

  it("renders no outbound capture rule for an empty include list, and port includes before ranges", () => {
    const { v4 } = renderIstioIptables(
      settings((s) => {
        s.outbound.includeIPRanges = [];
        s.outbound.includePorts = [80, 443];
      }),
      POD,
    );
    expect(rules(v4, "ISTIO_OUTPUT").slice(-3)).to.deep.equal([
      "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
      "-A ISTIO_OUTPUT -p tcp --dport 80 -j ISTIO_REDIRECT",
      "-A ISTIO_OUTPUT -p tcp --dport 443 -j ISTIO_REDIRECT",
    ]);
  });

  it("drops the other-owner loopback RETURN rules when a loopback range is included (either family)", () => {
    for (const range of ["127.0.0.0/8", "::1/128"]) {
      const { v4 } = renderIstioIptables(
        settings((s) => (s.outbound.includeIPRanges = [range])),
        POD,
      );
      expect(v4).to.not.include("! --uid-owner").and.not.include("! --gid-owner");
    }
    const { v4 } = renderIstioIptables(
      settings((s) => (s.outbound.includeIPRanges = ["0.0.0.0/0"])),
      POD,
    );
    expect(v4).to.include("-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN");
  });

  it("renders inbound include lists and an empty list (no PREROUTING jump)", () => {
    const listed = renderIstioIptables(
      settings((s) => (s.inbound.includePorts = [8080, 9090])),
      POD,
    ).v4;
    expect(rules(listed, "ISTIO_INBOUND")).to.deep.equal([
      "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN",
      "-A ISTIO_INBOUND -p tcp --dport 8080 -j ISTIO_IN_REDIRECT",
      "-A ISTIO_INBOUND -p tcp --dport 9090 -j ISTIO_IN_REDIRECT",
    ]);
    const none = renderIstioIptables(
      settings((s) => (s.inbound.includePorts = [])),
      POD,
    ).v4;
    expect(rules(none, "PREROUTING")).to.deep.equal([]);
    expect(rules(none, "ISTIO_INBOUND")).to.deep.equal([
      "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN",
    ]);
  });

  it("short-circuits excluded interfaces first in PREROUTING and OUTPUT", () => {
    const { v4 } = renderIstioIptables(
      settings((s) => (s.excludeInterfaces = ["net1", "eth1"])),
      POD,
    );
    expect(rules(v4).slice(0, 4)).to.deep.equal([
      "-A PREROUTING -i net1 -j RETURN",
      "-A OUTPUT -o net1 -j RETURN",
      "-A PREROUTING -i eth1 -j RETURN",
      "-A OUTPUT -o eth1 -j RETURN",
    ]);
  });

  it("uses the per-pod proxy uid and gid", () => {
    const { v4 } = renderIstioIptables(
      settings((s) => {
        s.proxyUid = 2000;
        s.proxyGid = 3000;
      }),
      POD,
    );
    expect(v4)
      .to.include("-m owner --uid-owner 2000 -j RETURN")
      .and.include("-m owner --gid-owner 3000 -j RETURN");
    expect(v4).to.not.include("1337");
  });

  it("refuses settings it cannot render", () => {
    const cases: [string, (s: RedirectSettings) => void, RegExp][] = [
      ["TPROXY", (s) => (s.interceptionMode = "TPROXY"), /REDIRECT mode only, not TPROXY/],
      [
        "bad CIDR",
        (s) => (s.outbound.excludeIPRanges = ["10.0.0.0/8", "banana"]),
        /invalid CIDR "banana"/,
      ],
      [
        "prefix too long",
        (s) => (s.outbound.includeIPRanges = ["fd00::/129"]),
        /invalid CIDR "fd00::\/129"/,
      ],
      ["port 0", (s) => (s.outbound.excludePorts = [0]), /invalid port 0 in outbound.excludePorts/],
      [
        "port 70000",
        (s) => (s.inbound.includePorts = [70000]),
        /invalid port 70000 in inbound.includePorts/,
      ],
      ["interface", (s) => (s.excludeInterfaces = ["eth0 -j DROP"]), /invalid interface name/],
      ["uid", (s) => (s.proxyUid = -1), /invalid proxyUid -1/],
    ];
    for (const [what, patch, message] of cases) {
      expect(() => renderIstioIptables(settings(patch), POD), what).to.throw(message);
    }
  });
});
