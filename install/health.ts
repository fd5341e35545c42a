// The installer's HTTP endpoints: /healthz (the process serves), /readyz (ready only while
// every check holds: the entry is in place and the shared programs are loaded; it also lists
// warnings, conditions an operator should fix that do not stop pods from starting), /metrics.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../base/log";
import type { InstallMetrics } from "./metrics";

/** Named readiness checks, each evaluated on every /readyz request. */
export type ReadinessChecks = Record<string, () => boolean>;

/**
 * Named warnings, each evaluated on every /readyz request: what is wrong (a sentence), or null.
 * A warning is shown but never makes the node unready: pods still start, something degrades.
 */
export type ReadinessWarnings = Record<string, () => string | null>;

export interface HealthServerOptions {
  port: number;
  /** "" listens on every address. */
  address: string;
  checks: ReadinessChecks;
  warnings?: ReadinessWarnings;
  metrics: InstallMetrics;
  log: Logger;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export function evaluateReadiness(
  checks: ReadinessChecks,
  warnings: ReadinessWarnings = {},
): {
  ready: boolean;
  checks: Record<string, boolean>;
  warnings: Record<string, string>;
} {
  const results: Record<string, boolean> = {};
  for (const [name, check] of Object.entries(checks)) results[name] = check();
  const raised: Record<string, string> = {};
  for (const [name, warning] of Object.entries(warnings)) {
    const text = warning();
    if (text !== null) raised[name] = text;
  }
  return { ready: Object.values(results).every(Boolean), checks: results, warnings: raised };
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    handle(options, req, res).catch((err: Error) => {
      options.log.warn("health request failed", { url: req.url, error: err.message });
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("internal error\n");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const onListening = () => {
      server.off("error", reject);
      resolve();
    };
    if (options.address === "") server.listen(options.port, onListening);
    else server.listen(options.port, options.address, onListening);
  }).catch((err: Error) => {
    throw new Error(
      `health server cannot listen on ${options.address || "*"}:${options.port}: ${err.message}`,
    );
  });
  const port = (server.address() as AddressInfo).port;
  options.log.info("health server listening", { address: options.address || "*", port });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(
  options: HealthServerOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
    res.end("method not allowed\n");
    return;
  }
  const path = new URL(req.url ?? "/", "http://localhost").pathname;
  if (path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
  } else if (path === "/readyz") {
    const readiness = evaluateReadiness(options.checks, options.warnings);
    res.writeHead(readiness.ready ? 200 : 503, { "content-type": "application/json" });
    res.end(`${JSON.stringify(readiness)}\n`);
  } else if (path === "/metrics") {
    const body = await options.metrics.registry.metrics();
    res.writeHead(200, { "content-type": options.metrics.registry.contentType });
    res.end(body);
  } else {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
  }
}
