// Statistics over repeated runs: medians with spread, coefficient of variation, the largest
// deviation from the median (the "within 5% of the median" check), and ratios of two modes
// taken within each round (the runs of one round ran back to back, so a slow minute of the
// machine moves both sides of a ratio together).

export interface Spread {
  n: number;
  median: number;
  min: number;
  max: number;
  /** Quartiles by linear interpolation. */
  q1: number;
  q3: number;
  mean: number;
  /** Sample standard deviation / mean; 0 for a single value; NaN when the mean is 0. */
  cv: number;
  /** max |x - median| / median: how far the worst run strays from the median. */
  maxDeviation: number;
}

/** Quantile by linear interpolation between closest ranks (q in 0..1). NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile must be in [0, 1], got ${q}`);
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return Number.NaN;
  const pos = (xs.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** The spread of a set of run results; non-finite values are ignored. */
export function spread(values: readonly number[]): Spread {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (n === 0)
    return {
      n: 0,
      median: Number.NaN,
      min: Number.NaN,
      max: Number.NaN,
      q1: Number.NaN,
      q3: Number.NaN,
      mean: Number.NaN,
      cv: Number.NaN,
      maxDeviation: Number.NaN,
    };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  const med = median(xs);
  return {
    n,
    median: med,
    min: Math.min(...xs),
    max: Math.max(...xs),
    q1: quantile(xs, 0.25),
    q3: quantile(xs, 0.75),
    mean,
    cv: mean === 0 ? Number.NaN : Math.sqrt(variance) / mean,
    maxDeviation: med === 0 ? Number.NaN : Math.max(...xs.map((x) => Math.abs(x - med))) / med,
  };
}

/** One value per round for a mode; rounds where either side is missing give no ratio. */
export type ByRound = ReadonlyMap<number, number>;

/** The ratio a/b within each round both ran in, in round order. */
export function pairedRatios(a: ByRound, b: ByRound): number[] {
  const rounds = [...a.keys()].filter((r) => b.has(r)).sort((x, y) => x - y);
  return rounds
    .map((r) => (a.get(r) as number) / (b.get(r) as number))
    .filter((x) => Number.isFinite(x));
}

/**
 * The order of the modes in round r (0-based): the list rotated by r, so over rounds each
 * mode runs in every position and no mode always follows the same one (A B C, B C A, ...).
 */
export function roundOrder<T>(modes: readonly T[], round: number): T[] {
  if (modes.length === 0) return [];
  const k = ((round % modes.length) + modes.length) % modes.length;
  return [...modes.slice(k), ...modes.slice(0, k)];
}

/**
 * Pearson's correlation of two equally long series (pairs with a non-finite side dropped);
 * NaN with fewer than 3 pairs or when either side does not vary.
 */
export function correlation(xs: readonly number[], ys: readonly number[]): number {
  if (xs.length !== ys.length) throw new Error("correlation needs two series of one length");
  const pairs = xs
    .map((x, i) => [x, ys[i]] as const)
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (pairs.length < 3) return Number.NaN;
  const mean = (k: 0 | 1) => pairs.reduce((s, p) => s + p[k], 0) / pairs.length;
  const mx = mean(0);
  const my = mean(1);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (const [x, y] of pairs) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
    syy += (y - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? Number.NaN : sxy / Math.sqrt(sxx * syy);
}
