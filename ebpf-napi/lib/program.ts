// A loaded BPF program, held by fd.
import { FdHandle, openPinnedAs } from "./fd";
import { native } from "./native";
import type { ProgramInfo } from "./types";

/** A loaded program. Owns its fd: close() it (the attachments made with it stay). */
export class Program extends FdHandle {
  /** The program's name: its ELF function name, or the kernel's name when opened by pin/id. */
  readonly name: string;

  /** @internal takes ownership of fd. */
  constructor(fd: number, name?: string) {
    super(fd);
    try {
      this.name = name ?? native().progInfo(fd).name;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /**
   * Opens a program pinned in bpffs (bpf_obj_get). `name`: its ELF name when the caller knows
   * it (otherwise the kernel's, asked for with one more system call).
   */
  static openPinned(path: string, name?: string): Program {
    return new Program(openPinnedAs("prog", path), name);
  }

  /** Opens a program by its kernel id (bpf_prog_get_fd_by_id). */
  static fromId(id: number): Program {
    return new Program(native().progFdById(id));
  }

  /** id, name, tag and type as the kernel reports them. */
  info(): ProgramInfo {
    return native().progInfo(this.fd);
  }

  protected describe(): string {
    return `program ${this.name}`;
  }
}
