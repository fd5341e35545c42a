// Which pods waggle leaves alone: istio-cni's selection, first match wins, every skip with a
// rule name and a reason for the log. The contract: docs/capture-contract.md, "Pods the plugin
// leaves alone" (the rules below in its order).
import { InvalidAnnotationError, type ProxyContainerFacts, parseGoBool } from "./redirect-settings";

export const ISTIO_INIT = "istio-init";
export const ISTIO_PROXY = "istio-proxy";
/** Label (preferred) and annotation turning injection on or off. */
export const INJECT_KEY = "sidecar.istio.io/inject";
/** istio-proxy environment variable that leaves the pod alone when true (envoy-disabled). */
export const DISABLE_ENVOY_ENV = "DISABLE_ENVOY";
/** Written by the injector; lists the containers it injected. */
export const SIDECAR_STATUS_ANNOTATION = "sidecar.istio.io/status";

/** The pod identity from CNI_ARGS (containerd/CRI-O names). */
export interface K8sPodArgs {
  namespace?: string;
  name?: string;
  uid?: string;
  infraContainerId?: string;
}

/** What selection and the redirect settings need to know about a pod. */
export interface PodFacts {
  /**
   * "api": read from the pod object. "status-annotation": derived from the runtime's pod
   * annotations alone (see podFactsFromAnnotations), labels and proxy settings unknown.
   */
  source: "api" | "status-annotation";
  /** undefined when unknown (no API read). */
  labels?: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  /** Names of every container, init containers included (native sidecars are init containers). */
  containerNames: readonly string[];
  /** istio-proxy's settings when known. */
  proxy?: ProxyContainerFacts;
}

/** The rules in istio-cni's order (first match wins). */
export const SELECTION_RULES = [
  "not-kubernetes",
  "excluded-namespace",
  "istio-init",
  "envoy-disabled",
  "no-istio-proxy",
  "not-a-sidecar",
  "injection-disabled",
  "no-sidecar-status",
] as const;

export type SelectionRule = (typeof SELECTION_RULES)[number];

/** Why a pod is left alone. */
export interface Skip {
  rule: SelectionRule;
  reason: string;
}

/** not-kubernetes and excluded-namespace, decided from CNI_ARGS and the config alone. */
export function skipByArgs(
  pod: K8sPodArgs,
  excludeNamespaces: readonly string[],
): Skip | undefined {
  if (!pod.name || !pod.namespace) {
    return {
      rule: "not-kubernetes",
      reason: "no K8S_POD_NAME / K8S_POD_NAMESPACE in CNI_ARGS: not a Kubernetes pod",
    };
  }
  if (excludeNamespaces.includes(pod.namespace)) {
    return {
      rule: "excluded-namespace",
      reason: `namespace ${pod.namespace} is in exclude_namespaces`,
    };
  }
  return undefined;
}

/** istio-init through no-sidecar-status, in istio-cni's order, from the pod's facts. */
export function skipByPod(facts: PodFacts): Skip | undefined {
  if (facts.containerNames.includes(ISTIO_INIT)) {
    return {
      rule: "istio-init",
      reason: "pod has an istio-init container (it redirects with iptables itself)",
    };
  }
  const disableEnvoy = facts.proxy?.env[DISABLE_ENVOY_ENV];
  if (disableEnvoy !== undefined && parseGoBool(disableEnvoy) === true) {
    return { rule: "envoy-disabled", reason: `istio-proxy has DISABLE_ENVOY=${disableEnvoy}` };
  }
  if (!facts.containerNames.includes(ISTIO_PROXY)) {
    return {
      rule: "no-istio-proxy",
      reason: `pod has no istio-proxy container (has ${[...facts.containerNames].sort().join(", ") || "none"})`,
    };
  }
  const args = facts.proxy?.args ?? [];
  if (args.length >= 2 && args[0] === "proxy" && args[1] !== "" && args[1] !== "sidecar") {
    return { rule: "not-a-sidecar", reason: `istio-proxy runs "proxy ${args[1]}", not a sidecar` };
  }
  const injectLabel = facts.labels?.[INJECT_KEY];
  const inject = injectLabel ?? facts.annotations[INJECT_KEY];
  if (inject !== undefined && parseGoBool(inject) === false) {
    const where = injectLabel !== undefined ? "label" : "annotation";
    return { rule: "injection-disabled", reason: `${where} ${INJECT_KEY}=${inject}` };
  }
  if (!Object.hasOwn(facts.annotations, SIDECAR_STATUS_ANNOTATION)) {
    return {
      rule: "no-sidecar-status",
      reason: `no ${SIDECAR_STATUS_ANNOTATION} annotation: not injected`,
    };
  }
  return undefined;
}

/**
 * no-sidecar-status on its own: a pod without the sidecar status annotation is never meshed,
 * whatever the other rules say, so annotations from the runtime settle it without an API read.
 */
export function lacksSidecarStatus(annotations: Readonly<Record<string, string>>): boolean {
  return !Object.hasOwn(annotations, SIDECAR_STATUS_ANNOTATION);
}

/**
 * Pod facts from the runtime's annotations alone (no kubeconfig configured): the injector's
 * `sidecar.istio.io/status` lists the injected init containers and containers, which settles
 * istio-init and no-istio-proxy. Labels, DISABLE_ENVOY, the proxy's args, uid/gid and env are
 * unknown: envoy-disabled and not-a-sidecar cannot match, injection-disabled reads the
 * annotation only, and the redirect uses istio-proxy's defaults (uid/gid 1337, DNS capture and
 * dual stack off).
 * @throws InvalidAnnotationError when the status annotation is not the injector's JSON.
 */
export function podFactsFromAnnotations(annotations: Readonly<Record<string, string>>): PodFacts {
  const raw = annotations[SIDECAR_STATUS_ANNOTATION] ?? "";
  let status: { initContainers?: unknown; containers?: unknown };
  try {
    status = JSON.parse(raw) as typeof status;
  } catch {
    throw new InvalidAnnotationError(SIDECAR_STATUS_ANNOTATION, raw, "not the injector's JSON");
  }
  const names = (v: unknown, field: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((n) => typeof n !== "string")) {
      throw new InvalidAnnotationError(
        SIDECAR_STATUS_ANNOTATION,
        raw,
        `${field} is not a list of names`,
      );
    }
    return v as string[];
  };
  if (typeof status !== "object" || status === null || Array.isArray(status)) {
    throw new InvalidAnnotationError(SIDECAR_STATUS_ANNOTATION, raw, "not a JSON object");
  }
  return {
    source: "status-annotation",
    annotations,
    containerNames: [
      ...names(status.initContainers, "initContainers"),
      ...names(status.containers, "containers"),
    ],
  };
}
