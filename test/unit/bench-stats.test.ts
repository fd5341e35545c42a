import { expect } from "chai";
import {
  coarsenHistogram,
  histogramCount,
  histogramQuantile,
  mergeHistograms,
  normalizeHistogram,
  summarizeHistogram,
} from "../../bench/histogram";
import { correlation, median, pairedRatios, quantile, roundOrder, spread } from "../../bench/stats";

describe("bench statistics (bench/stats.ts, bench/histogram.ts)", () => {
  describe("histograms", () => {
    it("normalises: sorts, merges duplicate values and drops empty buckets", () => {
      expect(
        normalizeHistogram([
          [30, 1],
          [10, 2],
          [30, 4],
          [20, 0],
        ]),
      ).to.deep.equal([
        [10, 2],
        [30, 5],
      ]);
    });

    it("rejects entries that are not [non-negative integer, non-negative integer]", () => {
      expect(() => normalizeHistogram([[1.5, 1]])).to.throw(/invalid histogram entry/);
      expect(() => normalizeHistogram([[1, -1]])).to.throw(/invalid histogram entry/);
      expect(() => normalizeHistogram([[1]])).to.throw(/invalid histogram entry/);
      expect(() => normalizeHistogram({})).to.throw(/must be an array/);
    });

    it("nearest-rank quantiles count every request once", () => {
      // 100 requests: 1..100 us
      const h = normalizeHistogram(Array.from({ length: 100 }, (_, i) => [i + 1, 1]));
      expect(histogramQuantile(h, 0.5)).to.equal(50);
      expect(histogramQuantile(h, 0.99)).to.equal(99);
      expect(histogramQuantile(h, 1)).to.equal(100);
      expect(histogramQuantile(h, 0)).to.equal(1);
      expect(histogramQuantile([], 0.5)).to.be.NaN;
      expect(() => histogramQuantile(h, 1.5)).to.throw(/quantile/);
    });

    it("pooling runs adds counts, so pooled percentiles are exact", () => {
      const a = normalizeHistogram([
        [100, 90],
        [1000, 10],
      ]);
      const b = normalizeHistogram([[200, 100]]);
      const pooled = mergeHistograms([a, b]);
      expect(histogramCount(pooled)).to.equal(200);
      // 90 at 100, 100 at 200, 10 at 1000: p50 is the 100th value -> 200, p99 the 198th -> 1000
      expect(histogramQuantile(pooled, 0.5)).to.equal(200);
      expect(histogramQuantile(pooled, 0.99)).to.equal(1000);
    });

    it("summarises min, quartiles, tail percentiles, max and mean", () => {
      const s = summarizeHistogram([
        [10, 1],
        [20, 2],
        [40, 1],
      ]);
      expect(s).to.include({ count: 4, min: 10, p50: 20, max: 40, mean: 22.5, p25: 10, p75: 20 });
      expect(summarizeHistogram([]).count).to.equal(0);
      expect(summarizeHistogram([]).p50).to.be.NaN;
    });

    it("coarsening keeps small values exact and larger ones within 1/64 below", () => {
      const h = coarsenHistogram([
        [5, 1],
        [63, 1],
        [1000, 1],
        [1001, 1],
        [123_457, 1],
      ]);
      expect(h[0]).to.deep.equal([5, 1]);
      expect(h[1]).to.deep.equal([63, 1]);
      // 1000 and 1001 share a bucket 8 us wide starting at 1000 (512 / 64 = 8)
      expect(h[2]).to.deep.equal([1000, 2]);
      const big = h[3][0];
      expect(big).to.be.at.most(123_457);
      expect((123_457 - big) / 123_457).to.be.below(1 / 64);
      expect(histogramCount(h)).to.equal(5);
    });
  });

  describe("spread over rounds", () => {
    it("median, quartiles by interpolation, CV and the worst deviation from the median", () => {
      const s = spread([100, 102, 98, 110]);
      expect(s.n).to.equal(4);
      expect(s.median).to.equal(101);
      expect(s.min).to.equal(98);
      expect(s.max).to.equal(110);
      expect(s.maxDeviation).to.be.closeTo(9 / 101, 1e-12);
      const mean = 102.5;
      const sd = Math.sqrt(
        ((100 - mean) ** 2 + (102 - mean) ** 2 + (98 - mean) ** 2 + (110 - mean) ** 2) / 3,
      );
      expect(s.cv).to.be.closeTo(sd / mean, 1e-12);
    });

    it("one value has no variation; no values give NaN; non-finite values are ignored", () => {
      expect(spread([5]).cv).to.equal(0);
      expect(spread([5]).maxDeviation).to.equal(0);
      expect(spread([]).median).to.be.NaN;
      expect(spread([Number.NaN, 4, Number.POSITIVE_INFINITY]).n).to.equal(1);
    });

    it("correlation: +1 and -1 for straight lines, NaN without variation or with under 3 pairs", () => {
      expect(correlation([1, 2, 3, 4], [10, 20, 30, 40])).to.be.closeTo(1, 1e-12);
      expect(correlation([1, 2, 3, 4], [8, 6, 4, 2])).to.be.closeTo(-1, 1e-12);
      // a known value: x = 1..5, y = 2,4,5,4,5 gives r = 0.7746
      expect(correlation([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])).to.be.closeTo(0.7746, 1e-4);
      expect(correlation([1, 2, 3], [5, 5, 5])).to.be.NaN;
      expect(correlation([1, 2], [1, 2])).to.be.NaN;
      // a pair with a non-finite side is dropped, not counted as zero
      expect(correlation([1, 2, 3, Number.NaN], [2, 4, 6, 100])).to.be.closeTo(1, 1e-12);
      expect(() => correlation([1, 2, 3], [1, 2])).to.throw(/one length/);
    });

    it("quantile interpolates between ranks and refuses q outside [0, 1]", () => {
      expect(quantile([1, 2, 3, 4], 0.25)).to.equal(1.75);
      expect(median([3, 1, 2])).to.equal(2);
      expect(() => quantile([1], -0.1)).to.throw(/quantile/);
    });
  });

  describe("pairing and interleaving", () => {
    it("ratios are taken within each round both modes ran in", () => {
      const a = new Map([
        [0, 90],
        [1, 100],
        [3, 50],
      ]);
      const b = new Map([
        [0, 100],
        [1, 100],
        [2, 100],
      ]);
      expect(pairedRatios(a, b)).to.deep.equal([0.9, 1]);
    });

    it("each round rotates the mode order, so every mode runs in every position", () => {
      const modes = ["a", "b", "c"];
      expect([0, 1, 2, 3].map((r) => roundOrder(modes, r).join(""))).to.deep.equal([
        "abc",
        "bca",
        "cab",
        "abc",
      ]);
      expect(roundOrder([], 3)).to.deep.equal([]);
    });
  });
});
