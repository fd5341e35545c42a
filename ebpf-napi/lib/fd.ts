// Ownership of one kernel fd by one JS object: close() releases it, a finalizer is the safety net.
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
