// A meshed pod of a CaptureLab for inbound capture tests: created fresh, set up by a capture
// mode (iptables baseline or waggle) with the contract's default settings (dual stack for
// IPv6), the app listening on 8080 and, when asked, the proxy on 15006; everything torn
// down afterwards, also when the test fails.

import { defaultRedirectSettings, type RedirectSettings } from "../../mesh/redirect-settings";
import type { CaptureLab, CaptureMode } from "./capture-lab";
import type { Family } from "./capture-scenarios";
import type { Pod } from "./pod";
import { hostPort, type ListenerSpec, type ProbeListeners, startListeners } from "./sockprobe";

export const APP_PORT = 8080;
export const INBOUND_PORT = 15006;
/** The proxy's identity (Istio's default uid/gid). */
export const PROXY = { uid: 1337, gid: 1337 };

/** The contract's defaults, dual stack on for IPv6 (so IPv6 is captured). */
export function inboundSettings(family: Family): RedirectSettings {
  const s = defaultRedirectSettings();
  s.dualStack = family === 6;
  return s;
}

/** A TCP listener on the wildcard address of the family. */
export function wildcardListener(name: string, port: number, family: Family): ListenerSpec {
  return { name, proto: "tcp", addr: hostPort(family === 4 ? "0.0.0.0" : "::", port) };
}

export interface InboundPod {
  pod: Pod;
  /** sockprobe's "pod:app" listener on 8080 (root). */
  app: ProbeListeners;
  /** sockprobe's "pod:inbound" listener on 15006 (the proxy uid), when asked for. */
  proxy: ProbeListeners | null;
}

/**
 * Runs fn with a fresh captured pod. `beforeSetup` runs in the pod before the mode sets it up
 * (e.g. a proxy that listens before its pod is meshed).
 */
export async function withInboundPod(
  lab: CaptureLab,
  mode: CaptureMode,
  family: Family,
  opts: { proxy: boolean; beforeSetup?: (pod: Pod) => Promise<void> },
  fn: (p: InboundPod) => Promise<void>,
): Promise<void> {
  const pod = await lab.createMeshedPod();
  try {
    await opts.beforeSetup?.(pod);
    await mode.setup(pod, inboundSettings(family));
    try {
      const app = await startListeners(pod, [wildcardListener("pod:app", APP_PORT, family)]);
      let proxy: ProbeListeners | null = null;
      try {
        if (opts.proxy) {
          proxy = await startListeners(
            pod,
            [wildcardListener("pod:inbound", INBOUND_PORT, family)],
            PROXY,
          );
        }
        await fn({ pod, app, proxy });
      } finally {
        await proxy?.stop();
        await app.stop();
      }
    } finally {
      await mode.teardown();
    }
  } finally {
    await pod.destroy();
  }
}
