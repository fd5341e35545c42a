// How the single executable's JavaScript chunks travel (scripts/sea-chunk.cjs): the build
// writes each as an ASCII script, and the binary reads its asset's bytes as Latin-1.
import { join } from "node:path";
import { runInThisContext } from "node:vm";
import { expect } from "chai";

const chunk = require(join(__dirname, "..", "..", "..", "scripts", "sea-chunk.cjs")) as {
  wrap(source: string): string;
  script(bytes: ArrayBuffer | Uint8Array): string;
};

describe("sea-chunk: a chunk's script", () => {
  it("wraps the bundle in the module function, whose body it is", () => {
    const script = chunk.wrap("module.exports = exports === module.exports;");
    const m: { exports: unknown } = { exports: {} };
    runInThisContext(script)(m.exports, require, m, "f", "d");
    expect(m.exports).to.equal(true);
  });

  it("refuses a bundle that is not ASCII, naming the offset (the binary would misread it)", () => {
    expect(() => chunk.wrap('const s = "caf\u00e9";')).to.throw(/not ASCII at offset 14/);
  });

  it("reads back from the asset's bytes exactly the script written", () => {
    const script = chunk.wrap('const s = "\\u00e9 \\x7f";\n');
    const bytes = Buffer.from(script, "utf8");
    const view = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    expect(chunk.script(view)).to.equal(script);
  });
});
