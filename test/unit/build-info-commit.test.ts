// gitCommit: the commit a build bakes into the binary, from git or, in a build without .git
// (the image's), from WAGGLE_COMMIT.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { gitCommit } from "../../base/build-info";

describe("build info: the commit", () => {
  const saved = process.env.WAGGLE_COMMIT;
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-nogit-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    if (saved === undefined) delete process.env.WAGGLE_COMMIT;
    else process.env.WAGGLE_COMMIT = saved;
  });

  it("is 'unknown' outside git when WAGGLE_COMMIT is not set", () => {
    delete process.env.WAGGLE_COMMIT;
    expect(gitCommit(dir)).to.equal("unknown");
  });

  it("is WAGGLE_COMMIT when set (a build without .git), dirty or not", () => {
    for (const c of ["0123456789ab", "0123456789ab-dirty"]) {
      process.env.WAGGLE_COMMIT = c;
      expect(gitCommit(dir)).to.equal(c);
    }
  });

  it("refuses a WAGGLE_COMMIT that is not 12 hex digits", () => {
    for (const c of ["HEAD", "0123456789abc", "0123456789AB", "0123456789ab-clean"]) {
      process.env.WAGGLE_COMMIT = c;
      expect(() => gitCommit(dir), c).to.throw(/is not a 12-digit commit/);
    }
  });
});
