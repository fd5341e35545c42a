// The proxy's inbound listener as inbound capture knows it (waggle_listeners, a SOCKHASH
// keyed by {netns cookie, socket family}). sockops records a listener when the proxy calls
// listen(); a pod attached while its proxy already listens (meshed in place) would have none,
// so the attach asks waggle_listener, run inside the pod's netns, to find and record it.
import { type BpfMap, testRun } from "ebpf-napi";
import { encodeListenerKey, encodeListenerQuery } from "./encode";
import { LISTENER_RESULT } from "./layout";
import { LISTENER_FINDER } from "./programs";
import { openProgram } from "./shared";

/**
 * Records the listeners on `port` the pod already has, for each of its addresses (the
 * kernel's own lookup: bound to that address or the wildcard, never to localhost). Returns
 * the addresses a listener was found for.
 */
export function recordExistingListeners(
  root: string,
  pod: { netns: bigint; netnsPath: string; addresses: readonly string[]; port: number },
): string[] {
  const finder = openProgram(root, LISTENER_FINDER.name);
  try {
    const found: string[] = [];
    for (const ip of pod.addresses) {
      const { retval } = testRun(finder, encodeListenerQuery(pod.netns, ip, pod.port), {
        netns: pod.netnsPath,
      });
      if (retval === LISTENER_RESULT.stored) found.push(ip);
      else if (retval !== LISTENER_RESULT.none) {
        throw new Error(`recording the listener on ${ip} port ${pod.port} failed (${retval})`);
      }
    }
    return found;
  } finally {
    finder.close();
  }
}

/** Removes a pod's listeners from waggle_listeners (the sockets themselves stay open). */
export function forgetListeners(listeners: BpfMap, netns: bigint): void {
  for (const family of [4, 6] as const) listeners.delete(encodeListenerKey(netns, family));
}
