// Ownership of one kernel fd by one JS object: close() releases it, a finalizer is the safety net.
// And opening a pin as the kind of object the caller expects.
import { readlinkSync } from "node:fs";
import { invalidArgument } from "./errors";
import { native } from "./native";

const leaked = new FinalizationRegistry<number>((fd) => {
  try {
    native().closeFd(fd);
  } catch {
    // nothing useful to do in a finalizer
  }
});

/** Base of Program, BpfMap and Link: owns exactly one fd until close(). */
export abstract class FdHandle {
  #fd: number;

  protected constructor(fd: number) {
    this.#fd = fd;
    leaked.register(this, fd, this);
  }

  /** The fd; throws BpfError (op "fd", EBADF) after close(). */
  get fd(): number {
    if (this.#fd < 0) throw invalidArgument("fd", `${this.describe()} used after close()`, "EBADF");
    return this.#fd;
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Releases the fd. Idempotent. Pins and attachments made through it stay in place. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    leaked.unregister(this);
    native().closeFd(fd);
  }

  /** Pins the object at a bpffs path (bpf_obj_pin). The parent directory must exist. */
  pin(path: string): void {
    native().pin(this.fd, path);
  }

  /** What the handle holds, for messages ("map selftest_hash"). */
  protected abstract describe(): string;
}

/** Removes a pin (program, map or link) from bpffs. Throws BpfError (ENOENT) if absent. */
export function unpin(path: string): void {
  native().unpin(path);
}

/** The kinds of BPF object a bpffs pin can hold. */
export type PinnedKind = "prog" | "map" | "link";
/**
 * The anon inode each kind's fd is a file of, as /proc/self/fd names it (a link made by
 * bpf_link_create is a "bpf_link", one opened from a pin a "bpf-link").
 */
const KIND_OF_INODE: Readonly<Record<string, PinnedKind>> = {
  "anon_inode:bpf-prog": "prog",
  "anon_inode:bpf-map": "map",
  "anon_inode:bpf_link": "link",
  "anon_inode:bpf-link": "link",
};

/**
 * Opens a pin (bpf_obj_get) and checks that it holds a `kind`. bpf_obj_get opens whatever is
 * pinned, and the kernel's info call answers for any kind, so a map opened as a link would
 * read back a map's info as a link's. The fd's /proc/self/fd link names the kind's anon inode
 * (one readlink: the fdinfo text the kernel formats for it costs several times that).
 * A pin of another kind: BpfError (op "bpf_obj_get", EINVAL) naming both, the fd closed.
 */
export function openPinnedAs(kind: PinnedKind, path: string): number {
  const fd = native().openPinned(path);
  let found: PinnedKind | undefined;
  try {
    found = KIND_OF_INODE[readlinkSync(`/proc/self/fd/${fd}`)];
  } catch {
    // no procfs: the kernel's own checks stay (an op on the wrong kind fails later)
    return fd;
  }
  if (found === kind) return fd;
  native().closeFd(fd);
  throw invalidArgument(
    "bpf_obj_get",
    `${path} holds ${found ? `a ${found}` : "no BPF program, map or link"}, not a ${kind}`,
  );
}
