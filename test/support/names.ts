// Unique names for everything kernel tests create (netns, interfaces, cgroups, pin dirs).
//
// Several test runs share this machine at the same time, so every name starts with this
// run's tag: "wg" + the pid in base 36 + two random characters (at most 9 characters). A
// name is the tag, one letter for the kind, and a per-run counter in base 36, so it stays
// within IFNAMSIZ (15 bytes with the NUL: 15 characters is the limit we keep below) and the
// leak checks can tell this run's leftovers from another run's live resources.

import { randomBytes } from "node:crypto";

/** Linux interface names hold at most 15 characters (IFNAMSIZ 16 with the NUL). */
export const IFNAME_MAX = 15;

function randomBase36(chars: number): string {
  let s = "";
  for (const byte of randomBytes(chars)) s += (byte % 36).toString(36);
  return s;
}

/** This test run's tag, the prefix of every name it creates. */
export const RUN_TAG = `wg${process.pid.toString(36)}${randomBase36(2)}`;

let counter = 0;

/**
 * A name unique to this run: RUN_TAG + kind letter + counter. `kind` is one lowercase letter
 * so the names say what they are (n netns, h host-side veth, p pod-side veth, c cgroup...).
 */
export function uniqueName(kind: string): string {
  if (!/^[a-z]$/.test(kind))
    throw new Error(`uniqueName: kind must be one lowercase letter, got ${JSON.stringify(kind)}`);
  counter += 1;
  const name = `${RUN_TAG}${kind}${counter.toString(36)}`;
  if (name.length > IFNAME_MAX)
    throw new Error(`uniqueName: ${name} is longer than ${IFNAME_MAX} characters`);
  return name;
}

/** True when a name was made by this run's uniqueName. */
export function isThisRunsName(name: string): boolean {
  return name.startsWith(RUN_TAG);
}
