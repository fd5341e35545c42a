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

/** Parses stdin as a JSON object (code 6 otherwise). */
export function decodeJsonObject(stdin: string): Record<string, unknown> {
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
  return value as Record<string, unknown>;
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
 * runtimeConfig (code 6) and prevResult (code 6).
 */
export function parseNetConf(raw: Record<string, unknown>): NetConf {
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
  if (raw.prevResult !== undefined && raw.prevResult !== null) {
    conf.prevResult = parseResult(raw.prevResult, version, "prevResult");
  }
  return conf;
}
