// The plugin skeleton: one function from (environment, stdin) to (stdout, stderr, exit code)
// that owns every protocol detail, so a plugin is only its add/del/check/gc/status handlers.
// Used in-process by unit tests and by the binary's entry point.
import { statSync } from "node:fs";
import { decodeJsonObject, type NetConf, parseNetConf, replyVersion } from "./conf";
import { type CniEnv, isCommandMissing, parseCniEnv } from "./env";
import { CniError, ErrorCodes } from "./errors";
import { type CniResult, convertResult } from "./result";
import { isSemver, LATEST_VERSION, SUPPORTED_VERSIONS, versionAtLeast } from "./versions";

/** What the process should do: write these, exit with this status. */
export interface CniOutcome {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface CniRequest {
  env: CniEnv;
  conf: NetConf;
}

/** One entry of `cni.dev/valid-attachments`. */
export interface GcAttachment {
  containerID: string;
  ifname: string;
}

export interface GcRequest extends CniRequest {
  validAttachments: GcAttachment[];
}

/**
 * A plugin's operations. Each throws a CniError to fail with its code (any other exception
 * becomes code 999). ADD returns the result to print, in the config's version.
 */
export interface CniPlugin {
  /** Printed on stderr when CNI_COMMAND is unset ("waggle CNI plugin v0.1.0"). */
  about: string;
  add(req: CniRequest): Promise<CniResult>;
  del(req: CniRequest): Promise<void>;
  check(req: CniRequest): Promise<void>;
  gc(req: GcRequest): Promise<void>;
  status(req: CniRequest): Promise<void>;
}

export interface SkelOptions {
  /** The plugin process's own netns, compared with CNI_NETNS (default /proc/self/ns/net). */
  ownNetnsPath?: string;
}

/** The minimum config version per command (CHECK arrived in 0.4.0, GC and STATUS in 1.1.0). */
const MIN_VERSION: Partial<Record<CniEnv["command"], string>> = {
  CHECK: "0.4.0",
  GC: "1.1.0",
  STATUS: "1.1.0",
};

/** The commands that read prevResult (and so validate it). */
const USES_PREV_RESULT = new Set<CniEnv["command"]>(["ADD", "CHECK"]);

/**
 * Runs one CNI invocation. Never throws: every failure becomes the spec's error JSON on stdout
 * with exit status 1 (as the reference skeleton exits), success exits 0. A missing CNI_COMMAND
 * with no other CNI_* variable prints the about line and the supported versions on stderr and
 * exits 0; with other CNI_* variables (a runtime that lost it) it is a code 4 error.
 */
export async function runSkel(
  plugin: CniPlugin,
  env: Readonly<Record<string, string | undefined>>,
  stdin: string | Buffer,
  opts: SkelOptions = {},
): Promise<CniOutcome> {
  const input = typeof stdin === "string" ? stdin : stdin.toString("utf8");
  if (isCommandMissing(env)) {
    return {
      stdout: "",
      stderr: `${plugin.about}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`,
      exitCode: 0,
    };
  }
  let raw: Record<string, unknown> | undefined;
  try {
    const cniEnv = parseCniEnv(env);
    if (cniEnv.command === "VERSION") return ok(versionReply(input));

    raw = decodeJsonObject(input);
    const conf = parseNetConf(raw, USES_PREV_RESULT.has(cniEnv.command));
    const min = MIN_VERSION[cniEnv.command];
    if (min && !versionAtLeast(conf.cniVersion, min)) {
      throw new CniError(
        ErrorCodes.IncompatibleVersion,
        `config version does not allow ${cniEnv.command}`,
        `${cniEnv.command} needs cniVersion ${min} or later; config is ${conf.cniVersion}`,
      );
    }
    const req: CniRequest = { env: cniEnv, conf };
    switch (cniEnv.command) {
      case "ADD": {
        checkNotOwnNetns(cniEnv.netns, opts.ownNetnsPath);
        const result = await plugin.add(req);
        const out =
          result.cniVersion === conf.cniVersion ? result : convertResult(result, conf.cniVersion);
        return ok(JSON.stringify(out));
      }
      case "CHECK":
        checkNotOwnNetns(cniEnv.netns, opts.ownNetnsPath);
        await plugin.check(req);
        return ok("");
      case "DEL":
        await plugin.del(req);
        return ok("");
      case "GC":
        await plugin.gc({ ...req, validAttachments: validAttachments(raw) });
        return ok("");
      case "STATUS":
        await plugin.status(req);
        return ok("");
    }
  } catch (e) {
    const err =
      e instanceof CniError
        ? e
        : new CniError(
            ErrorCodes.Internal,
            (e as Error)?.message ?? String(e),
            (e as Error)?.stack,
          );
    return failureOutcome(err, raw ?? tryDecode(input));
  }
}

/**
 * The outcome of a failed invocation: the spec's error JSON on stdout, in the config's
 * cniVersion when `raw` has a usable one (else the newest), exit status 1.
 */
export function failureOutcome(err: CniError, raw?: Record<string, unknown>): CniOutcome {
  return { stdout: JSON.stringify(err.toJSON(replyVersion(raw))), stderr: "", exitCode: 1 };
}

/**
 * The result a chained plugin that changes nothing prints: prevResult as received, labelled
 * with the config's cniVersion (a 1.0.0 prevResult in a 1.1.0 config has the same shape).
 * Without a prevResult, an empty result.
 */
export function passThrough(conf: NetConf): CniResult {
  if (!conf.prevResult) return { cniVersion: conf.cniVersion };
  if (conf.prevResult.cniVersion === conf.cniVersion) return conf.prevResult;
  return { ...conf.prevResult, cniVersion: conf.cniVersion };
}

function tryDecode(input: string): Record<string, unknown> | undefined {
  try {
    return decodeJsonObject(input);
  } catch {
    return undefined;
  }
}

function ok(stdout: string): CniOutcome {
  return { stdout, stderr: "", exitCode: 0 };
}

// VERSION ignores everything but the input's cniVersion, which it echoes (spec: "The value of
// cniVersion specified on input"); with no usable input it answers in the newest version.
function versionReply(input: string): string {
  let cniVersion: string = LATEST_VERSION;
  try {
    const v = (JSON.parse(input) as { cniVersion?: unknown })?.cniVersion;
    if (typeof v === "string" && isSemver(v)) cniVersion = v;
  } catch {
    // no or unreadable input: answer in the newest version
  }
  return JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS });
}

