// Reading the pod from the Kubernetes API server (@kubernetes/client-node), with bounded
// retries, and the facts selection and redirection need from it. Fails closed: after the last
// attempt the caller gets an error naming the cause, never a guess.
import type { CoreV1Api, KubeConfig, V1Container, V1Pod } from "@kubernetes/client-node";
import { ISTIO_PROXY, type PodFacts } from "./pod-selection";
import type { ProxyContainerFacts } from "./redirect-settings";

export interface PodReadOptions {
  kubeconfigPath: string;
  namespace: string;
  name: string;
  /** Total attempts (>= 1). */
  attempts: number;
  /** Pause between attempts. */
  intervalMs: number;
  /** Per-request timeout. */
  timeoutMs: number;
  /** Called after each failed attempt that will be retried. */
  onRetry?: (attempt: number, error: PodLookupError) => void;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
}

/** Reading the pod failed; `transient` says whether trying again later may succeed. */
export class PodLookupError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "PodLookupError";
  }
}

/**
 * GETs the pod. The kubeconfig is read again on every attempt so a token the installer rotates
 * meanwhile is picked up. Retried: connection errors, timeouts, 401 (token being rotated), 408,
 * 429 and 5xx. Not retried: a kubeconfig that cannot be loaded, and other 4xx answers such as
 * 403 (RBAC) and 404 (a pod the API does not know).
 * @throws PodLookupError after the last attempt or on the first permanent failure.
 */
export async function readPod(opts: PodReadOptions): Promise<V1Pod> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const attempts = Math.max(1, opts.attempts);
  const k8s = await import("@kubernetes/client-node");
  const where = `pod ${opts.namespace}/${opts.name}`;
  for (let attempt = 1; ; attempt++) {
    let api: CoreV1Api;
    try {
      const kc: KubeConfig = new k8s.KubeConfig();
      kc.loadFromFile(opts.kubeconfigPath);
      if (!kc.getCurrentCluster()) throw new Error("no current cluster (check current-context)");
      api = kc.makeApiClient(k8s.CoreV1Api);
    } catch (e) {
      throw new PodLookupError(
        `cannot read ${where}: kubeconfig ${opts.kubeconfigPath} is unusable: ${(e as Error).message}`,
        false,
        attempt,
        { cause: e },
      );
    }
    try {
      return await api.readNamespacedPod(
        { name: opts.name, namespace: opts.namespace },
        {
          middleware: [
            {
              pre: (ctx) => {
                ctx.setSignal(AbortSignal.timeout(opts.timeoutMs));
                return new k8s.Observable(Promise.resolve(ctx));
              },
              post: (ctx) => new k8s.Observable(Promise.resolve(ctx)),
            },
          ],
          middlewareMergeStrategy: "append",
        },
      );
    } catch (e) {
      const { cause, transient } = classify(e, e instanceof k8s.ApiException, opts.timeoutMs);
      const done = !transient || attempt >= attempts;
      const err = new PodLookupError(
        done
          ? `cannot read ${where} from the API server after ${attempt} attempt${attempt > 1 ? "s" : ""}: ${cause}`
          : `reading ${where}: ${cause}`,
        transient,
        attempt,
        { cause: e },
      );
      if (done) throw err;
      opts.onRetry?.(attempt, err);
      await sleep(opts.intervalMs);
    }
  }
}

// What went wrong, in words, and whether trying again may help.
function classify(
  e: unknown,
  isApiAnswer: boolean,
  timeoutMs: number,
): { cause: string; transient: boolean } {
  const err = e as {
    code?: unknown;
    name?: string;
    message?: string;
    cause?: { code?: string; message?: string };
  };
  if (isApiAnswer && typeof err.code === "number") {
    const status = err.code;
    const reason = statusReason(e);
    return {
      cause: `HTTP ${status}${reason ? ` (${reason})` : ""}`,
      transient: status === 401 || status === 408 || status === 429 || status >= 500,
    };
  }
  if (err.name === "TimeoutError" || err.name === "AbortError") {
    return { cause: `no answer within ${timeoutMs} ms`, transient: true };
  }
  // undici reports network failures as "fetch failed" with the system error as the cause.
  if (typeof err.cause?.code === "string") {
    return {
      cause: `connection failed: ${err.cause.code} ${err.cause.message ?? ""}`.trim(),
      transient: true,
    };
  }
  if (err.message === "fetch failed") {
    return {
      cause: `connection failed: ${err.cause?.message ?? "unknown network error"}`,
      transient: true,
    };
  }
  // Anything else was refused before a request went out (TLS settings, auth plugin ...).
  return { cause: `request refused by the client: ${err.message ?? String(e)}`, transient: false };
}

// The Status message the API server puts in an error body, when there is one.
function statusReason(e: unknown): string | undefined {
  const body = (e as { body?: unknown }).body;
  try {
    const parsed = (typeof body === "string" ? JSON.parse(body) : body) as { message?: unknown };
    return typeof parsed?.message === "string" ? parsed.message : undefined;
  } catch {
    return typeof body === "string" && body.length < 200 ? body : undefined;
  }
}

/**
 * The facts istio-cni reads from a pod: labels, annotations, every container name (init
 * containers too: native sidecars run istio-proxy as an init container), and istio-proxy's
 * securityContext runAsUser/runAsGroup, literal env values and args. A regular istio-proxy
 * container wins over an init container of that name.
 */
export function podFactsFromPod(pod: V1Pod): PodFacts {
  const init = pod.spec?.initContainers ?? [];
  const regular = pod.spec?.containers ?? [];
  const proxy =
    regular.find((c) => c.name === ISTIO_PROXY) ?? init.find((c) => c.name === ISTIO_PROXY);
  return {
    source: "api",
    labels: pod.metadata?.labels ?? {},
    annotations: pod.metadata?.annotations ?? {},
    containerNames: [...init, ...regular].map((c) => c.name),
    proxy: proxy ? proxyFacts(proxy) : undefined,
  };
}

function proxyFacts(c: V1Container): ProxyContainerFacts {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return {
    runAsUser: c.securityContext?.runAsUser,
    runAsGroup: c.securityContext?.runAsGroup,
    env,
    args: c.args ?? [],
  };
}
