// istio-cni's pod selection (mesh/pod-selection.ts), cases for every rule of "Pods the plugin
// leaves alone" in docs/capture-contract.md (first match wins), and the two ways of getting facts.
import type { V1Pod } from "@kubernetes/client-node";
import { expect } from "chai";
import { podFactsFromPod } from "../../mesh/k8s-pod";
import {
  lacksSidecarStatus,
  type PodFacts,
  podFactsFromAnnotations,
  skipByArgs,
  skipByPod,
} from "../../mesh/pod-selection";
import { InvalidAnnotationError } from "../../mesh/redirect-settings";

const STATUS = JSON.stringify({
  initContainers: ["istio-validation"],
  containers: ["istio-proxy"],
  volumes: ["istio-envoy"],
  imagePullSecrets: null,
  revision: "default",
});

/** A meshed pod's facts; each case changes one thing. */
function meshed(over: Partial<PodFacts> = {}): PodFacts {
  return {
    source: "api",
    labels: { app: "web" },
    annotations: { "sidecar.istio.io/status": STATUS },
    containerNames: ["istio-validation", "web", "istio-proxy"],
    proxy: { env: {}, args: ["proxy", "sidecar", "--domain", "shop.svc.cluster.local"] },
    ...over,
  };
}

describe("cni pod selection (istio-cni's rules, first match wins)", () => {
  it("not-kubernetes: no K8S_POD_NAME in CNI_ARGS", () => {
    expect(skipByArgs({ namespace: "shop" }, [])?.rule).to.equal("not-kubernetes");
  });

  it("not-kubernetes: no K8S_POD_NAMESPACE in CNI_ARGS", () => {
    expect(skipByArgs({ name: "web-0" }, [])?.rule).to.equal("not-kubernetes");
  });

  it("excluded-namespace: the pod's namespace is in exclude_namespaces", () => {
    const s = skipByArgs({ namespace: "kube-system", name: "coredns" }, ["kube-system"]);
    expect(s).to.deep.equal({
      rule: "excluded-namespace",
      reason: "namespace kube-system is in exclude_namespaces",
    });
  });

  it("not-kubernetes and excluded-namespace pass a Kubernetes pod in another namespace", () => {
    expect(skipByArgs({ namespace: "shop", name: "web-0" }, ["kube-system"])).to.equal(undefined);
  });

  it("istio-init: a container named istio-init (the pod redirects with iptables itself)", () => {
    const s = skipByPod(meshed({ containerNames: ["istio-init", "web", "istio-proxy"] }));
    expect(s?.rule).to.equal("istio-init");
  });

  for (const v of ["true", "1", "T", "TRUE"]) {
    it(`envoy-disabled: istio-proxy has DISABLE_ENVOY=${v}`, () => {
      const s = skipByPod(meshed({ proxy: { env: { DISABLE_ENVOY: v }, args: [] } }));
      expect(s).to.deep.equal({
        rule: "envoy-disabled",
        reason: `istio-proxy has DISABLE_ENVOY=${v}`,
      });
    });
  }

  it("envoy-disabled: DISABLE_ENVOY=false or unparsable does not skip", () => {
    expect(skipByPod(meshed({ proxy: { env: { DISABLE_ENVOY: "false" }, args: [] } }))).to.equal(
      undefined,
    );
    expect(skipByPod(meshed({ proxy: { env: { DISABLE_ENVOY: "yes" }, args: [] } }))).to.equal(
      undefined,
    );
  });

  it("no-istio-proxy: no container named istio-proxy", () => {
    const s = skipByPod(meshed({ containerNames: ["web"], proxy: undefined }));
    expect(s).to.deep.equal({
      rule: "no-istio-proxy",
      reason: "pod has no istio-proxy container (has web)",
    });
  });

  it("no-istio-proxy passes istio-proxy as an init container (native sidecar)", () => {
    expect(skipByPod(meshed({ containerNames: ["istio-proxy", "web"] }))).to.equal(undefined);
  });

  for (const kind of ["router", "gateway"]) {
    it(`not-a-sidecar: istio-proxy args "proxy ${kind}" (a gateway)`, () => {
      const s = skipByPod(meshed({ proxy: { env: {}, args: ["proxy", kind] } }));
      expect(s).to.deep.equal({
        rule: "not-a-sidecar",
        reason: `istio-proxy runs "proxy ${kind}", not a sidecar`,
      });
    });
  }

  it("not-a-sidecar passes args that do not start with proxy", () => {
    expect(skipByPod(meshed({ proxy: { env: {}, args: ["waypoint"] } }))).to.equal(undefined);
  });

  it("injection-disabled: label sidecar.istio.io/inject=false", () => {
    const s = skipByPod(meshed({ labels: { "sidecar.istio.io/inject": "false" } }));
    expect(s).to.deep.equal({
      rule: "injection-disabled",
      reason: "label sidecar.istio.io/inject=false",
    });
  });

  it("injection-disabled: annotation sidecar.istio.io/inject=false", () => {
    const s = skipByPod(
      meshed({
        annotations: { "sidecar.istio.io/status": STATUS, "sidecar.istio.io/inject": "f" },
      }),
    );
    expect(s).to.deep.equal({
      rule: "injection-disabled",
      reason: "annotation sidecar.istio.io/inject=f",
    });
  });

  it("injection-disabled: the label wins over the annotation (label true, annotation false: meshed)", () => {
    const s = skipByPod(
      meshed({
        labels: { "sidecar.istio.io/inject": "true" },
        annotations: { "sidecar.istio.io/status": STATUS, "sidecar.istio.io/inject": "false" },
      }),
    );
    expect(s).to.equal(undefined);
  });

  it("injection-disabled: the label wins over the annotation (label false, annotation true: skipped)", () => {
    const s = skipByPod(
      meshed({
        labels: { "sidecar.istio.io/inject": "false" },
        annotations: { "sidecar.istio.io/status": STATUS, "sidecar.istio.io/inject": "true" },
      }),
    );
    expect(s?.rule).to.equal("injection-disabled");
  });

  it("injection-disabled: an unparsable inject value does not skip", () => {
    expect(skipByPod(meshed({ labels: { "sidecar.istio.io/inject": "enabled" } }))).to.equal(
      undefined,
    );
  });

  it("no-sidecar-status: no sidecar.istio.io/status annotation (the injector never saw the pod)", () => {
    const s = skipByPod(meshed({ annotations: {} }));
    expect(s?.rule).to.equal("no-sidecar-status");
  });

  it("a pod matching nothing is meshed", () => {
    expect(skipByPod(meshed())).to.equal(undefined);
  });

  it("first match wins: istio-init is reported over no-sidecar-status", () => {
    const s = skipByPod(meshed({ containerNames: ["istio-init", "istio-proxy"], annotations: {} }));
    expect(s?.rule).to.equal("istio-init");
  });

  it("first match wins: envoy-disabled over no-istio-proxy", () => {
    const s = skipByPod(
      meshed({ containerNames: ["web"], proxy: { env: { DISABLE_ENVOY: "true" }, args: [] } }),
    );
    expect(s?.rule).to.equal("envoy-disabled");
  });

  it("lacksSidecarStatus settles no-sidecar-status from annotations alone", () => {
    expect(lacksSidecarStatus({})).to.equal(true);
    expect(lacksSidecarStatus({ "sidecar.istio.io/status": "" })).to.equal(false);
  });
});

