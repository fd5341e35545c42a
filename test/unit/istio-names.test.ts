// Istio's redirection annotations and istio-proxy variables (mesh/istio-names.ts) against the
// code and conf/README.md: every name Istio defines is listed once; the honoured ones change
// the pod's settings or selection, the refused ones fail the parse naming themselves, the
// ignored ones change nothing and each is in conf/README.md's table with its reason.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { ISTIO_NAMES, istioNames } from "../../mesh/istio-names";
import { type PodFacts, skipByPod } from "../../mesh/pod-selection";
import {
  TRAFFIC_ANNOTATIONS as A,
  defaultRedirectSettings,
  InvalidAnnotationError,
  PROXY_ENV,
  parseRedirectSettings,
  REFUSED_ANNOTATIONS,
} from "../../mesh/redirect-settings";

/**
 * The names as Istio defines them (istio/api annotations; istio-cni's registry and proxy
 * environment reads; istio-iptables' environment-bound settings): the reference the list in
 * the code must match exactly.
 */
const ISTIO_DEFINES = `
sidecar.istio.io/inject sidecar.istio.io/status sidecar.istio.io/interceptionMode
status.sidecar.istio.io/port traffic.sidecar.istio.io/includeOutboundIPRanges
traffic.sidecar.istio.io/excludeOutboundIPRanges
traffic.sidecar.istio.io/includeInboundPorts traffic.sidecar.istio.io/excludeInboundPorts
traffic.sidecar.istio.io/includeOutboundPorts
traffic.sidecar.istio.io/excludeOutboundPorts traffic.sidecar.istio.io/excludeInterfaces
traffic.sidecar.istio.io/kubevirtInterfaces istio.io/reroute-virtual-interfaces
traffic.istio.io/nodeSelector proxy.istio.io/config ambient.istio.io/redirection
ambient.istio.io/bypass-inbound-capture ambient.istio.io/dns-capture
ISTIO_META_DNS_CAPTURE ISTIO_DUAL_STACK INVALID_DROP DISABLE_ENVOY
ISTIO_INBOUND_INTERCEPTION_MODE ISTIO_INBOUND_TPROXY_MARK ISTIO_INBOUND_TPROXY_ROUTE_TABLE
ISTIO_INBOUND_PORTS ISTIO_LOCAL_EXCLUDE_PORTS ISTIO_EXCLUDE_INTERFACES ISTIO_SERVICE_CIDR
ISTIO_SERVICE_EXCLUDE_CIDR ISTIO_OUTBOUND_PORTS ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE
INBOUND_CAPTURE_PORT INBOUND_TUNNEL_PORT PROXY_UID PROXY_GID KUBE_VIRT_INTERFACES
REDIRECT_DNS CAPTURE_ALL_DNS DROP_INVALID DUAL_STACK
`
  .trim()
  .split(/\s+/);

/** A valid, non-default value of each honoured traffic annotation. */
const SAMPLE: Record<string, string> = {
  [A.interceptionMode]: "TPROXY",
  [A.includeOutboundIPRanges]: "10.0.0.0/8",
  [A.excludeOutboundIPRanges]: "10.0.0.0/8",
  [A.includeOutboundPorts]: "80",
  [A.excludeOutboundPorts]: "80",
  [A.includeInboundPorts]: "80",
  [A.excludeInboundPorts]: "80",
  [A.excludeInterfaces]: "net1",
};

const meshedFacts = (over: Partial<PodFacts> = {}): PodFacts => ({
  source: "api",
  annotations: { "sidecar.istio.io/status": "{}" },
  containerNames: ["app", "istio-proxy"],
  proxy: { env: {}, args: ["proxy", "sidecar"] },
  ...over,
});

const conf = readFileSync(join(__dirname, "..", "..", "..", "conf", "README.md"), "utf8");

/** conf/README.md's table of ignored names: name -> [kind, reason]. */
function ignoredTable(): Map<string, [string, string]> {
  const lines = conf.split("\n");
  const header = lines.findIndex((l) => /^\| *Istio name *\|/.test(l));
  expect(header, "conf/README.md has a table headed 'Istio name'").to.be.at.least(0);
  const out = new Map<string, [string, string]>();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    const [name, kind, reason] = line
      .slice(1, -1)
      .split("|")
      .map((c) => c.trim());
    out.set(name.replace(/^`|`$/g, ""), [kind, reason]);
  }
  return out;
}

