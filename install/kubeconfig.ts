// The kubeconfig the plugin (running on the host, outside this pod) uses to read pods: the
// service account's token and CA embedded, the API server from KUBERNETES_SERVICE_HOST/PORT,
// TLS always verified, mode 0600. Rewritten when the token or CA rotates: projected
// service account volumes swap a `..data` symlink, so the directory is watched, not the file.

import { promises as fs } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "../base/log";
import { writeFileAtomic } from "./atomic-file";
import type { InstallMetrics } from "./metrics";
import { DirWatcher, type DirWatcherOptions, type ReconcileOutcome } from "./watch";

export interface KubeconfigSource {
  tokenFile: string;
  caFile: string;
  serviceHost: string;
  servicePort: number;
}

export const KUBECONFIG_MODE = 0o600;

/** The API server URL; IPv6 literals get brackets. */
export function apiServerUrl(host: string, port: number): string {
  const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `https://${bracketed}:${port}`;
}

/** Reads token and CA; a clear error when either is missing or empty. */
export async function readCredentials(
  source: KubeconfigSource,
): Promise<{ token: string; ca: Buffer }> {
  const token = (await readRequired(source.tokenFile, "service account token"))
    .toString("utf8")
    .trim();
  const ca = await readRequired(source.caFile, "API server CA bundle");
  if (!ca.toString("utf8").includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(
      `${source.caFile} holds no PEM certificate: refusing to write a kubeconfig without TLS verification`,
    );
  }
  return { token, ca };
}

async function readRequired(path: string, what: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await fs.readFile(path);
  } catch (err) {
    throw new Error(
      `cannot read the ${what} ${path}: ${(err as Error).message} (is this running in a pod with a service account?)`,
    );
  }
  if (data.toString("utf8").trim() === "") throw new Error(`the ${what} ${path} is empty`);
  return data;
}

/** The kubeconfig text (YAML, via the Kubernetes client's own model and dumper). */
export async function renderKubeconfig(server: string, token: string, ca: Buffer): Promise<string> {
  const { KubeConfig, dumpYaml } =
    require("@kubernetes/client-node") as typeof import("@kubernetes/client-node");
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "local", server, caData: ca.toString("base64"), skipTLSVerify: false }],
    users: [{ name: "waggle", token }],
    contexts: [{ name: "waggle", cluster: "local", user: "waggle" }],
    currentContext: "waggle",
  });
  const doc = JSON.parse(kc.exportConfig()) as {
    clusters: Array<{ cluster: Record<string, unknown> }>;
  };
  for (const c of doc.clusters) delete c.cluster["insecure-skip-tls-verify"];
  return `# Written by waggle install for the waggle CNI plugin; rewritten on token rotation.\n${dumpYaml(doc)}`;
}

/** Writes the kubeconfig if its content differs; true when it wrote. */
export async function writeKubeconfig(path: string, source: KubeconfigSource): Promise<boolean> {
  const { token, ca } = await readCredentials(source);
  const text = await renderKubeconfig(
    apiServerUrl(source.serviceHost, source.servicePort),
    token,
    ca,
  );
  try {
    const [current, stat] = await Promise.all([fs.readFile(path, "utf8"), fs.stat(path)]);
    if (current === text && (stat.mode & 0o777) === KUBECONFIG_MODE) return false;
  } catch {
    // absent or unreadable: write it
  }
  await writeFileAtomic(path, text, { mode: KUBECONFIG_MODE });
  return true;
}

export interface KubeconfigKeeperOptions {
  path: string;
  source: KubeconfigSource;
  log: Logger;
  metrics: InstallMetrics;
  timing?: Pick<DirWatcherOptions, "debounceMs" | "resyncMs" | "retryMs">;
}

/** Writes the kubeconfig now and again whenever the token or CA (or the file) changes. */
export class KubeconfigKeeper extends DirWatcher {
  /** The kubeconfig matches the current token and CA (as of the last pass). */
  current = false;

  constructor(private readonly opts: KubeconfigKeeperOptions) {
    const { source, path } = opts;
    super({
      subject: "kubeconfig",
      dirs: [...new Set([dirname(source.tokenFile), dirname(source.caFile), dirname(path)])],
      log: opts.log,
      // Token rotation is rare and owned by the kubelet: nothing to fight, no backoff needed.
      flap: { count: Number.MAX_SAFE_INTEGER, windowMs: 1 },
      ...opts.timing,
    });
  }

  protected async reconcile(): Promise<ReconcileOutcome> {
    this.current = false;
    const wrote = await writeKubeconfig(this.opts.path, this.opts.source);
    this.current = true;
    if (wrote) {
      this.opts.metrics.kubeconfigWrites.inc();
      this.opts.log.info("kubeconfig written", { path: this.opts.path });
    }
    return { repaired: false };
  }
}
