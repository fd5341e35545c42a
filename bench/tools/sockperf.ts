// sockperf ping-pong over TCP: one connection, one message in flight, the round trip of
// each message measured (--full-rtt). Through the sidecars this is the per-message cost of
// the path once connected (no connection setup in it).

import type { LatencySummary } from "../histogram";

export interface SockperfArgs {
  host: string;
  port: number;
  durationS: number;
  messageBytes: number;
}

export function sockperfClientArgv(a: SockperfArgs): string[] {
  if (!Number.isInteger(a.messageBytes) || a.messageBytes < 14 || a.messageBytes > 65000)
    throw new Error(`sockperf message size must be 14..65000 bytes, got ${a.messageBytes}`);
  return [
    "ping-pong",
    "--tcp",
    "-i",
    a.host,
    "-p",
    String(a.port),
    "-t",
    String(a.durationS),
    "-m",
    String(a.messageBytes),
    "--full-rtt",
  ];
}

export function sockperfServerArgv(port: number): string[] {
  return ["server", "--tcp", "-i", "0.0.0.0", "-p", String(port)];
}

export interface SockperfResult {
  observations: number;
  /** The measured part of the run (sockperf's "Valid Duration"), seconds. */
  validS: number;
  sent: number;
  received: number;
  /** Round-trip times in microseconds (p1 is not printed by sockperf: NaN). */
  rttUs: LatencySummary;
}

/** SGR colour sequences sockperf puts around some lines (ESC "[" digits "m"). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/** Parses sockperf ping-pong's summary (it prints to stdout and stderr; pass both). */
export function parseSockperfOutput(text: string): SockperfResult {
  const out = text.replace(ANSI, "");
  const num = (re: RegExp, what: string): number => {
    const m = re.exec(out);
    if (!m) throw new Error(`sockperf output has no ${what}: ${out.slice(-800)}`);
    return Number(m[1]);
  };
  const valid =
    /\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)/.exec(out);
  if (!valid) throw new Error(`sockperf output has no valid-duration line: ${out.slice(-800)}`);
  const pct = (p: string) =>
    num(new RegExp(`percentile ${p.replace(".", "\\.")} =\\s*([\\d.]+)`), `percentile ${p}`);
  const observations = num(/Total (\d+) observations/, "observation count");
  return {
    observations,
    validS: Number(valid[1]),
    sent: Number(valid[2]),
    received: Number(valid[3]),
    rttUs: {
      count: observations,
      min: num(/<MIN> observation =\s*([\d.]+)/, "minimum"),
      p1: Number.NaN,
      p25: pct("25.000"),
      p50: pct("50.000"),
      p75: pct("75.000"),
      p90: pct("90.000"),
      p99: pct("99.000"),
      p999: pct("99.900"),
      max: num(/<MAX> observation =\s*([\d.]+)/, "maximum"),
      mean: num(/avg-rtt=([\d.]+)/, "average"),
    },
  };
}
