// Ownership of one kernel fd by one JS object: close() releases it, a finalizer is the safety net.
// And opening a pin as the kind of object the caller expects.
import { readFileSync } from "node:fs";
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

/** The kinds of BPF object a bpffs pin can hold, as /proc/<pid>/fdinfo names their type. */
export type PinnedKind = "prog" | "map" | "link";
const KINDS: readonly PinnedKind[] = ["prog", "map", "link"];

/**
 * Opens a pin (bpf_obj_get) and checks that it holds a `kind`. bpf_obj_get opens whatever is
 * pinned, and the kernel's info call answers for any kind, so a map opened as a link would
 * read back a map's info as a link's. The fd's fdinfo names the kind ("link_type:", ...).
 * A pin of another kind: BpfError (op "bpf_obj_get", EINVAL) naming both, the fd closed.
 */
export function openPinnedAs(kind: PinnedKind, path: string): number {
  const fd = native().openPinned(path);
  let found: PinnedKind | undefined;
  try {
    const info = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    found = KINDS.find((k) => new RegExp(`^${k}_type:`, "m").test(info));
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
