// wrk for maximum throughput (keep-alive, and a new connection per request with
// "Connection: close": wrk reconnects whenever the server closes). A Lua done() hook prints
// the whole latency histogram (wrk keeps one counter per microsecond; `latency(i)` gives the
// i-th non-empty bucket), so percentiles are per-request figures, not wrk's rounded text.
// wrk starts a request's clock when it writes it: a new connection's own connect is not in
// its latency (use waggle-loadgen's fixed-rate runs for that).

import { type Histogram, normalizeHistogram } from "../histogram";

/** The done() hook: one line "WAGGLE-WRK {json}". */
export const WRK_LUA = `done = function(summary, latency, requests)
  local parts = {}
  for i = 1, #latency do
    local v, c = latency(i)
    parts[#parts + 1] = string.format("[%d,%d]", v, c)
  end
  local e = summary.errors
  io.write(string.format(
    'WAGGLE-WRK {"requests":%d,"durationUs":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latencyUs":[%s]}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ",")))
end
`;

export interface WrkArgs {
  url: string;
  connections: number;
  durationS: number;
  newConnection: boolean;
  scriptPath: string;
  timeoutS?: number;
}

/** wrk's argv: one thread (the load generator gets one CPU), `connections` connections. */
export function wrkArgv(a: WrkArgs): string[] {
  if (!Number.isInteger(a.connections) || a.connections < 1)
    throw new Error(`wrk connections must be a positive integer, got ${a.connections}`);
  if (!(a.durationS >= 1) || !Number.isInteger(a.durationS))
    throw new Error(`wrk duration must be a whole number of seconds >= 1, got ${a.durationS}`);
  return [
    "-t1",
    `-c${a.connections}`,
    `-d${a.durationS}s`,
    `--timeout`,
    `${a.timeoutS ?? 2}s`,
    "-s",
    a.scriptPath,
    ...(a.newConnection ? ["-H", "Connection: close"] : []),
    a.url,
  ];
}

export interface WrkResult {
  requests: number;
  durationUs: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: Histogram;
}

/** Parses wrk's output (the WAGGLE-WRK line of the done() hook). */
export function parseWrkOutput(stdout: string): WrkResult {
  const line = stdout.split("\n").find((l) => l.startsWith("WAGGLE-WRK "));
  if (!line) throw new Error(`wrk printed no result line: ${stdout.slice(0, 500)}`);
  const raw = JSON.parse(line.slice("WAGGLE-WRK ".length)) as WrkResult;
  for (const k of ["requests", "durationUs", "bytes"] as const) {
    if (!Number.isFinite(raw[k])) throw new Error(`wrk result has no ${k}`);
  }
  if (raw.durationUs <= 0) throw new Error("wrk result has a zero duration");
  return { ...raw, latencyUs: normalizeHistogram(raw.latencyUs) };
}

/** Errors wrk counted (any of them means the run did not measure what it should). */
export function wrkErrorCount(r: WrkResult): number {
  return Object.values(r.errors).reduce((a, b) => a + b, 0);
}