describe("istio names: every redirection annotation and proxy variable is handled or explained", () => {
  it("the list in the code is exactly Istio's names, each once", () => {
    const names = ISTIO_NAMES.map((n) => n.name);
    expect(new Set(names).size, "no name twice").to.equal(names.length);
    expect([...names].sort()).to.deep.equal([...ISTIO_DEFINES].sort());
  });

  it("the honoured annotations are the ones the settings parser and pod selection read", () => {
    expect(istioNames("honoured", "annotation").sort()).to.deep.equal(
      [...Object.values(A), "sidecar.istio.io/inject", "sidecar.istio.io/status"].sort(),
    );
    expect(istioNames("honoured", "proxy env").sort()).to.deep.equal(
      [...Object.values(PROXY_ENV), "DISABLE_ENVOY"].sort(),
    );
  });

  for (const name of Object.values(A)) {
    it(`${name} (honoured) changes the pod's settings`, () => {
      expect(parseRedirectSettings({ [name]: SAMPLE[name] })).to.not.deep.equal(
        defaultRedirectSettings(),
      );
    });
  }

  for (const name of Object.values(PROXY_ENV)) {
    it(`${name} (honoured) changes the pod's settings`, () => {
      expect(parseRedirectSettings({}, { env: { [name]: "true" }, args: [] })).to.not.deep.equal(
        defaultRedirectSettings(),
      );
    });
  }

  it("sidecar.istio.io/inject, sidecar.istio.io/status and DISABLE_ENVOY (honoured) decide selection", () => {
    expect(skipByPod(meshedFacts())).to.equal(undefined);
    expect(skipByPod(meshedFacts({ annotations: {} }))?.rule).to.equal("no-sidecar-status");
    expect(
      skipByPod(
        meshedFacts({
          annotations: { "sidecar.istio.io/status": "{}", "sidecar.istio.io/inject": "false" },
        }),
      )?.rule,
    ).to.equal("injection-disabled");
    expect(
      skipByPod(meshedFacts({ proxy: { env: { DISABLE_ENVOY: "true" }, args: [] } }))?.rule,
    ).to.equal("envoy-disabled");
  });

  it("the refused names are exactly those the parser refuses", () => {
    expect(istioNames("refused").sort()).to.deep.equal(Object.values(REFUSED_ANNOTATIONS).sort());
    for (const name of istioNames("refused"))
      expect(() => parseRedirectSettings({ [name]: "net1" }), name).to.throw(
        InvalidAnnotationError,
        name,
      );
  });

  for (const name of istioNames("ignored", "annotation")) {
    it(`${name} (ignored) changes neither settings nor selection`, () => {
      const annotations = { [name]: "enabled" };
      expect(parseRedirectSettings(annotations)).to.deep.equal(defaultRedirectSettings());
      expect(
        skipByPod(
          meshedFacts({ annotations: { "sidecar.istio.io/status": "{}", ...annotations } }),
        ),
      ).to.equal(undefined);
    });
  }

  for (const name of istioNames("ignored", "proxy env")) {
    it(`${name} (ignored) on istio-proxy changes neither settings nor selection`, () => {
      const proxy = { env: { [name]: "true" }, args: ["proxy", "sidecar"] };
      expect(parseRedirectSettings({}, proxy)).to.deep.equal(defaultRedirectSettings());
      expect(skipByPod(meshedFacts({ proxy }))).to.equal(undefined);
    });
  }

  it("conf/README.md lists every ignored name with its kind and reason, and nothing else", () => {
    const table = ignoredTable();
    const ignored = ISTIO_NAMES.filter((n) => n.handling === "ignored");
    expect([...table.keys()].sort()).to.deep.equal(ignored.map((n) => n.name).sort());
    for (const n of ignored) expect(table.get(n.name), n.name).to.deep.equal([n.kind, n.reason]);
  });
});
