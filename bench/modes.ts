// The modes the bench compares (what each one does: bench/cluster.ts, docs/benchmarks.md).

export const MODES = [
  "none",
  "explicit",
  "iptables",
  "waggle-redirect",
  "waggle",
  "merbridge",
] as const;
export type ModeName = (typeof MODES)[number];

/**
 * Modes that need something the repository does not hold: merbridge is built from a Merbridge
 * checkout the operator names (--merbridge-src), so presets list it only when one is given.
 */
export const OPTIONAL_MODES: readonly ModeName[] = ["merbridge"];

/** The environment variable naming a Merbridge checkout (the default of --merbridge-src). */
export const MERBRIDGE_SRC_ENV = "WAGGLE_MERBRIDGE_SRC";

/** The modes a preset compares: every mode, and the optional ones whose source was given. */
export function presetModes(withMerbridge: boolean): ModeName[] {
  return MODES.filter((m) => !OPTIONAL_MODES.includes(m) || (m === "merbridge" && withMerbridge));
}

export const MODE_DESCRIPTIONS: Record<ModeName, string> = {
  none: "no sidecars: the client app calls the server app",
  explicit:
    "sidecars without interception: the app calls its sidecar's 15001, statically routed to the peer's 15006, which calls the app (the floor)",
  iptables: "sidecars with istio-iptables' REDIRECT rules in both pods",
  "waggle-redirect":
    "sidecars with waggle's eBPF redirection, attached by the CNI chain; the pods opted out of the socket bypass (every hop through TCP)",
  waggle:
    "sidecars with waggle's eBPF redirection and socket bypass (socket_bypass: true): established hops between the meshed pods' sockets skip TCP/IP",
  merbridge:
    "sidecars with Merbridge's eBPF programs (built from a Merbridge checkout at run time, Istio mode, attached to the two pods' cgroups): redirection and its own sockhash bypass",
};

/** Modes whose pods waggle's CNI ADD attaches (meshed pods). */
export function isWaggleMode(mode: ModeName): boolean {
  return mode === "waggle" || mode === "waggle-redirect";
}

/**
 * Whether a mode's hops must be bypassed (true), must not be (false), or have no bypass
 * counters at all (null: the mode has no waggle pods). The path check holds each mode to it.
 */
export function expectsBypass(mode: ModeName): boolean | null {
  if (mode === "waggle") return true;
  if (mode === "waggle-redirect") return false;
  return null;
}

/** A pod's bypass counters (waggle status's bypass_* counters). */
export interface BypassCounts {
  sockets: number;
  msgs: number;
  bytes: number;
  fallbacks: number;
}

/** Both pods of a deployment. */
export interface BypassReading {
  client: BypassCounts;
  server: BypassCounts;
}

/**
 * What is wrong with a mode's bypass path, from the pods' counters before and after the path
 * check's requests (null: nothing). waggle: each pod's messages bypassed must grow (its
 * sidecar hops skipped TCP); waggle-redirect: nothing may ever have been bypassed or joined.
 */
export function bypassPathProblem(
  mode: ModeName,
  before: BypassReading | null,
  after: BypassReading | null,
): string | null {
  const expected = expectsBypass(mode);
  if (expected === null) return null;
  if (!before || !after) return `mode ${mode}: the pods' bypass counters could not be read`;
  const sides = ["client", "server"] as const;
  if (expected) {
    const still = sides.filter((s) => after[s].msgs - before[s].msgs <= 0);
    return still.length === 0
      ? null
      : `mode ${mode} does not bypass: messages bypassed did not grow in the ${still.join(" and ")} pod`;
  }
  const used = sides.filter((s) => after[s].msgs !== 0 || after[s].sockets !== 0);
  return used.length === 0
    ? null
    : `mode ${mode} bypasses: ${used.map((s) => `the ${s} pod has ${after[s].sockets} sockets joined, ${after[s].msgs} messages bypassed`).join("; ")}`;
}
