// Decoding the request configuration on stdin (SPEC.md section 3, "Deriving request
// configuration"): JSON, the version check, the network name, runtimeConfig and prevResult.
import { CniError, ErrorCodes } from "./errors";
import { type CniResult, parseResult } from "./result";
import {
  isSemver,
  isSupportedVersion,
  SUPPORTED_VERSIONS,
  type SupportedVersion,
} from "./versions";

/** The protocol fields of a request configuration; the whole object is in `raw`. */
export interface NetConf {
  cniVersion: SupportedVersion;
  name: string;
  type: string;
  /** Capability arguments the runtime passed (only those the entry declared). */
  runtimeConfig: Record<string, unknown>;
  /** The previous plugin's result, validated for cniVersion; absent on a chain's first ADD. */
  prevResult?: CniResult;
  /** The decoded stdin object, every key as received. */
  raw: Record<string, unknown>;
}

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Bounds on stdin. A real request is a few KiB (a pod's annotations are capped at 256 KiB by
 * the API server); nesting beyond a few levels means a hostile or broken caller, and would
 * overflow the stack where the result is written back.
 */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
export const MAX_CONFIG_DEPTH = 64;

/** Parses stdin as a JSON object within the size and depth bounds (code 6 otherwise). */
export function decodeJsonObject(stdin: string): Record<string, unknown> {
  if (Buffer.byteLength(stdin) > MAX_CONFIG_BYTES) {
    throw new CniError(
      ErrorCodes.DecodingFailure,
      "error decoding network config: too large",
      `${Buffer.byteLength(stdin)} bytes; at most ${MAX_CONFIG_BYTES}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(
      ErrorCodes.DecodingFailure,
      "error decoding network config: not JSON",
      (e as Error).message,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CniError(
      ErrorCodes.DecodingFailure,
      "error decoding network config: not a JSON object",
    );
  }
  if (jsonDepth(value) > MAX_CONFIG_DEPTH) {
    throw new CniError(
      ErrorCodes.DecodingFailure,
      "error decoding network config: nested too deeply",
      `more than ${MAX_CONFIG_DEPTH} levels of objects and arrays`,
    );
  }
  return value as Record<string, unknown>;
}

/** How many levels of objects and arrays a parsed JSON value has (iterative: no recursion). */
function jsonDepth(root: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    if (typeof value !== "object" || value === null) continue;
    if (depth > max) max = depth;
    if (max > MAX_CONFIG_DEPTH) return max;
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  return max;
}

/**
 * The config's cniVersion as the error JSON should echo it: the config's own when it is a
 * well-formed version, else the newest supported one.
 */
export function replyVersion(raw: Record<string, unknown> | undefined): string {
  const v = raw?.cniVersion;
  return typeof v === "string" && isSemver(v)
    ? v
    : SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1];
}

/**
 * Validates the decoded configuration: cniVersion (code 6 when not a string, code 1 when not
 * supported; a missing one means 0.1.0, as libcni reads it), network name (code 7), type,
 * runtimeConfig (code 6) and, when `withPrevResult`, prevResult (code 6). Commands that never
 * read prevResult (DEL, GC, STATUS) leave it unparsed: a detail of it they do not use must not
 * fail them (a DEL that fails blocks a pod's teardown).
 */
export function parseNetConf(raw: Record<string, unknown>, withPrevResult = true): NetConf {
  const version = raw.cniVersion ?? "0.1.0";
  if (typeof version !== "string") {
    throw new CniError(
      ErrorCodes.DecodingFailure,
      "error decoding network config: cniVersion is not a string",
    );
  }
  if (!isSupportedVersion(version)) {
    throw new CniError(
      ErrorCodes.IncompatibleVersion,
      "incompatible CNI versions",
      `config is ${JSON.stringify(version)}, plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
    );
  }
  const name = raw.name;
  if (typeof name !== "string" || name === "") {
    throw new CniError(ErrorCodes.InvalidConfig, "missing network name");
  }
  if (!NETWORK_NAME.test(name)) {
    throw new CniError(ErrorCodes.InvalidConfig, "invalid characters found in network name", name);
  }
  if (raw.type !== undefined && typeof raw.type !== "string") {
    throw new CniError(
      ErrorCodes.DecodingFailure,
      "error decoding network config: type is not a string",
    );
  }
  const runtimeConfig = raw.runtimeConfig ?? {};
  if (typeof runtimeConfig !== "object" || runtimeConfig === null || Array.isArray(runtimeConfig)) {
    throw new CniError(
      ErrorCodes.DecodingFailure,
      "error decoding network config: runtimeConfig is not an object",
    );
  }
  const conf: NetConf = {
    cniVersion: version,
    name,
    type: (raw.type as string | undefined) ?? "",
    runtimeConfig: runtimeConfig as Record<string, unknown>,
    raw,
  };
  if (withPrevResult && raw.prevResult !== undefined && raw.prevResult !== null) {
    conf.prevResult = parseResult(raw.prevResult, version, "prevResult");
  }
  return conf;
}
