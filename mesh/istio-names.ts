// Every Istio pod annotation and istio-proxy environment variable that shapes sidecar
// redirection, and what waggle does with each: honours it, refuses the pod (ignoring it
// would change where traffic goes), or ignores it (it would not). Checked against istio-cni's
// annotation registry and pod reader (cni/pkg/plugin), istio-iptables' settings
// (tools/istio-iptables/pkg/cmd) and istio/api's annotation list. The ignored ones are listed
// with their reason in conf/README.md; test/unit/istio-names.test.ts holds this list, the code
// and that table together.
import { DISABLE_ENVOY_ENV, INJECT_KEY, SIDECAR_STATUS_ANNOTATION } from "./pod-selection";
import { PROXY_ENV, REFUSED_ANNOTATIONS, TRAFFIC_ANNOTATIONS } from "./redirect-settings";

export type Handling = "honoured" | "refused" | "ignored";

export interface IstioName {
  name: string;
  /** A pod annotation, or an environment variable of the istio-proxy container. */
  kind: "annotation" | "proxy env";
  handling: Handling;
  /** Why an ignored name changes nothing about where traffic goes (conf/README.md). */
  reason?: string;
}

const honoured = (name: string, kind: IstioName["kind"]): IstioName => ({
  name,
  kind,
  handling: "honoured",
});

/**
 * What istio-iptables reads from its own environment when it runs as the istio-init
 * container (istio/pkg/flag derives each name from its flag). Under istio-cni they are never
 * read from the pod: istio-cni passes its settings from the annotations.
 */
const ISTIO_INIT_ONLY_ENV = [
  "ISTIO_INBOUND_INTERCEPTION_MODE",
  "ISTIO_INBOUND_TPROXY_MARK",
  "ISTIO_INBOUND_TPROXY_ROUTE_TABLE",
  "ISTIO_INBOUND_PORTS",
  "ISTIO_LOCAL_EXCLUDE_PORTS",
  "ISTIO_EXCLUDE_INTERFACES",
  "ISTIO_SERVICE_CIDR",
  "ISTIO_SERVICE_EXCLUDE_CIDR",
  "ISTIO_OUTBOUND_PORTS",
  "ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE",
  "INBOUND_CAPTURE_PORT",
  "INBOUND_TUNNEL_PORT",
  "PROXY_UID",
  "PROXY_GID",
  "KUBE_VIRT_INTERFACES",
  "REDIRECT_DNS",
  "CAPTURE_ALL_DNS",
  "DROP_INVALID",
  "DUAL_STACK",
] as const;

const ISTIO_INIT_ONLY_REASON =
  "istio-iptables reads it from its own environment in the istio-init container; istio-cni never reads it from the pod (its value comes from an annotation or is fixed), and waggle leaves pods with an istio-init container alone";

const AMBIENT_REASON =
  "Istio ambient mode (ztunnel) only; istio-cni's sidecar path ignores it and waggle supports sidecar mode only";

export const ISTIO_NAMES: readonly IstioName[] = [
  ...Object.values(TRAFFIC_ANNOTATIONS).map((n) => honoured(n, "annotation")),
  honoured(INJECT_KEY, "annotation"),
  honoured(SIDECAR_STATUS_ANNOTATION, "annotation"),
  ...Object.values(REFUSED_ANNOTATIONS).map(
    (name): IstioName => ({ name, kind: "annotation", handling: "refused" }),
  ),
  ...Object.values(PROXY_ENV).map((n) => honoured(n, "proxy env")),
  honoured(DISABLE_ENVOY_ENV, "proxy env"),
  {
    name: "status.sidecar.istio.io/port",
    kind: "annotation",
    handling: "ignored",
    reason:
      "the proxy's status port (15020 by default); istio-cni registers it but never reads it for redirection (15020 is excluded inbound always and outbound by default)",
  },
  {
    name: "traffic.istio.io/nodeSelector",
    kind: "annotation",
    handling: "ignored",
    reason: "a Service annotation for gateways' node ports; no pod redirection reads it",
  },
  {
    name: "proxy.istio.io/config",
    kind: "annotation",
    handling: "ignored",
    reason:
      "the proxy's own configuration; the injector turns its interceptionMode into sidecar.istio.io/interceptionMode, which waggle reads, and istio-cni reads nothing else from it",
  },
  {
    name: "ambient.istio.io/redirection",
    kind: "annotation",
    handling: "ignored",
    reason: AMBIENT_REASON,
  },
  {
    name: "ambient.istio.io/bypass-inbound-capture",
    kind: "annotation",
    handling: "ignored",
    reason: AMBIENT_REASON,
  },
  {
    name: "ambient.istio.io/dns-capture",
    kind: "annotation",
    handling: "ignored",
    reason: AMBIENT_REASON,
  },
  {
    name: "INVALID_DROP",
    kind: "proxy env",
    handling: "ignored",
    reason:
      "istio-iptables then drops packets conntrack calls INVALID, which would otherwise reach the pod without their NAT undone; waggle translates no addresses, so such a packet reaches the socket it belongs to either way",
  },
  ...ISTIO_INIT_ONLY_ENV.map(
    (name): IstioName => ({
      name,
      kind: "proxy env",
      handling: "ignored",
      reason: ISTIO_INIT_ONLY_REASON,
    }),
  ),
];

/** The names handled one way, in list order. */
export function istioNames(handling: Handling, kind?: IstioName["kind"]): string[] {
  return ISTIO_NAMES.filter((n) => n.handling === handling && (!kind || n.kind === kind)).map(
    (n) => n.name,
  );
}
