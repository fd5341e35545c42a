// A CNI invocation ends as soon as its result is written: it neither waits for the event loop
// to drain (a handle left open would hold the runtime for the 2 s grace) nor loses output.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";

const MAIN = join(__dirname, "..", "..", "app", "main.js");

describe("entry: a CNI invocation exits once its output is written", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-exit-test-"));
    // A handle that keeps the event loop alive for 10 s.
    writeFileSync(join(dir, "linger.cjs"), "setTimeout(() => {}, 10_000);\n");
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function run(env: NodeJS.ProcessEnv, input: string) {
    const started = performance.now();
    const r = spawnSync(process.execPath, ["--require", join(dir, "linger.cjs"), MAIN], {
      env: { PATH: process.env.PATH, ...env },
      input,
      encoding: "utf8",
      timeout: 20_000,
    });
    return { ...r, ms: performance.now() - started };
  }

  it("VERSION: exit 0 with the whole result, without waiting for a lingering handle", () => {
    const r = run({ CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
    expect(r.status).to.equal(0);
    expect(JSON.parse(r.stdout)).to.have.property("supportedVersions");
    expect(r.ms).to.be.below(1900); // the forced exit would come after 2 s
  });

  it("a failed call: exit 1 with its error JSON on stdout, without waiting either", () => {
    const r = run({ CNI_COMMAND: "ADD" }, "{}");
    expect(r.status).to.equal(1);
    expect(JSON.parse(r.stdout)).to.include({ code: 4 });
    expect(r.ms).to.be.below(1900);
  });
});
