// Pod annotations and istio-proxy facts -> RedirectSettings (mesh/redirect-settings.ts): one
// valid and one invalid case per annotation; every error names its annotation.
import { expect } from "chai";
import {
  TRAFFIC_ANNOTATIONS as A,
  defaultRedirectSettings,
  InvalidAnnotationError,
  parseRedirectSettings,
  REFUSED_ANNOTATIONS,
} from "../../mesh/redirect-settings";

function expectInvalid(annotation: string, value: string, problem: string) {
  expect(() => parseRedirectSettings({ [annotation]: value }))
    .to.throw(
      InvalidAnnotationError,
      `annotation ${annotation}=${JSON.stringify(value)} is invalid`,
    )
    .that.satisfies(
      (e: InvalidAnnotationError) => e.annotation === annotation && e.problem.includes(problem),
    );
}

describe("cni redirect settings: defaults", () => {
  it("no annotations and no proxy facts give the contract's defaults", () => {
    expect(parseRedirectSettings({})).to.deep.equal(defaultRedirectSettings());
  });

  it("unrelated annotations are ignored", () => {
    expect(parseRedirectSettings({ "prometheus.io/scrape": "true" })).to.deep.equal(
      defaultRedirectSettings(),
    );
  });
});

describe("cni redirect settings: proxy uid/gid and env", () => {
  it("runAsUser and runAsGroup set the proxy uid and gid independently", () => {
    const s = parseRedirectSettings({}, { runAsUser: 1500, env: {}, args: [] });
    expect([s.proxyUid, s.proxyGid]).to.deep.equal([1500, 1337]);
    const g = parseRedirectSettings({}, { runAsGroup: 1600, env: {}, args: [] });
    expect([g.proxyUid, g.proxyGid]).to.deep.equal([1337, 1600]);
  });

  it("zero uid/gid keep the default 1337", () => {
    const s = parseRedirectSettings({}, { runAsUser: 0, runAsGroup: 0, env: {}, args: [] });
    expect([s.proxyUid, s.proxyGid]).to.deep.equal([1337, 1337]);
  });

  it("ISTIO_META_DNS_CAPTURE=true turns DNS capture on", () => {
    expect(
      parseRedirectSettings({}, { env: { ISTIO_META_DNS_CAPTURE: "true" }, args: [] }).dnsCapture,
    ).to.equal(true);
  });

  it("ISTIO_DUAL_STACK=1 turns dual stack on", () => {
    expect(
      parseRedirectSettings({}, { env: { ISTIO_DUAL_STACK: "1" }, args: [] }).dualStack,
    ).to.equal(true);
  });

  it("an unparsable env boolean is off and reported", () => {
    const warnings: string[] = [];
    const s = parseRedirectSettings({}, { env: { ISTIO_META_DNS_CAPTURE: "yes" }, args: [] }, (m) =>
      warnings.push(m),
    );
    expect(s.dnsCapture).to.equal(false);
    expect(warnings).to.deep.equal([
      'istio-proxy env ISTIO_META_DNS_CAPTURE="yes" is not a boolean; treated as false',
    ]);
  });
});