describe("cni pod facts", () => {
  it("from the status annotation: containers listed by the injector, no labels or proxy facts", () => {
    const f = podFactsFromAnnotations({ "sidecar.istio.io/status": STATUS });
    expect(f).to.deep.equal({
      source: "status-annotation",
      annotations: { "sidecar.istio.io/status": STATUS },
      containerNames: ["istio-validation", "istio-proxy"],
    });
    expect(skipByPod(f)).to.equal(undefined);
  });

  it("from the status annotation: istio-init listed -> skipped by istio-init", () => {
    const status = JSON.stringify({ initContainers: ["istio-init"], containers: ["istio-proxy"] });
    expect(
      skipByPod(podFactsFromAnnotations({ "sidecar.istio.io/status": status }))?.rule,
    ).to.equal("istio-init");
  });

  it("from the status annotation: native sidecar (istio-proxy among init containers) is meshed", () => {
    const status = JSON.stringify({
      initContainers: ["istio-validation", "istio-proxy"],
      containers: [],
    });
    expect(skipByPod(podFactsFromAnnotations({ "sidecar.istio.io/status": status }))).to.equal(
      undefined,
    );
  });

  for (const [what, value] of [
    ["not JSON", "{"],
    ["a list", "[]"],
    ["containers not a list", '{"containers":"istio-proxy"}'],
  ]) {
    it(`from the status annotation: ${what} is an InvalidAnnotationError naming it`, () => {
      expect(() => podFactsFromAnnotations({ "sidecar.istio.io/status": value }))
        .to.throw(InvalidAnnotationError, "sidecar.istio.io/status")
        .with.property("annotation", "sidecar.istio.io/status");
    });
  }

  it("from the pod object: labels, annotations, every container, istio-proxy's facts", () => {
    const pod: V1Pod = {
      metadata: {
        name: "web-0",
        namespace: "shop",
        labels: { app: "web" },
        annotations: { a: "1" },
      },
      spec: {
        initContainers: [{ name: "istio-validation" }],
        containers: [
          { name: "web" },
          {
            name: "istio-proxy",
            args: ["proxy", "sidecar"],
            env: [
              { name: "ISTIO_META_DNS_CAPTURE", value: "true" },
              { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            ],
            securityContext: { runAsUser: 1500, runAsGroup: 1600 },
          },
        ],
      },
    };
    expect(podFactsFromPod(pod)).to.deep.equal({
      source: "api",
      labels: { app: "web" },
      annotations: { a: "1" },
      containerNames: ["istio-validation", "web", "istio-proxy"],
      proxy: {
        runAsUser: 1500,
        runAsGroup: 1600,
        env: { ISTIO_META_DNS_CAPTURE: "true" },
        args: ["proxy", "sidecar"],
      },
    });
  });

  it("from the pod object: istio-proxy as a native sidecar (init container)", () => {
    const pod: V1Pod = {
      spec: {
        initContainers: [
          { name: "istio-proxy", restartPolicy: "Always", args: ["proxy", "sidecar"] },
        ],
        containers: [{ name: "web" }],
      },
    };
    const f = podFactsFromPod(pod);
    expect(f.proxy?.args).to.deep.equal(["proxy", "sidecar"]);
    expect(f.labels).to.deep.equal({});
    expect(f.annotations).to.deep.equal({});
  });
});
