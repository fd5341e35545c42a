// Kernel identities of namespaces and cgroups, as BPF programs see them.
import { native } from "./native";

/**
 * The netns cookie (SO_NETNS_COOKIE, = bpf_get_netns_cookie() in programs) of the network
 * namespace at netnsPath (e.g. /run/netns/x or /proc/<pid>/ns/net). Read on a native thread
 * that enters the namespace. BpfError ENOENT when the path does not exist.
 */
export function netnsCookie(netnsPath: string): bigint {
  return native().netnsCookie(netnsPath);
}

/** The cgroup id (= bpf_get_current_cgroup_id() in programs) of a cgroup v2 directory. */
export function cgroupId(cgroupDir: string): bigint {
  return native().cgroupId(cgroupDir);
}
