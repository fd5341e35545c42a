// waggle's entry in the chained CNI config list: what the installer writes and the plugin
// reads. Field names follow istio-cni's where they mean the same (log_level,
// kubernetes.kubeconfig, kubernetes.exclude_namespaces).

import { join } from "node:path";
import { WAGGLE_PLUGIN_TYPE } from "./conflist";
import type { InstallOptions } from "./options";

/**
 * runtimeConfig keys the plugin asks the runtime for: the pod's annotations (so ADD needs no
 * API call) and its cgroup parent (so the pod cgroup needs no search).
 */
export const PLUGIN_CAPABILITIES = {
  "io.kubernetes.cri.pod-annotations": true,
  cgroupPath: true,
} as const;

/** The kubeconfig path the plugin uses: the installer's file, as the host sees it. */
export function hostKubeconfigPath(options: InstallOptions): string {
  return join(options.hostCniNetDir, options.kubeconfigName);
}

/** The entry for these settings (no cniVersion or name: a list's plugins inherit those). */
export function pluginEntry(options: InstallOptions): Record<string, unknown> {
  return {
    type: WAGGLE_PLUGIN_TYPE,
    log_level: options.plugin.logLevel,
    log_file: options.plugin.logFile,
    bpf_root: options.bpfRoot,
    kubernetes: {
      kubeconfig: hostKubeconfigPath(options),
      exclude_namespaces: options.plugin.excludeNamespaces,
    },
    capabilities: { ...PLUGIN_CAPABILITIES },
  };
}
