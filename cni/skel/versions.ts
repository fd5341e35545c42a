// CNI spec versions: which ones waggle speaks, and how they compare.

/** The spec versions waggle's plugin supports, oldest first (VERSION prints this list). */
export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

export type SupportedVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The newest spec version implemented. */
export const LATEST_VERSION: SupportedVersion = "1.1.0";

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/;

/** True for a plain MAJOR.MINOR.PATCH version string. */
export function isSemver(v: string): boolean {
  return SEMVER.test(v);
}

export function isSupportedVersion(v: string): v is SupportedVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compares two MAJOR.MINOR.PATCH strings: negative, zero or positive. Throws on bad input. */
export function compareVersions(a: string, b: string): number {
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/**
 * The result shape family of a version: results before 1.0.0 carry `ips[].version` and lack
 * the 1.1.0 fields; 1.0.0 and 1.1.0 share one shape (1.1.0 only adds optional fields).
 */
export function resultFamily(v: SupportedVersion): "0.x" | "1.x" {
  return versionAtLeast(v, "1.0.0") ? "1.x" : "0.x";
}

function parts(v: string): [number, number, number] {
  const m = SEMVER.exec(v);
  if (!m) throw new Error(`not a version: ${JSON.stringify(v)}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}
