// CNI results (SPEC.md section 5): validation of a result against its version, and conversion
// between the 0.3.0/0.3.1/0.4.0 shape and the 1.0.0/1.1.0 shape.

import { parseCidr, parseIp } from "../../base/ip";
import { CniError, ErrorCodes } from "./errors";
import { isSupportedVersion, resultFamily, type SupportedVersion } from "./versions";

export interface ResultInterface {
  name: string;
  mac?: string;
  /** 1.1.0 */
  mtu?: number;
  sandbox?: string;
  /** 1.1.0 */
  socketPath?: string;
  /** 1.1.0 */
  pciID?: string;
}

export interface ResultIp {
  /** 0.3.x / 0.4.0 only: "4" or "6". */
  version?: "4" | "6";
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
  /** 1.1.0 */
  mtu?: number;
  /** 1.1.0 */
  advmss?: number;
  /** 1.1.0 */
  priority?: number;
  /** 1.1.0 */
  table?: number;
  /** 1.1.0 */
  scope?: number;
}

export interface ResultDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: ResultInterface[];
  ips?: ResultIp[];
  routes?: ResultRoute[];
  dns?: ResultDns;
  [extra: string]: unknown;
}

type Json = Record<string, unknown>;

/**
 * Checks that `raw` is a valid result for `version` and returns it typed: the same object,
 * untouched except that a missing `cniVersion` is set to `version` (older results may omit
 * it; libcni injects the config's). A `cniVersion` from the other shape family is an error.
 * Throws a code 6 CniError naming the offending field, prefixed with `what`.
 */
export function parseResult(raw: unknown, version: SupportedVersion, what: string): CniResult {
  const fail = (field: string, problem: string): never => {
    throw new CniError(
      ErrorCodes.DecodingFailure,
      `invalid ${what}: ${field ? `${field} ` : ""}${problem}`,
      `${what} must be a CNI ${version} result`,
    );
  };
  if (!isObject(raw)) fail("", "is not a JSON object");
  const r = raw as Json;

  if (r.cniVersion === undefined || r.cniVersion === "") r.cniVersion = version;
  if (typeof r.cniVersion !== "string") return fail("cniVersion", "is not a string");
  if (!isSupportedVersion(r.cniVersion) || resultFamily(r.cniVersion) !== resultFamily(version)) {
    fail("cniVersion", `${JSON.stringify(r.cniVersion)} is not a ${version}-compatible version`);
  }

  const interfaces = optionalArray(r.interfaces, "interfaces", fail);
  for (const [i, itf] of (interfaces ?? []).entries()) {
    const at = `interfaces[${i}]`;
    if (!isObject(itf)) fail(at, "is not an object");
    const o = itf as Json;
    if (typeof o.name !== "string") fail(`${at}.name`, "is not a string");
    for (const key of ["mac", "sandbox", "socketPath", "pciID"]) {
      if (o[key] !== undefined && typeof o[key] !== "string")
        fail(`${at}.${key}`, "is not a string");
    }
    optionalUint(o.mtu, `${at}.mtu`, fail);
  }

  const ips = optionalArray(r.ips, "ips", fail);
  for (const [i, ip] of (ips ?? []).entries()) {
    const at = `ips[${i}]`;
    if (!isObject(ip)) fail(at, "is not an object");
    const o = ip as Json;
    cidrField(o.address, `${at}.address`, fail);
    if (o.gateway !== undefined) ipField(o.gateway, `${at}.gateway`, fail);
    if (o.version !== undefined && o.version !== "4" && o.version !== "6") {
      fail(`${at}.version`, 'must be "4" or "6"');
    }
    optionalUint(o.interface, `${at}.interface`, fail);
    if (typeof o.interface === "number" && interfaces && o.interface >= interfaces.length) {
      fail(`${at}.interface`, `${o.interface} is not an index into interfaces`);
    }
  }

  const routes = optionalArray(r.routes, "routes", fail);
  for (const [i, route] of (routes ?? []).entries()) {
    const at = `routes[${i}]`;
    if (!isObject(route)) fail(at, "is not an object");
    const o = route as Json;
    cidrField(o.dst, `${at}.dst`, fail);
    if (o.gw !== undefined) ipField(o.gw, `${at}.gw`, fail);
    for (const key of ["mtu", "advmss", "priority", "table", "scope"]) {
      optionalUint(o[key], `${at}.${key}`, fail);
    }
  }

  if (r.dns !== undefined) {
    if (!isObject(r.dns)) fail("dns", "is not an object");
    const dns = r.dns as Json;
    for (const key of ["nameservers", "search", "options"]) {
      const list = optionalArray(dns[key], `dns.${key}`, fail);
      if (list?.some((s) => typeof s !== "string")) fail(`dns.${key}`, "has a non-string entry");
    }
    if (dns.domain !== undefined && typeof dns.domain !== "string")
      fail("dns.domain", "is not a string");
  }
  return r as CniResult;
}

/**
 * The result in another version's shape, as libcni converts it: to 0.x, `ips[].version` is
 * derived from each address and the 1.1.0-only fields are dropped; to 1.x, `ips[].version` is
 * dropped. Keeps only the spec's top-level keys when the shape changes. Returns a new object.
 */
export function convertResult(result: CniResult, to: SupportedVersion): CniResult {
  const from = result.cniVersion;
  if (!isSupportedVersion(from)) {
    throw new CniError(ErrorCodes.IncompatibleVersion, `cannot convert a ${from} result`);
  }
  if (resultFamily(from) === resultFamily(to)) {
    return { ...structuredClone(result), cniVersion: to };
  }
  const toOld = resultFamily(to) === "0.x";
  const out: CniResult = { cniVersion: to };
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((i) =>
      toOld ? pick(i, ["name", "mac", "sandbox"]) : { ...i },
    );
  }
  if (result.ips) {
    out.ips = result.ips.map((ip) => {
      const { version: _drop, ...rest } = ip;
      if (!toOld) return { ...rest };
      const family = parseIp(parseCidr(ip.address).address);
      return { version: family === 4 ? "4" : "6", ...rest };
    });
  }
  if (result.routes) {
    out.routes = result.routes.map((r) => (toOld ? pick(r, ["dst", "gw"]) : { ...r }));
  }
  if (result.dns && Object.keys(result.dns).length > 0) out.dns = structuredClone(result.dns);
  return out;
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optionalArray(v: unknown, field: string, fail: Fail): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) fail(field, "is not an array");
  return v as unknown[];
}

function optionalUint(v: unknown, field: string, fail: Fail): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
    fail(field, "is not an unsigned integer");
}

type Fail = (field: string, problem: string) => never;

function ipField(v: unknown, field: string, fail: Fail): void {
  if (typeof v !== "string") fail(field, "is not a string");
  try {
    parseIp(v as string);
  } catch (e) {
    fail(field, (e as Error).message);
  }
}

function cidrField(v: unknown, field: string, fail: Fail): void {
  if (typeof v !== "string") fail(field, "is not a string");
  try {
    parseCidr(v as string);
  } catch (e) {
    fail(field, (e as Error).message);
  }
}
