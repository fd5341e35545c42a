// Feature probes: does this kernel support a program type, map type, helper or attach type?
import { native } from "./native";
import type { CgroupAttachType, MapType, ProgType } from "./types";

/** libbpf_probe_bpf_prog_type. */
export function probeProgType(type: ProgType): boolean {
  return native().probeProgType(type);
}

/** libbpf_probe_bpf_map_type. */
export function probeMapType(type: MapType): boolean {
  return native().probeMapType(type);
}

/**
 * libbpf_probe_bpf_helper: can programs of progType call helper? The helper is named as in
 * the UAPI, with or without the bpf_ prefix ("bpf_get_netns_cookie" or "get_netns_cookie").
 */
export function probeHelper(progType: ProgType, helper: string): boolean {
  return native().probeHelper(progType, helper);
}

/** Loads a trivial program with this expected attach type: true if the kernel accepts it. */
export function probeAttachType(attachType: CgroupAttachType): boolean {
  return native().probeAttachType(attachType);
}

/** Version of the libbpf the addon runs on, e.g. "v1.1". */
export function libbpfVersion(): string {
  return native().libbpfVersion();
}
