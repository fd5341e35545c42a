// The per-pod redirect settings: what istio-iptables would be told for this pod, in a typed
// form. Parsed from pod annotations and the istio-proxy container (see parseRedirectSettings
// once implemented); turned into map entries by the datapath module.
// The contract: docs/capture-contract.md ("Per-pod settings").
import { normalizeCidr } from "../base/ip";

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
  /**
   * waggle.io/socket-bypass: false opts the pod out of the socket bypass (its connections
   * always go through TCP, so TC shaping such as the bandwidth plugin sees all its payload).
   * Absent: the pod takes part whenever the node's bypass is on.
   */
  socketBypass?: boolean;
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

// ---------------------------------------------------------------------------------------------
// Parsing: pod annotations and the istio-proxy container -> RedirectSettings, with istio-cni's
// validation (an invalid value fails the pod's ADD with an error naming the annotation).

/** The annotations that shape the redirection (istio.io/api annotation names). */
export const TRAFFIC_ANNOTATIONS = {
  interceptionMode: "sidecar.istio.io/interceptionMode",
  includeOutboundIPRanges: "traffic.sidecar.istio.io/includeOutboundIPRanges",
  excludeOutboundIPRanges: "traffic.sidecar.istio.io/excludeOutboundIPRanges",
  includeOutboundPorts: "traffic.sidecar.istio.io/includeOutboundPorts",
  excludeOutboundPorts: "traffic.sidecar.istio.io/excludeOutboundPorts",
  includeInboundPorts: "traffic.sidecar.istio.io/includeInboundPorts",
  excludeInboundPorts: "traffic.sidecar.istio.io/excludeInboundPorts",
  excludeInterfaces: "traffic.sidecar.istio.io/excludeInterfaces",
} as const;

/** waggle's own pod annotations. */
export const WAGGLE_ANNOTATIONS = {
  /** "false" (any Go boolean) opts the pod out of the socket bypass. */
  socketBypass: "waggle.io/socket-bypass",
} as const;

/**
 * Annotations asking for capture waggle does not implement, where ignoring them would let
 * traffic bypass the proxy: a pod carrying one (non-empty) is refused, code 101.
 * Both name the interfaces of a KubeVirt VM whose forwarded traffic Istio sends to 15001
 * (`istio.io/reroute-virtual-interfaces` is the current name; istio-cni reads the other
 * only when it is absent). Forwarded packets never pass a socket hook, so waggle's cgroup
 * programs cannot see them.
 */
export const REFUSED_ANNOTATIONS = {
  rerouteVirtualInterfaces: "istio.io/reroute-virtual-interfaces",
  kubevirtInterfaces: "traffic.sidecar.istio.io/kubevirtInterfaces",
} as const;

/** Why a pod with a REFUSED_ANNOTATIONS entry is refused (in the CNI error). */
export const VIRTUAL_INTERFACES_REFUSAL =
  "capture of traffic forwarded from VM interfaces is not implemented by waggle (the VM's connections would bypass the proxy); remove the annotation or leave this pod to istio-cni";

/** istio-proxy environment variables that shape the redirection (Go booleans). */
export const PROXY_ENV = {
  dnsCapture: "ISTIO_META_DNS_CAPTURE",
  dualStack: "ISTIO_DUAL_STACK",
} as const;

/** What the redirection needs to know about the pod's istio-proxy container. */
export interface ProxyContainerFacts {
  /** securityContext.runAsUser of istio-proxy, when set. */
  runAsUser?: number;
  /** securityContext.runAsGroup of istio-proxy, when set. */
  runAsGroup?: number;
  /** istio-proxy's literal env values (valueFrom entries are not resolved, as in istio-cni). */
  env: Record<string, string>;
  args: string[];
}

