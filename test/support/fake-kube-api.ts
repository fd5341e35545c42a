// A minimal stand-in for the Kubernetes API server: serves GET .../namespaces/N/pods/P from a
// map over plain HTTP on loopback, with scripted failures, and records every request. Plus a
// kubeconfig pointing at it (TLS verification is skipped only because this test server has
// no TLS; waggle's installer never writes such a kubeconfig).
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
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

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    return this.url;
  }

  get url(): string {
    if (!this.server) throw new Error("FakeKubeApi: not started");
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
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
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)/.exec(req.url ?? "");
    const pod = m ? this.pods.get(`${m[1]}/${m[2]}`) : undefined;
    if (step) status(res, step.status, step.message ?? `scripted ${step.status}`);
    else if (req.headers.authorization !== `Bearer ${this.token}`) status(res, 401, "Unauthorized");
    else if (req.method !== "GET" || !m) status(res, 405, "only GET pod is served");
    else if (!pod) status(res, 404, `pods "${m[2]}" not found`);
    else {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ apiVersion: "v1", kind: "Pod", ...pod }));
    }
  }
}

function status(res: ServerResponse, code: number, message: string): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify({ apiVersion: "v1", kind: "Status", status: "Failure", message, code }));
}
