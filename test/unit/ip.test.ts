// base/ip.ts reads addresses without node:net or the ip-address library; these hold it to
// node:net's isIP and to ip-address (a test oracle only).
import { isIP } from "node:net";
import { expect } from "chai";
import fc from "fast-check";
import { Address4, Address6 } from "ip-address";
import {
  canonicalIp,
  cidrNetwork,
  ipBytes,
  ipFamily,
  ipv4Text,
  ipv6Text,
  isV4Mapped,
  normalizeCidr,
  parseCidr,
  parseIp,
} from "../../base/ip";

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

/** ip-address's 16 bytes of an address (IPv4 as ::ffff:a.b.c.d). */
function oracleBytes(text: string): number[] {
  if (ipFamily(text) === 4)
    return [...Array(10).fill(0), 0xff, 0xff, ...new Address4(text).toArray()];
  return new Address6(text)
    .canonicalForm()
    .split(":")
    .flatMap((g) => [Number.parseInt(g, 16) >> 8, Number.parseInt(g, 16) & 0xff]);
}

/** 16 bytes with long zero runs as often as not (where canonical IPv6 text differs). */
const addressBytes = fc
  .array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
    minLength: 8,
    maxLength: 8,
  })
  .map((groups) => Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff])));

describe("base/ip: address bytes and canonical text as ip-address computes them", () => {
  it("ipBytes: the 16 bytes ip-address reads from every IPv4 and IPv6 form fast-check makes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
        expect([...ipBytes(text)], text).to.deep.equal(oracleBytes(text));
      }),
      { numRuns: 20_000 },
    );
  });

  it("canonicalIp: an IPv4 address as written, IPv6 as ip-address's canonical form", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
        const oracle = ipFamily(text) === 4 ? text : new Address6(text).correctForm();
        expect(canonicalIp(text), text).to.equal(oracle);
      }),
      { numRuns: 20_000 },
    );
    expect(() => canonicalIp("fe80::1%eth0")).to.throw("is not an IP address");
  });

  it("ipv6Text: ip-address's canonical form (RFC 5952) of any 16 bytes", () => {
    fc.assert(
      fc.property(addressBytes, (bytes) => {
        const groups: string[] = [];
        for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
        expect(ipv6Text(bytes)).to.equal(new Address6(groups.join(":")).correctForm());
        expect([...ipBytes(ipv6Text(bytes))]).to.deep.equal([...bytes]);
      }),
      { numRuns: 20_000 },
    );
  });

  it("cidrNetwork and normalizeCidr: ip-address's start address for any address and prefix length", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })),
          fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })),
        ),
        ([address, prefixLength]) => {
          const text = `${address}/${prefixLength}`;
          const oracle = (
            ipFamily(address) === 4 ? new Address4(text) : new Address6(text)
          ).startAddress();
          expect(cidrNetwork(parseCidr(text)), text).to.equal(oracle.correctForm());
          expect(normalizeCidr(text)).to.equal(`${oracle.correctForm()}/${prefixLength}`);
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it("the cases that matter, by hand", () => {
    expect(ipv6Text(ipBytes("FD00:0:0:0:0:0:0:5"))).to.equal("fd00::5");
    expect(ipv6Text(ipBytes("::ffff:10.0.0.2"))).to.equal("::ffff:a00:2");
    expect(ipv6Text(ipBytes("1:0:0:1:0:0:1:1"))).to.equal("1::1:0:0:1:1"); // the first longest run
    expect(ipv6Text(ipBytes("1:2:3:4:5:6:7:0"))).to.equal("1:2:3:4:5:6:7:0"); // one zero stays
    expect(ipv6Text(new Uint8Array(16))).to.equal("::");
    expect(isV4Mapped(ipBytes("10.1.2.3"))).to.equal(true);
    expect(isV4Mapped(ipBytes("::10.1.2.3"))).to.equal(false);
    expect(ipv4Text(ipBytes("10.1.2.3"))).to.equal("10.1.2.3");
    expect(normalizeCidr("10.1.2.3/8")).to.equal("10.0.0.0/8");
    expect(normalizeCidr("fd00:1:2:3::9/49")).to.equal("fd00:1:2::/49");
    expect(normalizeCidr("0.0.0.0/0")).to.equal("0.0.0.0/0");
    expect(() => ipBytes("fe80::1%eth0")).to.throw("is not an IP address");
    expect(() => ipBytes("10.0.0.256")).to.throw("is not an IP address");
  });
});