/** An annotation whose value does not parse; the message names the annotation and value. */
export class InvalidAnnotationError extends Error {
  constructor(
    readonly annotation: string,
    readonly value: string,
    readonly problem: string,
  ) {
    super(`annotation ${annotation}=${JSON.stringify(shortened(value))} is invalid: ${problem}`);
    this.name = "InvalidAnnotationError";
  }
}

/** A value as an error message quotes it: annotations may be 256 KiB long. */
function shortened(value: string, max = 120): string {
  return value.length <= max ? value : `${value.slice(0, max)}... (${value.length} characters)`;
}

/**
 * The pod's redirect settings from its annotations and istio-proxy facts (absent facts mean a
 * default istio-proxy: uid/gid 1337, DNS capture and dual stack off). Mirrors istio-cni:
 * - CIDR lists are comma separated, no spaces; "*" alone means every destination;
 * - port lists are comma separated (spaces around a port allowed), 0-65535; "*" alone is
 *   accepted only for includeInboundPorts (istio-iptables cannot apply it to the others:
 *   its rules would fail, failing the ADD, so waggle refuses it up front);
 * - an empty includeOutboundIPRanges / includeInboundPorts disables that capture;
 * - excludeInboundPorts always gains 15020, 15021, 15090; it defaults to 15020 (so does
 *   excludeOutboundPorts, which the annotation replaces);
 * - proxy uid/gid come from runAsUser/runAsGroup when set and non-zero, each independently;
 * - ISTIO_META_DNS_CAPTURE / ISTIO_DUAL_STACK are Go booleans; an unparsable value is off
 *   (reported through `warn`), as istio-cni only logs it;
 * - a non-empty REFUSED_ANNOTATIONS entry (VM interfaces) is refused: not implemented.
 * @throws InvalidAnnotationError naming the first invalid annotation.
 */
export function parseRedirectSettings(
  annotations: Readonly<Record<string, string>>,
  proxy?: ProxyContainerFacts,
  warn: (message: string) => void = () => {},
): RedirectSettings {
  const a = TRAFFIC_ANNOTATIONS;
  const get = (key: string): string | undefined =>
    Object.hasOwn(annotations, key) ? annotations[key] : undefined;

  const mode = get(a.interceptionMode) ?? "REDIRECT";
  if (mode !== "REDIRECT" && mode !== "TPROXY") {
    throw new InvalidAnnotationError(a.interceptionMode, mode, 'must be "REDIRECT" or "TPROXY"');
  }
  for (const name of Object.values(REFUSED_ANNOTATIONS)) {
    const value = get(name);
    if (value !== undefined && value !== "")
      throw new InvalidAnnotationError(name, value, VIRTUAL_INTERFACES_REFUSAL);
  }

  const includeRanges = get(a.includeOutboundIPRanges) ?? "*";
  const excludeInboundRaw = get(a.excludeInboundPorts) ?? "";
  const includeInbound = get(a.includeInboundPorts) ?? "*";
  const excludeOutbound = get(a.excludeOutboundPorts);

  const settings: RedirectSettings = {
    proxyUid: positiveOr(proxy?.runAsUser, 1337),
    proxyGid: positiveOr(proxy?.runAsGroup, 1337),
    outbound: {
      includeIPRanges:
        includeRanges === "*" ? "*" : cidrList(a.includeOutboundIPRanges, includeRanges),
      excludeIPRanges: cidrList(a.excludeOutboundIPRanges, get(a.excludeOutboundIPRanges) ?? ""),
      includePorts: portList(a.includeOutboundPorts, get(a.includeOutboundPorts) ?? ""),
      excludePorts:
        excludeOutbound === undefined
          ? [...DEFAULT_EXCLUDED_OUTBOUND_PORTS]
          : portList(a.excludeOutboundPorts, excludeOutbound),
    },
    inbound: {
      includePorts:
        includeInbound.trim() === "*" ? "*" : portList(a.includeInboundPorts, includeInbound),
      excludePorts: unique([
        ...portList(a.excludeInboundPorts, excludeInboundRaw),
        ...ALWAYS_EXCLUDED_INBOUND_PORTS,
      ]),
    },
    excludeInterfaces: interfaceList(a.excludeInterfaces, get(a.excludeInterfaces) ?? ""),
    interceptionMode: mode,
    dnsCapture: envBool(proxy, PROXY_ENV.dnsCapture, warn),
    dualStack: envBool(proxy, PROXY_ENV.dualStack, warn),
  };
  const bypass = get(WAGGLE_ANNOTATIONS.socketBypass);
  if (bypass !== undefined) {
    const on = parseGoBool(bypass);
    if (on === undefined)
      throw new InvalidAnnotationError(
        WAGGLE_ANNOTATIONS.socketBypass,
        bypass,
        "must be a boolean",
      );
    settings.socketBypass = on;
  }
  return settings;
}

