// Several cgroup links in one call: each item's pinned program attached to a cgroup v2
// directory as a bpf_link and the link pinned, without a JS round trip or an fd per step.
import type { BpfError } from "./errors";
import { native } from "./native";
import type { CgroupAttachType } from "./types";

export interface CgroupLinkPin {
  /** bpffs path of the pinned program. */
  progPin: string;
  cgroupDir: string;
  attachType: CgroupAttachType;
  /** bpffs path the new link is pinned at (must not exist). */
  linkPin: string;
}

/** How each item of pinCgroupLinks ended. */
export type CgroupLinkPinResult =
  | { status: "pinned" }
  | { status: "failed"; error: BpfError }
  | { status: "skipped" };

interface CgroupLinksNative {
  cgroupLinksPin(items: readonly CgroupLinkPin[]): (BpfError | null | undefined)[];
}

/**
 * Attaches and pins each item in order, stopping at the first failure. Per item: "pinned",
 * "failed" (that item left nothing: its link was never pinned and is closed, so detached) or
 * "skipped" (after a failure, not attempted). Items pinned before a failure stay pinned; the
 * caller undoes them as it would undo the same links made one by one.
 */
export function pinCgroupLinks(items: readonly CgroupLinkPin[]): CgroupLinkPinResult[] {
  const results = (native() as unknown as CgroupLinksNative).cgroupLinksPin(items);
  // items after a failure are holes in the native array: Array.from visits them too
  return Array.from(results, (r) => {
    if (r === null) return { status: "pinned" };
    if (r === undefined) return { status: "skipped" };
    return { status: "failed", error: r };
  });
}
