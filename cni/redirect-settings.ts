// The per-pod redirect settings: what istio-iptables would be told for this pod, in a typed
// form. Parsed from pod annotations and the istio-proxy container (see parseRedirectSettings
// once implemented); turned into map entries by the datapath module.
// The contract: ../shared/reference/istio-capture-contract.md ("Parameters per pod").

/** Ports fixed by Istio's contract. */
export const ISTIO_PORTS = {
  outboundCapture: 15001,
  inboundCapture: 15006,
  tunnel: 15008,
  dnsCapture: 15053,
} as const;

/** Inbound ports never captured when includeInboundPorts is "*". */
export const ALWAYS_EXCLUDED_INBOUND_PORTS: readonly number[] = [15020, 15021, 15090];

/** excludeOutboundPorts when the annotation is absent (the annotation replaces it). */
export const DEFAULT_EXCLUDED_OUTBOUND_PORTS: readonly number[] = [15020];

export type InterceptionMode = "REDIRECT" | "TPROXY";

export interface RedirectSettings {
  /** The proxy runs as this uid OR this gid ("P" in the contract). */
  proxyUid: number;
  proxyGid: number;
  outbound: {
    /** "*" captures every destination; [] disables outbound capture; else CIDR strings. */
    includeIPRanges: "*" | string[];
    /** CIDR strings (IPv4 and IPv6 mixed), normalised ("10.0.0.0/8", "fd00::/8"). */
    excludeIPRanges: string[];
    includePorts: number[];
    /** Defaults to DEFAULT_EXCLUDED_OUTBOUND_PORTS when the annotation is absent. */
    excludePorts: number[];
  };
  inbound: {
    /** "*" captures every port but excludePorts; [] captures nothing; else exactly these. */
    includePorts: "*" | number[];
    /** Always contains ALWAYS_EXCLUDED_INBOUND_PORTS. */
    excludePorts: number[];
  };
  /** Traffic through these interfaces is never captured (row X1). */
  excludeInterfaces: string[];
  interceptionMode: InterceptionMode;
  /** ISTIO_META_DNS_CAPTURE=true on the istio-proxy container. */
  dnsCapture: boolean;
  /** ISTIO_DUAL_STACK=true on the istio-proxy container. */
  dualStack: boolean;
}

/** Settings of a pod with no annotations and a default istio-proxy container. */
export function defaultRedirectSettings(): RedirectSettings {
  return {
    proxyUid: 1337,
    proxyGid: 1337,
    outbound: {
      includeIPRanges: "*",
      excludeIPRanges: [],
      includePorts: [],
      excludePorts: [...DEFAULT_EXCLUDED_OUTBOUND_PORTS],
    },
    inbound: { includePorts: "*", excludePorts: [...ALWAYS_EXCLUDED_INBOUND_PORTS] },
    excludeInterfaces: [],
    interceptionMode: "REDIRECT",
    dnsCapture: false,
    dualStack: false,
  };
}
