// Tracing programs (fentry, fexit, fmod_ret, tp_btf) as bpf_links.
import { Link } from "./link";
import { native } from "./native";
import type { Program } from "./program";
import type { TracingAttachType } from "./types";

/**
 * Attaches a tracing program (loaded from SEC("fentry/<function>"), SEC("fexit/<function>")
 * or SEC("tp_btf/<tracepoint>"), which fixes its target at load time) as a bpf_link. The link can be pinned; its
 * program cannot be replaced (the kernel refuses bpf_link_update for tracing links): attach a
 * new link and drop the old one instead. attachType must match the program's section.
 */
export function attachTracing(prog: Program, attachType: TracingAttachType): Link {
  return new Link(native().tracingLinkCreate(prog.fd, attachType));
}