// The reference skeleton refuses ADD/CHECK in the plugin's own netns (code 8): attaching there
// would redirect the node's traffic. A CNI_NETNS that cannot be stat'ed is left to the plugin.
function checkNotOwnNetns(netns: string, own = "/proc/self/ns/net"): void {
  let a: { dev: number; ino: number };
  let b: { dev: number; ino: number };
  try {
    a = statSync(netns);
    b = statSync(own);
  } catch {
    return;
  }
  if (a.dev === b.dev && a.ino === b.ino) {
    throw new CniError(
      ErrorCodes.InvalidNetns,
      "plugin's netns and netns from CNI_NETNS should not be the same",
      `CNI_NETNS=${netns} is the plugin's own network namespace`,
    );
  }
}

// GC's list of attachments to keep. Spec 1.1.0 names it cni.dev/valid-attachments; libcni
// also writes cni.dev/attachments (the name an earlier draft used). Neither: code 7, so a
// malformed request never garbage-collects every pod on the node.
function validAttachments(raw: Record<string, unknown>): GcAttachment[] {
  const key = ["cni.dev/valid-attachments", "cni.dev/attachments"].find((k) => raw[k] != null);
  if (!key) {
    throw new CniError(
      ErrorCodes.InvalidConfig,
      "GC needs cni.dev/valid-attachments",
      "refusing to garbage-collect without the list of valid attachments",
    );
  }
  const list = raw[key];
  if (!Array.isArray(list)) {
    throw new CniError(ErrorCodes.DecodingFailure, `error decoding ${key}: not an array`);
  }
  return list.map((a, i) => {
    const item = a as Partial<GcAttachment> | null;
    if (typeof item?.containerID !== "string" || typeof item?.ifname !== "string") {
      throw new CniError(
        ErrorCodes.DecodingFailure,
        `error decoding ${key}[${i}]: needs string containerID and ifname`,
      );
    }
    return { containerID: item.containerID, ifname: item.ifname };
  });
}
