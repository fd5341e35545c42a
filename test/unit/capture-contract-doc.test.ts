// docs/capture-contract.md against the code and the tests: every row the capture scenarios
// test is written down there with Istio's rule and waggle's, every pod-selection rule is in its
// table in istio-cni's order, its links resolve, and nothing in the repository cites material
// a user of the repository does not have.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { expect } from "chai";
import { SELECTION_RULES } from "../../mesh/pod-selection";
import { CAPTURE_SCENARIOS } from "../support/capture-scenarios";

const repo = join(__dirname, "..", "..", "..");
const DOC = "docs/capture-contract.md";
const doc = readFileSync(join(repo, DOC), "utf8");

/** First cells of the markdown table rows ("| O1 | ..." -> "O1"), in document order. */
function firstCells(markdown: string): string[] {
  return [...markdown.matchAll(/^\| *([^|]+?) *\|/gm)].map((m) => m[1]);
}

/** Files of the repository's own tree (no dependencies, build or bench outputs, VCS data). */
function repositoryFiles(dir = repo): string[] {
  const skip = new Set(["node_modules", "out", "build", "dist", ".git", ".bench"]);
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return skip.has(e.name) ? [] : repositoryFiles(path);
    return e.isFile() ? [path] : [];
  });
}

describe("docs/capture-contract.md", () => {
  it("has a table row for every contract row the capture scenarios test, with Istio's rule and waggle's", () => {
    const rows = new Set(CAPTURE_SCENARIOS.map((s) => s.row));
    // V (the validation probe) and P (per-pod settings) are sections, not rows.
    rows.delete("V");
    rows.delete("P");
    expect(rows.size).to.equal(19);
    const lines = doc.split("\n");
    for (const row of rows) {
      const line = lines.find((l) => l.startsWith(`| ${row} |`));
      expect(line, `row ${row}`).to.not.equal(undefined);
      // row | connection | result | Istio's rule | waggle: every cell filled
      const cells = (line as string).slice(1, -1).split("|");
      expect(cells, `row ${row}`).to.have.length(5);
      for (const cell of cells) expect(cell.trim(), `a cell of row ${row}`).to.not.equal("");
    }
    expect(doc).to.include("The scenarios call this check V");
  });

  it("lists every pod-selection rule in istio-cni's order", () => {
    const named = firstCells(doc)
      .map((c) => c.replace(/^`|`$/g, ""))
      .filter((c) => (SELECTION_RULES as readonly string[]).includes(c));
    expect(named).to.deep.equal([...SELECTION_RULES]);
  });

  it("links only to files that exist", () => {
    for (const m of doc.matchAll(/\]\(([^)#\s]+)(#[^)\s]*)?\)/g)) {
      expect(existsSync(join(repo, dirname(DOC), m[1])), m[1]).to.equal(true);
    }
  });

  it("is what code, tests and docs cite: nothing points outside the repository", () => {
    const outside = "shared/" + "reference"; // split so this file does not match itself
    const citing = repositoryFiles()
      .filter((f) => readFileSync(f).includes(outside))
      .map((f) => f.slice(repo.length + 1));
    expect(citing).to.deep.equal([]);
  });
});
