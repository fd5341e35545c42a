// Strict IP and CIDR parsing (as Go's netip.ParsePrefix accepts them), shared by result
// validation and the pod's redirect settings. Not node:net's isIP: loading node:net (and the
// stream modules under it) cost every CNI call 4-8 ms here (docs/benchmarks.md).

/**
 * 4 or 6 when `text` is an IP address as node:net's isIP accepts it, else 0 (a property test
 * holds the two together): IPv4 as four decimal numbers 0-255 without leading zeros; IPv6 as
 * the WHATWG URL parser reads a bracketed host (the standard textual forms, an embedded IPv4
 * included), from hex digits, colons and dots only, so never with a zone.
 */
export function ipFamily(text: string): 0 | 4 | 6 {
  if (text.includes(":")) {
    if (!/^[0-9A-Fa-f:.]+$/.test(text)) return 0;
    try {
      new URL(`http://[${text}]/`);
      return 6;
    } catch {
      return 0;
    }
  }
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) return 0;
  return text.split(".").every((n) => (n === "0" || !n.startsWith("0")) && Number(n) <= 255)
    ? 4
    : 0;
}

export interface Cidr {
  /** The address as written, without the prefix length ("10.1.2.3"). */
  address: string;
  prefixLength: number;
  family: 4 | 6;
}

/**
 * Parses "ADDRESS/PREFIX". Throws an Error saying what is wrong: a missing "/", an invalid
 * address (leading zeros and IPv6 zones are refused), or a prefix length out of range.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  if (slash < 0) throw new Error(`${JSON.stringify(text)} has no "/prefix-length"`);
  const address = text.slice(0, slash);
  const prefix = text.slice(slash + 1);
  const family = ipFamily(address);
  if (family === 0) {
    throw new Error(`${JSON.stringify(text)}: ${JSON.stringify(address)} is not an IP address`);
  }
  const max = family === 4 ? 32 : 128;
  if (!/^(0|[1-9]\d{0,2})$/.test(prefix) || Number(prefix) > max) {
    throw new Error(`${JSON.stringify(text)}: prefix length must be 0-${max}`);
  }
  return { address, prefixLength: Number(prefix), family };
}

/** The network of a CIDR in canonical form with host bits cleared: "10.1.2.3/8" -> "10.0.0.0/8". */
export function normalizeCidr(text: string): string {
  const { address, prefixLength, family } = parseCidr(text);
  // Required here: loading ip-address costs tens of ms, and VERSION or an unmeshed pod's ADD
  // never needs it.
  const { Address4, Address6 } = require("ip-address") as typeof import("ip-address");
  const parsed =
    family === 4
      ? new Address4(`${address}/${prefixLength}`)
      : new Address6(`${address}/${prefixLength}`);
  return `${parsed.startAddress().correctForm()}/${prefixLength}`;
}

/** An IP address without prefix (IPv6 zones refused); returns its family or throws. */
export function parseIp(text: string): 4 | 6 {
  const family = ipFamily(text);
  if (family === 0) {
    throw new Error(`${JSON.stringify(text)} is not an IP address`);
  }
  return family;
}
