// base/iso-time.ts writes what Date#toISOString writes, without loading the time zone.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect } from "chai";
import fc from "fast-check";
import { isoTime } from "../../base/iso-time";

describe("base/iso-time: UTC timestamps", () => {
  it("equals toISOString for any instant of the years 0 to 9999", () => {
    fc.assert(
      fc.property(fc.integer({ min: -62_167_219_200_000, max: 253_402_300_799_999 }), (ms) => {
        const date = new Date(ms);
        expect(isoTime(date), String(ms)).to.equal(date.toISOString());
      }),
      { numRuns: 50_000 },
    );
  });

  it("the edges, by hand", () => {
    for (const ms of [0, -1, 951_782_400_000, 253_402_300_799_999, -62_167_219_200_000]) {
      expect(isoTime(new Date(ms))).to.equal(new Date(ms).toISOString());
    }
  });

  it("a process making a timestamp never opens /etc/localtime (toISOString's first call does)", () => {
    const trace = (script: string) =>
      spawnSync("strace", ["-f", "-e", "trace=openat,open", process.execPath, "-e", script], {
        encoding: "utf8",
      }).stderr;
    const module = JSON.stringify(join(__dirname, "..", "..", "base", "iso-time.js"));
    expect(trace(`require(${module}).isoTime()`)).to.not.contain("/etc/localtime");
    expect(trace("new Date().toISOString()"), "the test sees the load").to.contain(
      "/etc/localtime",
    );
  });
});
