// base/ip.ts reads addresses without node:net; these hold it to node:net's isIP.
import { isIP } from "node:net";
import { expect } from "chai";
import fc from "fast-check";
import { ipFamily, parseCidr, parseIp } from "../../base/ip";

/** Strings near the address grammars: their characters, in random order and length. */
const nearAddress = fc.string({
  unit: fc.constantFrom(..."0123456789abcdefABCDEF:.%/ ["),
  maxLength: 45,
});

describe("base/ip: addresses as node:net's isIP reads them, zones refused", () => {
  it("agrees with isIP on every IPv4 and IPv6 form fast-check makes, extended forms included", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.ipV6()), (text) => {
        expect(ipFamily(text), text).to.equal(isIP(text));
      }),
      { numRuns: 20_000 },
    );
  });

  it("agrees with isIP on random strings of the address characters (a zone is never an address)", () => {
    fc.assert(
      fc.property(nearAddress, (text) => {
        expect(ipFamily(text), text).to.equal(text.includes("%") ? 0 : isIP(text));
      }),
      { numRuns: 50_000 },
    );
  });

  it("the cases that matter, by hand", () => {
    const cases: [string, 0 | 4 | 6][] = [
      ["10.0.0.1", 4],
      ["0.0.0.0", 4],
      ["255.255.255.255", 4],
      ["256.0.0.1", 0],
      ["010.0.0.1", 0],
      ["1.2.3", 0],
      ["1.2.3.4.5", 0],
      ["0x7f.0.0.1", 0],
      ["::", 6],
      ["::1", 6],
      ["fd00::1", 6],
      ["2001:DB8:0:0::1", 6],
      ["::ffff:10.0.0.1", 6],
      ["::ffff:010.0.0.1", 0],
      ["fe80::1%eth0", 0],
      ["[::1]", 0],
      ["1::2::3", 0],
      ["12345::", 0],
      ["", 0],
    ];
    for (const [text, family] of cases) expect(ipFamily(text), text).to.equal(family);
  });

  it("parseCidr and parseIp say what is wrong", () => {
    expect(parseCidr("10.1.2.3/8")).to.deep.equal({
      address: "10.1.2.3",
      prefixLength: 8,
      family: 4,
    });
    expect(parseCidr("fd00::/64")).to.deep.include({ family: 6, prefixLength: 64 });
    expect(() => parseCidr("10.0.0.1")).to.throw('has no "/prefix-length"');
    expect(() => parseCidr("fe80::1%eth0/64")).to.throw("is not an IP address");
    expect(() => parseCidr("10.0.0.0/33")).to.throw("prefix length must be 0-32");
    expect(parseIp("::1")).to.equal(6);
    expect(() => parseIp("1.2.3.04")).to.throw("is not an IP address");
  });
});
