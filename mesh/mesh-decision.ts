// Whether waggle meshes a pod, and how: istio-cni's selection (pod-selection.ts), then the
// pod's redirect settings (redirect-settings.ts). The one decision behind the plugin's ADD and
// CHECK (cni/plugin.ts) and the installer's early-pod repair (install/repair.ts); they differ
// only in where the pod's facts come from and in what they do with an invalid annotation.
import {
  type K8sPodArgs,
  lacksSidecarStatus,
  type PodFacts,
  type Skip,
  skipByArgs,
  skipByPod,
} from "./pod-selection";
import { parseRedirectSettings, type RedirectSettings } from "./redirect-settings";

/** Left alone (the rule that matched first), or meshed with these settings. */
export type MeshDecision = { skip: Skip } | { settings: RedirectSettings; facts: PodFacts };

export interface MeshQuestion {
  /** The pod's identity (CNI_ARGS, or the pod object's metadata). */
  pod: K8sPodArgs;
  /** Namespaces never meshed (the entry's kubernetes.exclude_namespaces). */
  excludeNamespaces: readonly string[];
  /**
   * The pod's annotations as the runtime passed them (undefined if it did not), read once the
   * identity rules have passed: without the sidecar status they settle the decision before
   * any fact is read (no API read for unmeshed pods).
   */
  runtimeAnnotations?(): Readonly<Record<string, string>> | undefined;
  /** Reads the pod's facts; called only when the identity and annotations do not settle it. */
  readFacts(): PodFacts | Promise<PodFacts>;
  /** Where warnings about annotation values that are ignored go. */
  warn?(message: string): void;
}

/**
 * Decides in istio-cni's order: the pod's identity and namespace, the runtime's annotations,
 * then its facts (rules 3-8), then its redirect settings.
 * @throws InvalidAnnotationError when a traffic annotation is invalid, and what readFacts throws.
 */
export async function decideMesh(q: MeshQuestion): Promise<MeshDecision> {
  const byArgs = skipByArgs(q.pod, q.excludeNamespaces);
  if (byArgs) return { skip: byArgs };
  const annotations = q.runtimeAnnotations?.();
  if (annotations && lacksSidecarStatus(annotations)) {
    return {
      skip: {
        rule: "no-sidecar-status",
        reason: "no sidecar.istio.io/status in the runtime's pod annotations: not injected",
      },
    };
  }
  const facts = await q.readFacts();
  const byPod = skipByPod(facts);
  if (byPod) return { skip: byPod };
  const settings = parseRedirectSettings(facts.annotations, facts.proxy, (m) => q.warn?.(m));
  return { settings, facts };
}
