// The CNI_* environment: which variables each command needs (SPEC.md section 2), their
// validation, and CNI_ARGS parsing. Every problem is a code 4 error naming the variables.
import { CniError, ErrorCodes } from "./errors";

export const COMMANDS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"] as const;
export type CniCommand = (typeof COMMANDS)[number];

/** The attachment parameters and plugin search path, validated for the command. */
export interface CniEnv {
  command: CniCommand;
  /** CNI_CONTAINERID ("" for GC, STATUS, VERSION). */
  containerId: string;
  /** CNI_NETNS ("" when not given: allowed for DEL). */
  netns: string;
  /** CNI_IFNAME ("" for GC, STATUS, VERSION). */
  ifname: string;
  /** CNI_ARGS as given (parse with parseCniArgs). */
  args: string;
  /** CNI_PATH split on ":" (empty entries dropped). */
  path: string[];
}

type Requirement = "required" | "optional";

// Per the spec's "Input" lists for each operation. Variables not listed are ignored.
const REQUIRED: Record<CniCommand, Partial<Record<string, Requirement>>> = {
  ADD: {
    CNI_CONTAINERID: "required",
    CNI_NETNS: "required",
    CNI_IFNAME: "required",
    CNI_ARGS: "optional",
    CNI_PATH: "optional",
  },
  DEL: {
    CNI_CONTAINERID: "required",
    CNI_NETNS: "optional",
    CNI_IFNAME: "required",
    CNI_ARGS: "optional",
    CNI_PATH: "optional",
  },
  CHECK: {
    CNI_CONTAINERID: "required",
    CNI_NETNS: "required",
    CNI_IFNAME: "required",
    CNI_ARGS: "optional",
    CNI_PATH: "optional",
  },
  GC: { CNI_PATH: "required" },
  STATUS: { CNI_PATH: "optional" },
  VERSION: {},
};

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** A file name's limit (NAME_MAX): plugins keep per-container state under its id. */
const MAX_CONTAINER_ID = 255;
const MAX_IFNAME = 15;

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads and validates the CNI_* variables for CNI_COMMAND. Throws a code 4 CniError naming
 * every missing variable at once, or the first malformed one. Callers handle a missing
 * CNI_COMMAND themselves (see isCommandMissing).
 */
export function parseCniEnv(env: Env): CniEnv {
  const command = env.CNI_COMMAND ?? "";
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(
      ErrorCodes.InvalidEnvironment,
      command === ""
        ? "required env variables [CNI_COMMAND] missing"
        : `unknown CNI_COMMAND: ${command}`,
      `CNI_COMMAND must be one of ${COMMANDS.join(", ")}`,
    );
  }
  const cmd = command as CniCommand;
  const needs = REQUIRED[cmd];
  const value = (name: string): string => (needs[name] ? (env[name] ?? "") : "");

  const missing = Object.entries(needs)
    .filter(([name, req]) => req === "required" && value(name) === "")
    .map(([name]) => name);
  if (missing.length > 0) {
    throw new CniError(
      ErrorCodes.InvalidEnvironment,
      `required env variables [${missing.join(",")}] missing`,
      `CNI_COMMAND=${cmd} needs ${missing.join(", ")}`,
    );
  }

  const containerId = value("CNI_CONTAINERID");
  if (containerId !== "") validateContainerId(containerId);
  const ifname = value("CNI_IFNAME");
  if (ifname !== "") validateIfname(ifname);

  return {
    command: cmd,
    containerId,
    netns: value("CNI_NETNS"),
    ifname,
    args: value("CNI_ARGS"),
    path: value("CNI_PATH")
      .split(":")
      .filter((p) => p !== ""),
  };
}

export function validateContainerId(id: string): void {
  if (id.length > MAX_CONTAINER_ID) {
    throw new CniError(
      ErrorCodes.InvalidEnvironment,
      "CNI_CONTAINERID is too long",
      `${id.length} characters; at most ${MAX_CONTAINER_ID}`,
    );
  }
  if (!CONTAINER_ID.test(id)) {
    throw new CniError(
      ErrorCodes.InvalidEnvironment,
      "invalid characters in CNI_CONTAINERID",
      `${JSON.stringify(id)}: must start with a letter or digit, then letters, digits, "_", "." or "-"`,
    );
  }
}

/** The kernel's rules for an interface name (net/core/dev.c dev_valid_name). */
export function validateIfname(name: string): void {
  let problem: string | undefined;
  if (Buffer.byteLength(name) > MAX_IFNAME) problem = `longer than ${MAX_IFNAME} bytes`;
  else if (name === "." || name === "..") problem = 'is "." or ".."';
  else if (/[/:\s]/.test(name)) problem = "contains /, : or whitespace";
  if (problem) {
    throw new CniError(
      ErrorCodes.InvalidEnvironment,
      `invalid CNI_IFNAME: ${problem}`,
      JSON.stringify(name),
    );
  }
}

/** The variables a runtime sets besides CNI_COMMAND. */
export const CNI_VARIABLES = ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"];

/**
 * True when CNI_COMMAND is unset or empty and no other CNI_* variable is set: a person ran the
 * plugin (the reference skel then prints an about line). A runtime that lost CNI_COMMAND but
 * set the rest gets a code 4 error instead, as it expects.
 */
export function isCommandMissing(env: Env): boolean {
  return (env.CNI_COMMAND ?? "") === "" && !hasCniVariables(env);
}

/** True when any CNI_* variable is set (non-empty): the caller is a container runtime. */
export function hasCniVariables(env: Env): boolean {
  return (env.CNI_COMMAND ?? "") !== "" || CNI_VARIABLES.some((name) => (env[name] ?? "") !== "");
}

/**
 * Parses CNI_ARGS ("K=V;K=V", any order) into a map. Keys outside `known` are an error unless
 * the args contain IgnoreUnknown=1 (or true), as libcni's LoadArgs does; containerd and CRI-O
 * always send IgnoreUnknown=1. Empty segments (a trailing ";") are skipped. Code 4 on errors.
 */
export function parseCniArgs(raw: string, known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === "") return out;
  for (const pair of raw.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) {
      throw new CniError(
        ErrorCodes.InvalidEnvironment,
        `invalid CNI_ARGS pair ${JSON.stringify(pair)}`,
        'CNI_ARGS must be "KEY=VALUE" pairs separated by ";"',
      );
    }
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const ignoreUnknown = parseArgsBool(out.get("IgnoreUnknown"));
  if (ignoreUnknown === undefined && out.has("IgnoreUnknown")) {
    throw new CniError(
      ErrorCodes.InvalidEnvironment,
      `invalid CNI_ARGS IgnoreUnknown=${out.get("IgnoreUnknown")}`,
      'IgnoreUnknown must be "1", "true", "0" or "false"',
    );
  }
  const unknown = [...out.keys()].filter((k) => k !== "IgnoreUnknown" && !known.includes(k));
  if (unknown.length > 0 && !ignoreUnknown) {
    throw new CniError(
      ErrorCodes.InvalidEnvironment,
      `unknown CNI_ARGS ${unknown.join(", ")}`,
      `known keys: ${known.join(", ")}; add IgnoreUnknown=1 to pass others`,
    );
  }
  return out;
}

// libcni's UnmarshallableBool: case-insensitive "1"/"true" and "0"/"false".
function parseArgsBool(v: string | undefined): boolean | undefined {
  switch (v?.toLowerCase()) {
    case "1":
    case "true":
      return true;
    case "0":
    case "false":
      return false;
    default:
      return undefined;
  }
}
