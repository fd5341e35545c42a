import { expect } from "chai";
import { randomHex } from "../../base/unique-name";

describe("unique names: randomHex", () => {
  it("gives lowercase hex of twice the bytes asked", () => {
    for (const n of [1, 4, 6]) expect(randomHex(n)).to.match(new RegExp(`^[0-9a-f]{${2 * n}}$`));
  });

  it("does not repeat over 10,000 names of 6 bytes", () => {
    const seen = new Set(Array.from({ length: 10_000 }, () => randomHex(6)));
    expect(seen.size).to.equal(10_000);
  });
});
