// The rooms of the source tree (README.md "Layout", docs/architecture.md "Rooms") and the
// imports between them, read from the TypeScript sources: every room depends only on the rooms
// its row allows, no two rooms import each other, and only the datapath's own files import
// past its two entries (datapath/index.ts, datapath/pins.ts).
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { expect } from "chai";

const repo = join(__dirname, "..", "..", "..");

/** Each room, by the folder it lives in, and the rooms it may import. */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  base: [],
  mesh: ["base"],
  datapath: ["base", "mesh"],
  cni: ["base", "mesh", "datapath"],
  install: ["base", "mesh", "datapath"],
  app: ["base", "mesh", "datapath", "cni", "install"],
  // the lab the kernel tests, the bench and the demo build pods in
  "test/support": ["base", "mesh", "datapath", "cni", "install", "app"],
  bench: ["base", "mesh", "datapath", "test/support"],
  scripts: ["base", "mesh", "datapath", "test/support"],
  test: ["base", "mesh", "datapath", "cni", "install", "app", "bench", "test/support"],
};

/** The only datapath files other rooms may import. */
const DATAPATH_ENTRIES = ["datapath/index.ts", "datapath/pins.ts"];

/** The room of a repository path (the longest room folder that contains it), or undefined. */
function roomOf(path: string): string | undefined {
  const rooms = Object.keys(ALLOWED).sort((a, b) => b.length - a.length);
  return rooms.find((room) => path === room || path.startsWith(`${room}/`));
}

/** Every module specifier a TypeScript source imports: import/export from, import(), require(). */
function importsOf(source: string): string[] {
  const specifiers: string[] = [];
  const pattern =
    /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire(?:\.resolve)?\s*\(\s*)"([^"\n]+)"/g;
  for (const m of source.matchAll(pattern)) specifiers.push(m[1]);
  return specifiers;
}

/** A relative specifier of `file` as the repository path of the TypeScript file it names. */
function resolveImport(file: string, specifier: string, exists: (path: string) => boolean) {
  const base = relative(repo, resolve(repo, dirname(file), specifier));
  for (const candidate of [`${base}.ts`, `${base}/index.ts`, base]) {
    if (exists(candidate)) return candidate;
  }
  return base;
}

interface Edge {
  from: string;
  to: string;
}

/** What breaks the layout among `edges` (file to file, repository paths); [] when nothing. */
function layoutViolations(edges: readonly Edge[]): string[] {
  const problems: string[] = [];
  const roomEdges = new Set<string>();
  for (const { from, to } of edges) {
    const fromRoom = roomOf(from);
    const toRoom = roomOf(to);
    if (fromRoom === undefined || toRoom === undefined || fromRoom === toRoom) continue;
    roomEdges.add(`${fromRoom} -> ${toRoom}`);
    if (!ALLOWED[fromRoom].includes(toRoom)) {
      problems.push(`${from} imports ${to}: ${fromRoom}/ may not depend on ${toRoom}/`);
    }
    if (toRoom === "datapath" && !DATAPATH_ENTRIES.includes(to)) {
      problems.push(
        `${from} imports ${to}: outside datapath/, use ${DATAPATH_ENTRIES.join(" or ")}`,
      );
    }
  }
  for (const edge of roomEdges) {
    const [a, b] = edge.split(" -> ");
    if (a < b && roomEdges.has(`${b} -> ${a}`)) problems.push(`${a}/ and ${b}/ import each other`);
  }
  return problems;
}

function sourcesUnder(dir: string): string[] {
  return readdirSync(join(repo, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(repo, join(e.parentPath, e.name)));
}

/** The repository's import graph over the rooms, file to file. */
function repositoryEdges(): Edge[] {
  const scanned = ["base", "mesh", "datapath", "cni", "install", "app", "bench", "test"];
  const files = [
    ...scanned.flatMap(sourcesUnder),
    ...readdirSync(join(repo, "scripts"))
      .filter((name) => name.endsWith(".ts"))
      .map((name) => `scripts/${name}`),
  ];
  const known = new Set(files);
  const edges: Edge[] = [];
  for (const from of files) {
    for (const specifier of importsOf(readFileSync(join(repo, from), "utf8"))) {
      if (!specifier.startsWith(".")) continue;
      edges.push({ from, to: resolveImport(from, specifier, (p) => known.has(p)) });
    }
  }
  return edges;
}

describe("layout: the rooms and the imports between them", () => {
  const edges = repositoryEdges();

  it("reads the imports of every room's sources (a graph too small means the parser broke)", () => {
    const rooms = new Set(edges.map((e) => roomOf(e.from)));
    for (const room of Object.keys(ALLOWED)) expect(rooms, room).to.include(room);
    expect(edges).to.deep.include({ from: "app/main.ts", to: "cni/plugin.ts" });
  });

  it("every room imports only the rooms its row allows, and only the datapath's two entries", () => {
    expect(layoutViolations(edges)).to.deep.equal([]);
  });

  it("no room's allowed dependencies lead back to it", () => {
    const reaches = (from: string, target: string, seen = new Set<string>()): boolean =>
      ALLOWED[from].some((next) => {
        if (next === target) return true;
        if (seen.has(next)) return false;
        seen.add(next);
        return reaches(next, target, seen);
      });
    for (const room of Object.keys(ALLOWED)) expect(reaches(room, room), room).to.equal(false);
  });

  describe("the check itself", () => {
    it("names an import from a lower room to a higher one", () => {
      expect(
        layoutViolations([{ from: "mesh/config.ts", to: "cni/skel/errors.ts" }]),
      ).to.deep.equal(["mesh/config.ts imports cni/skel/errors.ts: mesh/ may not depend on cni/"]);
    });

    it("names an import past the datapath's entries, from any room, tests included", () => {
      expect(
        layoutViolations([
          { from: "test/unit/x.test.ts", to: "datapath/layout.ts" },
          { from: "test/unit/x.test.ts", to: "datapath/pins.ts" },
          { from: "datapath/index.ts", to: "datapath/layout.ts" },
        ]),
      ).to.deep.equal([
        "test/unit/x.test.ts imports datapath/layout.ts: outside datapath/, use datapath/index.ts or datapath/pins.ts",
      ]);
    });

    it("names two rooms that import each other, and the installer reaching into the plugin", () => {
      expect(
        layoutViolations([
          { from: "cni/plugin.ts", to: "install/repair.ts" },
          { from: "install/repair.ts", to: "cni/plugin.ts" },
        ]),
      ).to.deep.equal([
        "cni/plugin.ts imports install/repair.ts: cni/ may not depend on install/",
        "install/repair.ts imports cni/plugin.ts: install/ may not depend on cni/",
        "cni/ and install/ import each other",
      ]);
    });

    it("finds static, dynamic and type-only imports, re-exports and require.resolve", () => {
      const source = [
        'import { a } from "./a";',
        'import type { B } from "../b";',
        'export { c } from "./c";',
        'import "./d";',
        'const e = require("./e") as typeof import("./e");',
        'const f = require.resolve("../../f");',
        'const g = await import("./g");',
      ].join("\n");
      expect(importsOf(source)).to.deep.equal([
        "./a",
        "../b",
        "./c",
        "./d",
        "./e",
        "./e",
        "../../f",
        "./g",
      ]);
    });
  });
});
