// bpf_links on cgroup v2 directories and on sockmaps: attach, pin, open pinned, replace the
// program, detach.
import { FdHandle, openPinnedAs } from "./fd";
import type { BpfMap } from "./map";
import { native } from "./native";
import type { Program } from "./program";
import type { CgroupAttachType, LinkInfo, SockmapAttachType } from "./types";

/**
 * A bpf_link. Owns its fd. A link stays attached while an fd or a pin holds it: close() alone
 * detaches an unpinned link; pin() it to outlive the process. detach() ends it for all holders.
 */
export class Link extends FdHandle {
  /** @internal takes ownership of fd. */
  constructor(fd: number) {
    super(fd);
  }

  /** Opens a link pinned in bpffs (bpf_obj_get). */
  static openPinned(path: string): Link {
    return new Link(openPinnedAs("link", path));
  }

  /** Opens a link by its kernel id (bpf_link_get_fd_by_id). */
  static fromId(id: number): Link {
    return new Link(native().linkFdById(id));
  }

  /** Link id, program id, link type; attach type and cgroup id for cgroup links. */
  info(): LinkInfo {
    return native().linkInfo(this.fd);
  }

  /**
   * Replaces the link's program atomically (bpf_link_update). With `expected`, the replace only
   * happens if the link still runs that program (BPF_F_REPLACE), else BpfError EPERM.
   */
  update(prog: Program, opts: { expected?: Program } = {}): void {
    native().linkUpdate(this.fd, prog.fd, opts.expected?.fd ?? -1);
  }

  /** Detaches the link from its hook for every holder (bpf_link_detach); pins stay but go inert. */
  detach(): void {
    native().linkDetach(this.fd);
  }

  protected describe(): string {
    return "link";
  }
}

/**
 * Attaches prog to a cgroup v2 directory as a bpf_link (bpf_link_create with the attach type).
 * The program must have been loaded for that attach type (e.g. SEC("cgroup/connect4")).
 */
export function attachCgroup(prog: Program, cgroupDir: string, attachType: CgroupAttachType): Link {
  return new Link(native().cgroupLinkCreate(prog.fd, cgroupDir, attachType));
}

/**
 * Attaches prog to a sockmap or sockhash as a bpf_link (BPF_LINK_TYPE_SOCKMAP, Linux 6.10+;
 * older kernels refuse with EINVAL). The link can be pinned and its program replaced with
 * update(); sockets already in the map keep the program they got when they joined.
 */
export function attachSockmap(prog: Program, map: BpfMap, attachType: SockmapAttachType): Link {
  return new Link(native().sockmapLinkCreate(prog.fd, map.fd, attachType));
}

/**
 * Ids of the programs attached to a cgroup for attachType (bpf_prog_query), in run order.
 * With effective, the programs that run there including those inherited from ancestors.
 */
export function cgroupQuery(
  cgroupDir: string,
  attachType: CgroupAttachType,
  opts: { effective?: boolean } = {},
): number[] {
  return native().cgroupQuery(cgroupDir, attachType, opts.effective ?? false);
}
