// Latency distributions as sparse microsecond histograms: what wrk (its Lua stats object)
// and waggle-loadgen print, every request counted once at 1 us resolution. Runs of one cell
// are merged by adding counts, so pooled percentiles are exact, not averages of percentiles.

/** [microseconds, count] pairs, ascending by microseconds, counts > 0. */
export type Histogram = [number, number][];

/** The figures a latency distribution is reported with (microseconds). */
export interface LatencySummary {
  count: number;
  min: number;
  p1: number;
  p25: number;
  p50: number;
  p75: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Checks and normalises a histogram read from a tool: sorted, merged duplicates, no zeros. */
export function normalizeHistogram(pairs: unknown): Histogram {
  if (!Array.isArray(pairs)) throw new Error("histogram must be an array of [us, count] pairs");
  const counts = new Map<number, number>();
  for (const pair of pairs) {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      !Number.isInteger(pair[0]) ||
      !Number.isInteger(pair[1]) ||
      pair[0] < 0 ||
      pair[1] < 0
    )
      throw new Error(`invalid histogram entry ${JSON.stringify(pair)}`);
    if (pair[1] > 0) counts.set(pair[0], (counts.get(pair[0]) ?? 0) + pair[1]);
  }
  return [...counts.entries()].sort((a, b) => a[0] - b[0]);
}

/** Adds histograms together. */
export function mergeHistograms(histograms: readonly Histogram[]): Histogram {
  return normalizeHistogram(histograms.flat());
}

export function histogramCount(h: Histogram): number {
  let n = 0;
  for (const [, c] of h) n += c;
  return n;
}

/**
 * The q-quantile (0..1) by the nearest-rank method: the smallest value with at least
 * ceil(q * n) observations at or below it (q = 0 gives the minimum). NaN when empty.
 */
export function histogramQuantile(h: Histogram, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile must be in [0, 1], got ${q}`);
  const n = histogramCount(h);
  if (n === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * n));
  let seen = 0;
  for (const [value, count] of h) {
    seen += count;
    if (seen >= rank) return value;
  }
  return h[h.length - 1][0];
}

export function summarizeHistogram(h: Histogram): LatencySummary {
  const n = histogramCount(h);
  let sum = 0;
  for (const [v, c] of h) sum += v * c;
  const q = (p: number) => histogramQuantile(h, p);
  return {
    count: n,
    min: n ? h[0][0] : Number.NaN,
    p1: q(0.01),
    p25: q(0.25),
    p50: q(0.5),
    p75: q(0.75),
    p90: q(0.9),
    p99: q(0.99),
    p999: q(0.999),
    max: n ? h[h.length - 1][0] : Number.NaN,
    mean: n ? sum / n : Number.NaN,
  };
}

/**
 * Coarsens a histogram to log-linear buckets: values below `subBuckets` stay exact, larger
 * ones go to the lower bound of a bucket 1/subBuckets of their power of two wide (64: at most
 * 1.6 % low). Keeps a run's histogram small enough to store while pooling stays meaningful.
 */
export function coarsenHistogram(h: Histogram, subBuckets = 64): Histogram {
  if (!Number.isInteger(subBuckets) || subBuckets < 1) throw new Error("subBuckets must be >= 1");
  return normalizeHistogram(h.map(([v, c]) => [bucketFloor(v, subBuckets), c]));
}

function bucketFloor(v: number, subBuckets: number): number {
  if (v < subBuckets) return v;
  const width = 2 ** Math.floor(Math.log2(v)) / subBuckets;
  return Math.floor(v / width) * width;
}
