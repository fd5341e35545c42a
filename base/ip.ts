// Strict IP and CIDR parsing (as Go's netip.ParsePrefix accepts them), shared by result
// validation, the pod's redirect settings and the datapath's keys. Not node:net's isIP: loading
// node:net (and the stream modules under it) cost every CNI call 4-8 ms here; and not the
// ip-address library either: its load and first calls were 4-5 ms of a meshed ADD
// (docs/benchmarks.md). IPv6 text is read and written by the URL parser (WHATWG), whose
// serialization is RFC 5952's canonical form; property tests hold both to ip-address.

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
  const cidr = parseCidr(text);
  return `${cidrNetwork(cidr)}/${cidr.prefixLength}`;
}

/** A CIDR's network address (host bits cleared) in canonical text: dotted quad or RFC 5952. */
export function cidrNetwork({ address, prefixLength, family }: Cidr): string {
  const bytes = ipBytes(address);
  const hostBits = (family === 4 ? 32 : 128) - prefixLength;
  for (let bit = 0; bit < hostBits; bit++) {
    const i = 15 - (bit >> 3);
    bytes[i] = (bytes[i] as number) & ~(1 << (bit & 7));
  }
  return family === 4 ? ipv4Text(bytes) : ipv6Text(bytes);
}

/**
 * An address's 16 bytes in network order, IPv4 as ::ffff:a.b.c.d; throws an Error naming a
 * value that is no address (parseIp).
 */
export function ipBytes(text: string): Uint8Array {
  const out = new Uint8Array(16);
  const canonical = canonicalIp(text);
  if (!canonical.includes(":")) {
    out[10] = 0xff;
    out[11] = 0xff;
    canonical.split(".").forEach((n, i) => {
      out[12 + i] = Number(n);
    });
    return out;
  }
  // canonicalIp's IPv6 form: lowercase hex groups, "::" at most once, no embedded IPv4.
  const [head = "", tail] = canonical.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  const all = [...front, ...Array<string>(8 - front.length - back.length).fill("0"), ...back];
  all.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/**
 * An address in canonical text: IPv4 as written (parseIp takes only the canonical dotted quad),
 * IPv6 in RFC 5952's form as the URL parser writes it. Throws an Error naming a value that is no
 * address (parseIp).
 */
export function canonicalIp(text: string): string {
  return parseIp(text) === 4 ? text : new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** IPv6 text of 16 bytes, canonical (RFC 5952: lowercase, the longest zero run as "::"). */
export function ipv6Text(bytes: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  }
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/** Dotted quad of the last four of 16 bytes (an IPv4 address as ipBytes stores it). */
export function ipv4Text(bytes: Uint8Array): string {
  return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
}

/** Whether 16 bytes are an IPv4-mapped address (::ffff:a.b.c.d). */
export function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** An IP address without prefix (IPv6 zones refused); returns its family or throws. */
export function parseIp(text: string): 4 | 6 {
  const family = ipFamily(text);
  if (family === 0) {
    throw new Error(`${JSON.stringify(text)} is not an IP address`);
  }
  return family;
}
