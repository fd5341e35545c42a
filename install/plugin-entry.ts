// waggle's entry in the chained CNI config list: what the installer writes and the plugin
// reads (mesh/config.ts parses it; a unit test checks the two agree).

import { join } from "node:path";
import { CGROUP_PATH_CAPABILITY, PLUGIN_TYPE, POD_ANNOTATIONS_CAPABILITY } from "../mesh/config";
import type { InstallOptions } from "./options";

/**
 * runtimeConfig keys the plugin asks the runtime for: the pod's annotations (so ADD needs no
 * API call) and its cgroup parent (so the pod cgroup needs no search).
 */
export const PLUGIN_CAPABILITIES = {
  [POD_ANNOTATIONS_CAPABILITY]: true,
  [CGROUP_PATH_CAPABILITY]: true,
} as const;

/** The kubeconfig path the plugin uses: the installer's file, as the host sees it. */
export function hostKubeconfigPath(options: InstallOptions): string {
  return join(options.hostCniNetDir, options.kubeconfigName);
}

/** The entry for these settings (no cniVersion or name: a list's plugins inherit those). */
export function pluginEntry(options: InstallOptions): Record<string, unknown> {
  return {
    type: PLUGIN_TYPE,
    log_level: options.plugin.logLevel,
    log_file: options.plugin.logFile,
    bpf_root: options.bpfRoot,
    exclude_namespaces: options.plugin.excludeNamespaces,
    kubernetes: { kubeconfig: hostKubeconfigPath(options) },
    capabilities: { ...PLUGIN_CAPABILITIES },
    ...(options.plugin.socketBypass === undefined
      ? {}
      : { socket_bypass: options.plugin.socketBypass }),
    ...(options.plugin.socketBypassBacklog === undefined
      ? {}
      : { socket_bypass_backlog: options.plugin.socketBypassBacklog }),
  };
}
