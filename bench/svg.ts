// Small dependency-free SVG charts: grouped box plots (latency per mode and rule level, like
// the thesis's figures) and grouped bars with optional stacks and min-max whiskers (CPU per
// request, throughput, setup time). Pure functions from data to SVG text.

export const MODE_COLORS: Record<string, string> = {
  none: "#9e9e9e",
  explicit: "#1f77b4",
  iptables: "#d62728",
  "waggle-redirect": "#98df8a",
  waggle: "#2ca02c",
  merbridge: "#ff7f0e",
};
const FALLBACK_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
export const PART_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2"];

export function escapeXml(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** Series whose first 4 letters would read like another's (under the bars). */
const SHORT_LABELS: Record<string, string> = { "waggle-redirect": "redir" };

/** The label under a bar: the series' first 4 letters, or its own short form. */
export function shortLabel(series: string): string {
  return SHORT_LABELS[series] ?? series.slice(0, 4);
}

function colorOf(series: string, index: number): string {
  return MODE_COLORS[series] ?? FALLBACK_COLORS[index % FALLBACK_COLORS.length];
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/\.?0+$/, ""));

/** "Nice" axis ticks: 1-2-5 steps on a linear axis covering [0, max]. */
export function linearTicks(max: number, target = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max)
    ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

/** 1-2-5 ticks per decade from the largest one <= min to the smallest one >= max (both > 0). */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min)) - 1;
  const hi = Math.ceil(Math.log10(max)) + 1;
  const all: number[] = [];
  for (let e = lo; e <= hi; e++)
    for (const m of [1, 2, 5]) all.push(Number((m * 10 ** e).toPrecision(12)));
  const first = all.filter((v) => v <= min).pop() ?? all[0];
  const last = all.find((v) => v >= max) ?? all[all.length - 1];
  const ticks = all.filter((v) => v >= first && v <= last);
  return ticks.length >= 2 ? ticks : [first, first * 10];
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frame(groups: number, perGroup: number): Frame {
  const plotWidth = Math.max(440, groups * (perGroup * 34 + 30));
  return { width: plotWidth + 90, height: 380, left: 70, right: 20, top: 44, bottom: 70 };
}

function header(f: Frame, title: string, yLabel: string): string[] {
  const midY = f.top + (f.height - f.top - f.bottom) / 2;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${f.width}" height="${f.height}" fill="#ffffff"/>`,
    `<text x="${f.width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="14" y="${midY}" text-anchor="middle" transform="rotate(-90 14 ${midY})">${escapeXml(yLabel)}</text>`,
  ];
}

function legend(f: Frame, series: string[], colors: string[]): string[] {
  const out: string[] = [];
  let x = f.left;
  const y = f.height - 16;
  series.forEach((s, i) => {
    out.push(
      `<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${colors[i]}"/>`,
      `<text x="${x + 14}" y="${y}">${escapeXml(s)}</text>`,
    );
    x += 24 + s.length * 7;
  });
  return out;
}

type Scale = (v: number) => number;

/** The frame, title, note and y axis every chart starts with. */
function plotStart(f: Frame, opts: ChartOptions, ticks: number[], scale: Scale): string[] {
  const out = header(f, opts.title, opts.yLabel);
  if (opts.note)
    out.push(
      `<text x="${f.width / 2}" y="34" text-anchor="middle" fill="#555">${escapeXml(opts.note)}</text>`,
    );
  out.push(...yAxis(f, ticks, scale, opts.unit ?? ""));
  return out;
}

/** Where groups and their series sit along the x axis. */
function groupSlots(f: Frame, groups: readonly unknown[], seriesCount: number) {
  const groupW = (f.width - f.left - f.right) / Math.max(1, groups.length);
  const slotWidth = (groupW - 20) / Math.max(1, seriesCount);
  return {
    slotWidth,
    center: (group: number, series: number) =>
      f.left + group * groupW + 10 + (series + 0.5) * slotWidth,
    label: (group: number, text: string) =>
      `<text x="${f.left + group * groupW + groupW / 2}" y="${f.height - f.bottom + 16}" text-anchor="middle">${escapeXml(text)}</text>`,
  };
}

function yAxis(f: Frame, ticks: number[], scale: Scale, unit: string): string[] {
  const out = [
    `<line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.height - f.bottom}" stroke="#333"/>`,
  ];
  for (const t of ticks) {
    const y = scale(t);
    out.push(
      `<line x1="${f.left - 4}" y1="${y}" x2="${f.width - f.right}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${f.left - 6}" y="${y + 4}" text-anchor="end">${escapeXml(fmt(t) + unit)}</text>`,
    );
  }
  return out;
}

export interface BoxStats {
  /** Whisker bottom, box bottom, median, box top, whisker top, and the largest value. */
  p1: number;
  p25: number;
  p50: number;
  p75: number;
  p99: number;
  max: number;
}

