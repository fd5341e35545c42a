// decideMesh (mesh/mesh-decision.ts), the one decision behind the plugin's ADD and CHECK and the
// installer's early-pod repair: its behaviour table, row by row, in istio-cni's order, and
// which facts each row needs (a row settled by the pod's identity or the runtime's annotations
// reads no facts: no API call for a pod that is not meshed).
import { expect } from "chai";
import { decideMesh, type MeshDecision, type MeshQuestion } from "../../mesh/mesh-decision";
import type { PodFacts, SelectionRule } from "../../mesh/pod-selection";
import { InvalidAnnotationError } from "../../mesh/redirect-settings";

const STATUS = JSON.stringify({
  initContainers: ["istio-validation"],
  containers: ["istio-proxy"],
});

/** PodFacts with every part known and changeable. */
interface Facts extends PodFacts {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  containerNames: string[];
  proxy: { runAsUser: number; runAsGroup: number; env: Record<string, string>; args: string[] };
}

/** The facts of an injected pod read from the API, changed by `patch`. */
function facts(patch: (f: Facts) => void = () => {}): Facts {
  const f: Facts = {
    source: "api",
    labels: {},
    annotations: { "sidecar.istio.io/status": STATUS },
    containerNames: ["istio-validation", "app", "istio-proxy"],
    proxy: { runAsUser: 1500, runAsGroup: 1501, env: {}, args: ["proxy", "sidecar"] },
  };
  patch(f);
  return f;
}

interface Asked {
  decision: MeshDecision;
  factReads: number;
  annotationReads: number;
  warnings: string[];
}

async function ask(over: Partial<MeshQuestion> & { podFacts?: PodFacts } = {}): Promise<Asked> {
  const asked = { factReads: 0, annotationReads: 0, warnings: [] as string[] };
  const decision = await decideMesh({
    pod: { namespace: "shop", name: "cart-1", uid: "u1" },
    excludeNamespaces: ["kube-system"],
    readFacts: () => {
      asked.factReads++;
      return over.podFacts ?? facts();
    },
    warn: (m) => asked.warnings.push(m),
    ...over,
    ...(over.runtimeAnnotations
      ? {
          runtimeAnnotations: () => {
            asked.annotationReads++;
            return over.runtimeAnnotations?.();
          },
        }
      : {}),
  });
  return { decision, ...asked };
}

function skipRule(d: MeshDecision): SelectionRule | undefined {
  return "skip" in d ? d.skip.rule : undefined;
}

describe("decideMesh: which pods waggle meshes, in istio-cni's order", () => {
  describe("rows settled without the pod's facts", () => {
    const rows: Array<[string, Partial<MeshQuestion>, SelectionRule]> = [
      [
        "no pod name or namespace: not a Kubernetes pod",
        { pod: { namespace: "shop" } },
        "not-kubernetes",
      ],
      [
        "a namespace in exclude_namespaces",
        { pod: { namespace: "kube-system", name: "dns" } },
        "excluded-namespace",
      ],
      [
        "runtime annotations without the sidecar status: not injected",
        { runtimeAnnotations: () => ({ "prometheus.io/scrape": "true" }) },
        "no-sidecar-status",
      ],
    ];
    for (const [what, question, rule] of rows) {
      it(`${what} -> left alone (${rule}), no facts read`, async () => {
        const asked = await ask(question);
        expect(skipRule(asked.decision)).to.equal(rule);
        expect(asked.factReads).to.equal(0);
      });
    }

    it("the runtime's annotations are not read when the pod's identity settles it", async () => {
      const asked = await ask({
        pod: { namespace: "kube-system", name: "dns" },
        runtimeAnnotations: () => ({}),
      });
      expect(skipRule(asked.decision)).to.equal("excluded-namespace");
      expect(asked.annotationReads).to.equal(0);
    });
  });

  describe("rows settled by the pod's facts (rules 3-8)", () => {
    const rows: Array<[string, (f: Facts) => void, SelectionRule]> = [
      ["an istio-init container", (f) => f.containerNames.push("istio-init"), "istio-init"],
      [
        "istio-proxy with DISABLE_ENVOY=true",
        (f) => (f.proxy.env.DISABLE_ENVOY = "true"),
        "envoy-disabled",
      ],
      ["no istio-proxy container", (f) => (f.containerNames = ["app"]), "no-istio-proxy"],
      [
        "istio-proxy running as a gateway",
        (f) => (f.proxy.args = ["proxy", "router"]),
        "not-a-sidecar",
      ],
      [
        "the inject label false",
        (f) => (f.labels = { "sidecar.istio.io/inject": "false" }),
        "injection-disabled",
      ],
      [
        "no sidecar status among the pod's annotations",
        (f) => delete f.annotations["sidecar.istio.io/status"],
        "no-sidecar-status",
      ],
    ];
    for (const [what, patch, rule] of rows) {
      it(`${what} -> left alone (${rule})`, async () => {
        const asked = await ask({ podFacts: facts(patch) });
        expect(skipRule(asked.decision)).to.equal(rule);
        expect(asked.factReads).to.equal(1);
      });
    }
  });

  describe("meshed pods", () => {
    it("an injected pod -> meshed with its redirect settings and the facts they came from", async () => {
      const podFacts = facts();
      const asked = await ask({ podFacts, runtimeAnnotations: () => podFacts.annotations });
      expect(asked.decision).to.have.property("facts", podFacts);
      expect(asked.decision).to.have.nested.property("settings.proxyUid", 1500);
      expect(asked.decision).to.have.nested.property("settings.proxyGid", 1501);
      expect(asked.annotationReads).to.equal(1);
      expect(asked.factReads).to.equal(1);
    });

    it("an istio-proxy setting that is not a boolean -> meshed, with a warning naming it", async () => {
      const asked = await ask({
        podFacts: facts((f) => (f.proxy.env.ISTIO_META_DNS_CAPTURE = "yes")),
      });
      expect(asked.decision).to.have.nested.property("settings.dnsCapture", false);
      expect(asked.warnings).to.deep.equal([
        'istio-proxy env ISTIO_META_DNS_CAPTURE="yes" is not a boolean; treated as false',
      ]);
    });
  });

  describe("failures", () => {
    it("an invalid traffic annotation -> InvalidAnnotationError naming it", async () => {
      const podFacts = facts((f) => {
        f.annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] = "http";
      });
      const error = await ask({ podFacts }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(InvalidAnnotationError);
      expect((error as Error).message).to.contain("excludeOutboundPorts");
    });

    it("facts that cannot be read -> the reader's error, unchanged", async () => {
      const unreachable = new Error("API server unreachable");
      const error = await ask({
        readFacts: () => {
          throw unreachable;
        },
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.equal(unreachable);
    });
  });
});