/**
 * Go's strconv.ParseBool, which istio uses for every boolean it reads from pods:
 * true for 1 t T TRUE true True, false for 0 f F FALSE false False, undefined otherwise.
 */
export function parseGoBool(value: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  return undefined;
}

function positiveOr(v: number | undefined, fallback: number): number {
  return v !== undefined && Number.isInteger(v) && v > 0 ? v : fallback;
}

function envBool(
  proxy: ProxyContainerFacts | undefined,
  name: string,
  warn: (message: string) => void,
): boolean {
  const value = proxy?.env[name];
  if (value === undefined) return false;
  const parsed = parseGoBool(value);
  if (parsed === undefined)
    warn(`istio-proxy env ${name}=${JSON.stringify(value)} is not a boolean; treated as false`);
  return parsed ?? false;
}

/**
 * Entries an IP-range annotation may list: each is an entry in a map all pods share, which is
 * sized for every pod at this limit (docs/datapath.md, "Limits").
 */
export const MAX_CIDRS_PER_ANNOTATION = 256;

function cidrList(annotation: string, value: string): string[] {
  if (value === "") return [];
  const items = value.split(",");
  if (items.length > MAX_CIDRS_PER_ANNOTATION) {
    throw new InvalidAnnotationError(
      annotation,
      value,
      `lists ${items.length} ranges; at most ${MAX_CIDRS_PER_ANNOTATION} (a shared map holds them for every pod)`,
    );
  }
  const out: string[] = [];
  for (const item of items) {
    try {
      out.push(normalizeCidr(item));
    } catch (e) {
      throw new InvalidAnnotationError(annotation, value, (e as Error).message);
    }
  }
  return unique(out);
}

function portList(annotation: string, value: string): number[] {
  const trimmed = value.trim();
  if (trimmed === "") return [];
  const out: number[] = [];
  for (const item of trimmed.split(",")) {
    const port = item.trim();
    if (port === "*") {
      throw new InvalidAnnotationError(
        annotation,
        value,
        '"*" is only valid for includeInboundPorts',
      );
    }
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
      throw new InvalidAnnotationError(
        annotation,
        value,
        `port ${JSON.stringify(port)} is not a number 0-65535`,
      );
    }
    out.push(Number(port));
  }
  return unique(out);
}

const INTERFACE_NAME = /^[a-zA-Z][a-zA-Z0-9_.-]*$/;

function interfaceList(annotation: string, value: string): string[] {
  if (value === "") return [];
  const out: string[] = [];
  for (const item of value.split(",")) {
    const name = item.trim();
    let problem: string | undefined;
    if (name === "") problem = "empty interface name";
    else if (name.length > 15)
      problem = `interface name ${JSON.stringify(name)} is longer than 15 characters`;
    else if (!INTERFACE_NAME.test(name))
      problem = `interface name ${JSON.stringify(name)} has invalid characters`;
    if (problem) throw new InvalidAnnotationError(annotation, value, problem);
    out.push(name);
  }
  return unique(out);
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}
