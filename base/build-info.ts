// What a build of waggle is: its version, the commit it came from, the oldest glibc its shipped
// pieces need, and the content id of the embedded addon. scripts/build-sea.mjs bakes these into
// the single executable (esbuild `define`); running from out/ they are worked out from the checkout.
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** One file the binary carries that depends on the host's glibc, and the newest symbol version it needs. */
export interface GlibcNeed {
  /** Base name of the shipped file (node, ebpf_napi.node, libelf.so.1, ...). */
  file: string;
  /** Highest GLIBC_x.y symbol version among its undefined dynamic symbols, e.g. "2.33". */
  version: string;
}

export interface BuildInfo {
  /** package.json version. */
  version: string;
  /** Git commit (12 hex digits), with "-dirty" when the work tree had changes; "unknown" outside git. */
  commit: string;
  /** The oldest glibc the binary can run on: the highest need over every shipped file. */
  glibcFloor: GlibcNeed | null;
  /** Content id of the embedded addon files; names the runtime directory they are extracted to. */
  runtimeId: string | null;
  /** Embedded addon files in extraction order (the .node first, then the shared libraries). */
  addonFiles: string[];
  /** Base names of the embedded BPF objects ("capture" for capture.bpf.o). */
  bpfObjects: string[];
}

/** SEA asset keys for the embedded files. Shared by the build script and the runtime. */
export const assetKey = {
  addon: (file: string) => `addon/${file}`,
  bpf: (name: string) => `bpf/${name}.bpf.o`,
};

// Replaced by the literal build info when bundled by scripts/build-sea.mjs; undefined otherwise.
declare const WAGGLE_BUILD: BuildInfo | undefined;

let devInfo: BuildInfo | undefined;

/** The build info of the running program. */
export function buildInfo(): BuildInfo {
  if (typeof WAGGLE_BUILD !== "undefined") return WAGGLE_BUILD;
  devInfo ??= checkoutBuildInfo(join(__dirname, "..", ".."));
  return devInfo;
}

/** True when running as the bundled single executable. */
export function isBundled(): boolean {
  return typeof WAGGLE_BUILD !== "undefined";
}

/** Build info of a checkout (running from out/): version from package.json, commit from git. */
export function checkoutBuildInfo(root: string): BuildInfo {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  return {
    version: pkg.version,
    commit: gitCommit(root),
    glibcFloor: null,
    runtimeId: null,
    addonFiles: [],
    bpfObjects: [],
  };
}

/** The checkout's commit as 12 hex digits, "-dirty" when tracked files changed; "unknown" without git. */
export function gitCommit(root: string): string {
  // A build without the .git directory (the image's: .dockerignore leaves it out) is told
  // its commit by WAGGLE_COMMIT, as `git rev-parse --short=12 HEAD` plus "-dirty" would say.
  const given = process.env.WAGGLE_COMMIT;
  if (given) {
    if (!/^[0-9a-f]{12}(-dirty)?$/.test(given))
      throw new Error(`WAGGLE_COMMIT ${JSON.stringify(given)} is not a 12-digit commit`);
    return given;
  }
  // child_process is required here, not at the top: loading it costs every start a few ms.
  const { execFileSync } = require("node:child_process") as typeof import("node:child_process");
  try {
    const git = (...args: string[]) =>
      execFileSync("git", args, {
        cwd: root,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
    const head = git("rev-parse", "--short=12", "HEAD").trim();
    const dirty = git("status", "--porcelain", "--untracked-files=no").trim() !== "";
    return dirty ? `${head}-dirty` : head;
  } catch {
    return "unknown";
  }
}

/**
 * The chunks of JavaScript the single executable has loaded so far, each with V8's verdict on
 * its build-time code cache ("code cache accepted" / "code cache rejected"); empty in a checkout.
 * Recorded by the binary's boot script (scripts/build-sea.mjs).
 */
export function loadedChunks(): Record<string, string> {
  const states = (globalThis as Record<symbol, unknown>)[Symbol.for("waggle.chunks")];
  return typeof states === "object" && states !== null
    ? { ...(states as Record<string, string>) }
    : {};
}
