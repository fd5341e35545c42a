// Writing a run's outputs: results.json, plots/*.svg (and *.png when an SVG renderer is
// installed: rsvg-convert from librsvg2-bin, else ImageMagick), report.md.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type RenderedReport, renderReport } from "./report";
import type { BenchResults } from "./runner";

export interface WrittenOutputs {
  dir: string;
  report: RenderedReport;
  /** How PNGs were made, or why not. */
  png: string;
}

function which(cmd: string): string | undefined {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The SVG to PNG converter of this machine, or undefined. */
export function pngConverter():
  | { name: string; argv: (svg: string, png: string) => string[] }
  | undefined {
  const rsvg = which("rsvg-convert");
  if (rsvg)
    return { name: "rsvg-convert", argv: (svg, png) => [rsvg, "-b", "white", "-o", png, svg] };
  // ImageMagick itself (not a stand-in that only serves image previews).
  for (const im of ["/usr/bin/magick", "/usr/bin/convert"]) {
    if (existsSync(im)) return { name: im, argv: (svg, png) => [im, svg, png] };
  }
  return undefined;
}

export function writeOutputs(results: BenchResults, dir: string): WrittenOutputs {
  const plots = join(dir, "plots");
  mkdirSync(plots, { recursive: true });
  writeFileSync(join(dir, "results.json"), `${JSON.stringify(results, null, 1)}\n`);
  const draft = renderReport(results, "svg");
  const charts = draft.charts;
  for (const c of charts) writeFileSync(join(plots, `${c.name}.svg`), c.svg);
  const converter = pngConverter();
  let png = "no SVG renderer found (install librsvg2-bin for rsvg-convert): plots are SVG only";
  let ext: "png" | "svg" = "svg";
  if (converter) {
    const failures: string[] = [];
    for (const c of charts) {
      const [cmd, ...args] = converter.argv(
        join(plots, `${c.name}.svg`),
        join(plots, `${c.name}.png`),
      );
      const r = spawnSync(cmd, args, { encoding: "utf8" });
      if (r.status !== 0)
        failures.push(`${c.name}: ${(r.stderr || r.error?.message || "").trim()}`);
    }
    if (failures.length === 0) {
      png = `PNG made with ${converter.name}`;
      ext = "png";
    } else {
      png = `${converter.name} failed: ${failures.join("; ")}`;
    }
  }
  const report = ext === "svg" ? draft : renderReport(results, ext);
  writeFileSync(join(dir, "report.md"), report.markdown);
  return { dir, report, png };
}