export interface BoxGroup {
  label: string;
  boxes: { series: string; stats: BoxStats | null }[];
}

export interface ChartOptions {
  title: string;
  yLabel: string;
  /** Appended to tick labels ("ms", "%"). */
  unit?: string;
  log?: boolean;
  /** A note under the title (what the whiskers mean, the machine state). */
  note?: string;
}

/**
 * Box plots: box p25..p75 with the median, whiskers p1..p99, a dot at the maximum.
 * Values must be > 0 on a log axis; boxes with no stats are left out (their slot stays).
 */
export function boxPlotSvg(groups: BoxGroup[], opts: ChartOptions): string {
  const series = [...new Set(groups.flatMap((g) => g.boxes.map((b) => b.series)))];
  const colors = series.map(colorOf);
  const f = frame(groups.length, series.length);
  const values = groups
    .flatMap((g) => g.boxes.flatMap((b) => (b.stats ? [b.stats.p1, b.stats.max] : [])))
    .filter((v) => Number.isFinite(v) && (!opts.log || v > 0));
  const plotH = f.height - f.top - f.bottom;
  let ticks: number[];
  let scale: Scale;
  if (opts.log) {
    const lo = values.length ? Math.min(...values) : 1;
    const hi = values.length ? Math.max(...values) : 10;
    ticks = logTicks(lo, hi === lo ? lo * 10 : hi);
    const a = Math.log10(ticks[0]);
    const b = Math.log10(ticks[ticks.length - 1]);
    scale = (v) => f.top + plotH - ((Math.log10(Math.max(v, ticks[0])) - a) / (b - a)) * plotH;
  } else {
    ticks = linearTicks(values.length ? Math.max(...values) : 1);
    const top = ticks[ticks.length - 1];
    scale = (v) => f.top + plotH - (v / top) * plotH;
  }
  const out = plotStart(f, opts, ticks, scale);
  const slots = groupSlots(f, groups, series.length);
  const boxW = Math.min(26, slots.slotWidth - 6);
  groups.forEach((g, gi) => {
    out.push(slots.label(gi, g.label));
    series.forEach((s, si) => {
      const box = g.boxes.find((b) => b.series === s)?.stats;
      if (!box) return;
      const cx = slots.center(gi, si);
      const [y1, y25, y50, y75, y99, ymax] = [
        box.p1,
        box.p25,
        box.p50,
        box.p75,
        box.p99,
        box.max,
      ].map(scale);
      const c = colors[si];
      out.push(
        `<g class="box" data-series="${escapeXml(s)}" data-group="${escapeXml(g.label)}">`,
        `<line x1="${cx}" y1="${y1}" x2="${cx}" y2="${y25}" stroke="${c}"/>`,
        `<line x1="${cx}" y1="${y75}" x2="${cx}" y2="${y99}" stroke="${c}"/>`,
        `<line x1="${cx - boxW / 4}" y1="${y1}" x2="${cx + boxW / 4}" y2="${y1}" stroke="${c}"/>`,
        `<line x1="${cx - boxW / 4}" y1="${y99}" x2="${cx + boxW / 4}" y2="${y99}" stroke="${c}"/>`,
        `<rect x="${cx - boxW / 2}" y="${y75}" width="${boxW}" height="${Math.max(1, y25 - y75)}" fill="${c}" fill-opacity="0.35" stroke="${c}"/>`,
        `<line x1="${cx - boxW / 2}" y1="${y50}" x2="${cx + boxW / 2}" y2="${y50}" stroke="${c}" stroke-width="2"/>`,
        `<circle cx="${cx}" cy="${ymax}" r="2.5" fill="${c}"/>`,
        "</g>",
      );
    });
  });
  out.push(...legend(f, series, colors), "</svg>");
  return `${out.join("\n")}\n`;
}

export interface BarGroup {
  label: string;
  bars: {
    series: string;
    /** Stacked parts (bottom first); their sum is the bar's height. */
    parts: { name: string; value: number }[];
    /** Optional whisker (e.g. min and max over rounds) around the total. */
    range?: [number, number];
  }[];
}

