// A minimal stand-in for the Kubernetes API server: serves GET .../namespaces/N/pods/P and the
// pod list of one node (GET /api/v1/pods?fieldSelector=spec.nodeName=X) from a map on
// loopback, with scripted failures, and records every request. Plain HTTP, or HTTPS with a
// self-signed certificate for 127.0.0.1 (what the installer's kubeconfig needs: it verifies
// the server against --ca-file). Plus a kubeconfig pointing at the plain server (TLS
// verification is skipped only because that server has no TLS; waggle's installer never
// writes such a kubeconfig).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";

/** What to do with one request instead of answering from the pods map. */
export type Scripted =
  | { status: number; message?: string }
  /** Accept the connection and never answer (a hung API server). */
  | "hang";

export interface RecordedRequest {
  method: string;
  url: string;
  authorization?: string;
}

export class FakeKubeApi {
  readonly pods = new Map<string, V1Pod>();
  readonly requests: RecordedRequest[] = [];
  /** Consumed one per request, before the pods map is consulted. */
  readonly script: Scripted[] = [];
  /** Requests must carry "Bearer <token>" (401 otherwise). */
  token = "test-token";
  private server?: Server;
  private readonly hung: ServerResponse[] = [];

  addPod(pod: V1Pod): void {
    this.pods.set(`${pod.metadata?.namespace}/${pod.metadata?.name}`, pod);
  }

  /** The certificate an HTTPS server presents (its CA for clients), once started with TLS. */
  certFile?: string;

  /**
   * Starts listening on a free loopback port; with `tlsDir`, over HTTPS with a self-signed
   * certificate (key and certificate written there; certFile names the certificate).
   */
  async start(opts: { tlsDir?: string } = {}): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    if (opts.tlsDir) {
      const { cert, key } = selfSignedLoopbackCert(opts.tlsDir);
      this.certFile = cert;
      this.server = createTlsServer(
        { key: readFileSync(key), cert: readFileSync(cert) },
        handler,
      ) as unknown as Server;
    } else {
      this.server = createServer(handler);
    }
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    return this.url;
  }

  get port(): number {
    if (!this.server) throw new Error("FakeKubeApi: not started");
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `${this.certFile ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  /** Writes a kubeconfig for this server (and the current token) to `path`. */
  writeKubeconfig(path: string, server = this.url): void {
    writeFileSync(
      path,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: fake",
        "  cluster:",
        `    server: ${server}`,
        "    insecure-skip-tls-verify: true",
        "users:",
        "- name: plugin",
        "  user:",
        `    token: ${this.token}`,
        "contexts:",
        "- name: fake",
        "  context:",
        "    cluster: fake",
        "    user: plugin",
        "current-context: fake",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
  }

  async stop(): Promise<void> {
    for (const res of this.hung) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push({
      method: req.method ?? "",
      url: req.url ?? "",
      authorization: req.headers.authorization,
    });
    const step = this.script.shift();
    if (step === "hang") {
      this.hung.push(res);
      return;
    }
    const url = new URL(req.url ?? "/", "http://x");
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)$/.exec(url.pathname);
    const pod = m ? this.pods.get(`${m[1]}/${m[2]}`) : undefined;
    const node = /^spec\.nodeName=(.+)$/.exec(url.searchParams.get("fieldSelector") ?? "")?.[1];
    const list = url.pathname === "/api/v1/pods" && node !== undefined;
    if (step) status(res, step.status, step.message ?? `scripted ${step.status}`);
    else if (req.headers.authorization !== `Bearer ${this.token}`) status(res, 401, "Unauthorized");
    else if (req.method !== "GET" || (!m && !list))
      status(res, 405, "only GET pod and the pods of one node are served");
    else if (list) {
      const items = [...this.pods.values()].filter((p) => p.spec?.nodeName === node);
      json(res, { apiVersion: "v1", kind: "PodList", metadata: {}, items });
    } else if (!pod) status(res, 404, `pods "${m?.[2]}" not found`);
    else json(res, { apiVersion: "v1", kind: "Pod", ...pod });
  }
}

/** A self-signed EC certificate for 127.0.0.1 (SAN IP), made with openssl in `dir`. */
function selfSignedLoopbackCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, "api.crt");
  const key = join(dir, "api.key");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

function json(res: ServerResponse, body: object): void {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, message: string): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify({ apiVersion: "v1", kind: "Status", status: "Failure", message, code }));
}

export interface NodePodSpec {
  namespace?: string;
  name: string;
  uid: string;
  nodeName: string;
  ip?: string;
  /** With an injected sidecar (istio-proxy beside the app, Istio's status annotation). */
  meshed: boolean;
  /** The runtime's IDs of the app's and the proxy's containers, when they run. */
  containerIds?: { app: string; proxy?: string };
}

/** A running pod as the API server returns it: metadata, containers and their runtime IDs. */
export function nodePod(spec: NodePodSpec): V1Pod {
  const status = (name: string, id: string) => ({
    name,
    containerID: `containerd://${id}`,
    image: "",
    imageID: "",
    ready: true,
    restartCount: 0,
  });
  const ids = spec.containerIds;
  return {
    metadata: {
      namespace: spec.namespace ?? "shop",
      name: spec.name,
      uid: spec.uid,
      annotations: spec.meshed
        ? { "sidecar.istio.io/status": '{"containers":["istio-proxy"]}' }
        : {},
    },
    spec: {
      nodeName: spec.nodeName,
      containers: spec.meshed ? [{ name: "app" }, { name: "istio-proxy" }] : [{ name: "app" }],
    },
    status: {
      phase: "Running",
      ...(spec.ip ? { podIP: spec.ip, podIPs: [{ ip: spec.ip }] } : {}),
      containerStatuses: ids
        ? [status("app", ids.app), ...(ids.proxy ? [status("istio-proxy", ids.proxy)] : [])]
        : [],
    },
  };
}