describe("cni redirect settings: annotations", () => {
  it("interceptionMode TPROXY", () => {
    expect(parseRedirectSettings({ [A.interceptionMode]: "TPROXY" }).interceptionMode).to.equal(
      "TPROXY",
    );
  });
  it("interceptionMode other than REDIRECT/TPROXY is invalid", () => {
    expectInvalid(A.interceptionMode, "NONE", 'must be "REDIRECT" or "TPROXY"');
  });

  it("includeOutboundIPRanges: a CIDR list, normalised and deduplicated", () => {
    const s = parseRedirectSettings({
      [A.includeOutboundIPRanges]: "10.1.2.3/8,10.0.0.0/8,fd00::1/8",
    });
    expect(s.outbound.includeIPRanges).to.deep.equal(["10.0.0.0/8", "fd00::/8"]);
  });
  it('includeOutboundIPRanges "*" captures everything; "" nothing', () => {
    expect(
      parseRedirectSettings({ [A.includeOutboundIPRanges]: "*" }).outbound.includeIPRanges,
    ).to.equal("*");
    expect(
      parseRedirectSettings({ [A.includeOutboundIPRanges]: "" }).outbound.includeIPRanges,
    ).to.deep.equal([]);
  });
  for (const [value, problem] of [
    ["10.0.0.0", 'has no "/prefix-length"'],
    ["10.0.0.0/33", "prefix length must be 0-32"],
    ["10.0.0.0/8,*", '"*" has no'],
    ["10.0.0.0/8, 192.168.0.0/16", "is not an IP address"],
    ["10.0.0.0/8,", '"" has no'],
    ["010.0.0.0/8", "is not an IP address"],
  ]) {
    it(`includeOutboundIPRanges ${JSON.stringify(value)} is invalid`, () =>
      expectInvalid(A.includeOutboundIPRanges, value, problem));
  }

  it("an IP-range annotation listing more than 256 ranges is invalid, naming it; 256 are fine", () => {
    const ranges = (n: number) =>
      Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`).join(",");
    for (const annotation of [A.includeOutboundIPRanges, A.excludeOutboundIPRanges]) {
      expect(() => parseRedirectSettings({ [annotation]: ranges(257) }))
        .to.throw(InvalidAnnotationError, `annotation ${annotation}=`)
        .that.satisfies(
          (e: InvalidAnnotationError) =>
            e.problem === "lists 257 ranges; at most 256 (a shared map holds them for every pod)" &&
            e.message.length < 400,
        );
      expect(() => parseRedirectSettings({ [annotation]: ranges(256) })).to.not.throw();
    }
  });

  it("excludeOutboundIPRanges: a CIDR list (IPv4 and IPv6)", () => {
    const s = parseRedirectSettings({
      [A.excludeOutboundIPRanges]: "169.254.169.254/32,fe80::/10",
    });
    expect(s.outbound.excludeIPRanges).to.deep.equal(["169.254.169.254/32", "fe80::/10"]);
  });
  it("excludeOutboundIPRanges with a bad CIDR is invalid", () =>
    expectInvalid(A.excludeOutboundIPRanges, "fe80::/129", "prefix length must be 0-128"));
  it('excludeOutboundIPRanges "*" is invalid', () =>
    expectInvalid(A.excludeOutboundIPRanges, "*", "has no"));

  it("includeOutboundPorts: a port list (spaces around ports allowed)", () => {
    expect(
      parseRedirectSettings({ [A.includeOutboundPorts]: " 80, 443 ,80" }).outbound.includePorts,
    ).to.deep.equal([80, 443]);
  });
  it("includeOutboundPorts with a non-number is invalid", () =>
    expectInvalid(A.includeOutboundPorts, "80,http", 'port "http" is not a number 0-65535'));
  it('includeOutboundPorts "*" is invalid (istio-iptables cannot apply it)', () =>
    expectInvalid(A.includeOutboundPorts, "*", '"*" is only valid for includeInboundPorts'));

  it("excludeOutboundPorts replaces the default 15020", () => {
    expect(
      parseRedirectSettings({ [A.excludeOutboundPorts]: "9090" }).outbound.excludePorts,
    ).to.deep.equal([9090]);
    expect(
      parseRedirectSettings({ [A.excludeOutboundPorts]: "" }).outbound.excludePorts,
    ).to.deep.equal([]);
  });
  it("excludeOutboundPorts with a port over 65535 is invalid", () =>
    expectInvalid(A.excludeOutboundPorts, "65536", 'port "65536" is not a number 0-65535'));

  it('includeInboundPorts: "*", a list, or "" (no inbound capture)', () => {
    expect(parseRedirectSettings({ [A.includeInboundPorts]: "*" }).inbound.includePorts).to.equal(
      "*",
    );
    expect(
      parseRedirectSettings({ [A.includeInboundPorts]: "8080,9090" }).inbound.includePorts,
    ).to.deep.equal([8080, 9090]);
    expect(
      parseRedirectSettings({ [A.includeInboundPorts]: "" }).inbound.includePorts,
    ).to.deep.equal([]);
  });
  it("includeInboundPorts with an empty element is invalid", () =>
    expectInvalid(A.includeInboundPorts, "8080,,9090", 'port "" is not a number'));

  it("excludeInboundPorts gains 15020, 15021, 15090 (deduplicated)", () => {
    expect(
      parseRedirectSettings({ [A.excludeInboundPorts]: "22,15021" }).inbound.excludePorts,
    ).to.deep.equal([22, 15021, 15020, 15090]);
  });
  it("excludeInboundPorts with a negative port is invalid", () =>
    expectInvalid(A.excludeInboundPorts, "-1", 'port "-1" is not a number'));

  it("excludeInterfaces: a list of interface names", () => {
    expect(
      parseRedirectSettings({ [A.excludeInterfaces]: "net1, net2" }).excludeInterfaces,
    ).to.deep.equal(["net1", "net2"]);
  });
  for (const [value, problem] of [
    ["net1,", "empty interface name"],
    ["averyveryverylongname", "longer than 15 characters"],
    ["1net", "has invalid characters"],
  ]) {
    it(`excludeInterfaces ${JSON.stringify(value)} is invalid`, () =>
      expectInvalid(A.excludeInterfaces, value, problem));
  }

  it("the first invalid annotation fails the whole parse", () => {
    expect(() =>
      parseRedirectSettings({ [A.interceptionMode]: "REDIRECT", [A.excludeOutboundPorts]: "x" }),
    ).to.throw(InvalidAnnotationError, A.excludeOutboundPorts);
  });
});

describe("cni redirect settings: VM interface capture is refused until implemented", () => {
  for (const annotation of Object.values(REFUSED_ANNOTATIONS)) {
    it(`${annotation} naming an interface is refused, naming the annotation`, () =>
      expectInvalid(annotation, "net1", "not implemented by waggle"));

    it(`${annotation} is refused even beside valid traffic annotations`, () =>
      expect(() =>
        parseRedirectSettings({ [A.excludeInterfaces]: "net2", [annotation]: "vmnet0,vmnet1" }),
      ).to.throw(InvalidAnnotationError, annotation));

    it(`${annotation} empty asks for nothing and is accepted`, () =>
      expect(parseRedirectSettings({ [annotation]: "" })).to.deep.equal(defaultRedirectSettings()));
  }
});