/** Grouped bars, each a stack of parts coloured by part (one part: coloured by series). */
export function barChartSvg(groups: BarGroup[], opts: ChartOptions): string {
  const series = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.series)))];
  const partNames = [
    ...new Set(groups.flatMap((g) => g.bars.flatMap((b) => b.parts.map((p) => p.name)))),
  ];
  const stacked = partNames.length > 1;
  const seriesColors = series.map(colorOf);
  const f = frame(groups.length, series.length);
  const totals = groups
    .flatMap((g) =>
      g.bars.flatMap((b) => [
        b.parts.reduce((s, p) => s + p.value, 0),
        ...(b.range ? [b.range[1]] : []),
      ]),
    )
    .filter(Number.isFinite);
  const ticks = linearTicks(totals.length ? Math.max(...totals) : 1);
  const top = ticks[ticks.length - 1];
  const plotH = f.height - f.top - f.bottom;
  const scale: Scale = (v) => f.top + plotH - (v / top) * plotH;
  const out = plotStart(f, opts, ticks, scale);
  const slots = groupSlots(f, groups, series.length);
  const barW = Math.min(26, slots.slotWidth - 4);
  groups.forEach((g, gi) => {
    out.push(slots.label(gi, g.label));
    series.forEach((s, si) => {
      const bar = g.bars.find((b) => b.series === s);
      if (!bar) return;
      const cx = slots.center(gi, si);
      out.push(`<g class="bar" data-series="${escapeXml(s)}" data-group="${escapeXml(g.label)}">`);
      let base = 0;
      for (const p of bar.parts) {
        if (!Number.isFinite(p.value) || p.value <= 0) continue;
        const y0 = scale(base);
        const y1 = scale(base + p.value);
        const fill = stacked
          ? PART_COLORS[partNames.indexOf(p.name) % PART_COLORS.length]
          : seriesColors[si];
        out.push(
          `<rect x="${cx - barW / 2}" y="${y1}" width="${barW}" height="${Math.max(0.5, y0 - y1)}" fill="${fill}" stroke="${seriesColors[si]}"/>`,
        );
        base += p.value;
      }
      if (bar.range?.every(Number.isFinite)) {
        const [ylo, yhi] = bar.range.map(scale);
        out.push(
          `<line x1="${cx}" y1="${ylo}" x2="${cx}" y2="${yhi}" stroke="#000"/>`,
          `<line x1="${cx - 4}" y1="${yhi}" x2="${cx + 4}" y2="${yhi}" stroke="#000"/>`,
          `<line x1="${cx - 4}" y1="${ylo}" x2="${cx + 4}" y2="${ylo}" stroke="#000"/>`,
        );
      }
      out.push(
        `<text x="${cx}" y="${f.height - f.bottom + 30}" text-anchor="middle" font-size="9" fill="${seriesColors[si]}">${escapeXml(shortLabel(s))}</text>`,
        "</g>",
      );
    });
  });
  const legendSeries = stacked ? partNames : series;
  const legendColors = stacked
    ? partNames.map((_, i) => PART_COLORS[i % PART_COLORS.length])
    : seriesColors;
  out.push(...legend(f, legendSeries, legendColors), "</svg>");
  return `${out.join("\n")}\n`;
}

export interface LineSeries {
  name: string;
  points: { x: number; y: number }[];
  /** Draw a line through the points (else markers only). */
  line?: boolean;
}

/** Points (and lines) of y against a numeric x, both axes linear from 0. */
export function lineChartSvg(
  series: LineSeries[],
  opts: ChartOptions & { xLabel: string },
): string {
  const colors = series.map((s, i) => colorOf(s.name, i));
  const f = frame(6, 2);
  const all = series.flatMap((s) =>
    s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)),
  );
  const yTicks = linearTicks(all.length ? Math.max(...all.map((p) => p.y)) : 1);
  const xTicks = linearTicks(all.length ? Math.max(...all.map((p) => p.x)) : 1);
  const plotH = f.height - f.top - f.bottom;
  const plotW = f.width - f.left - f.right;
  const yScale: Scale = (v) => f.top + plotH - (v / yTicks[yTicks.length - 1]) * plotH;
  const xScale: Scale = (v) => f.left + (v / xTicks[xTicks.length - 1]) * plotW;
  const out = plotStart(f, opts, yTicks, yScale);
  const base = f.height - f.bottom;
  for (const t of xTicks)
    out.push(
      `<line x1="${xScale(t)}" y1="${base}" x2="${xScale(t)}" y2="${base + 4}" stroke="#333"/>`,
      `<text x="${xScale(t)}" y="${base + 16}" text-anchor="middle">${escapeXml(fmt(t))}</text>`,
    );
  out.push(
    `<line x1="${f.left}" y1="${base}" x2="${f.width - f.right}" y2="${base}" stroke="#333"/>`,
    `<text x="${f.left + plotW / 2}" y="${base + 32}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const ps = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    out.push(`<g class="series" data-series="${escapeXml(s.name)}">`);
    if (s.line && ps.length > 1)
      out.push(
        `<polyline fill="none" stroke="${colors[i]}" stroke-width="2" points="${ps.map((p) => `${xScale(p.x)},${yScale(p.y)}`).join(" ")}"/>`,
      );
    for (const p of ps)
      out.push(
        `<circle cx="${xScale(p.x)}" cy="${yScale(p.y)}" r="${s.line ? 3.5 : 2}" fill="${colors[i]}" fill-opacity="${s.line ? 1 : 0.5}"/>`,
      );
    out.push("</g>");
  });
  out.push(
    ...legend(
      f,
      series.map((s) => s.name),
      colors,
    ),
    "</svg>",
  );
  return `${out.join("\n")}\n`;
}
