import { readdirSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import {
  bpfObject,
  bpfObjectNames,
  shippedBpfObjects,
  testOnlyBpfObjects,
} from "../../base/assets";

const BPF_BUILD = join(__dirname, "..", "..", "..", "bpf", "build");

describe("assets: the BPF objects waggle ships", () => {
  it("ships every built object except the test-only ones, by base name, sorted", () => {
    expect(
      shippedBpfObjects([
        "outbound.bpf.o",
        "selftest.bpf.o",
        "outbound.d",
        "inbound.bpf.o",
        "notes.txt",
      ]),
    ).to.deep.equal(["inbound", "outbound"]);
    expect(testOnlyBpfObjects).to.include("selftest");
  });

  it("in a checkout, lists bpf/build and reads the objects from there", () => {
    const names = bpfObjectNames();
    expect(names).to.deep.equal(shippedBpfObjects(readdirSync(BPF_BUILD)));
    expect(names).to.not.include("selftest");
    for (const name of names) {
      expect(bpfObject(name).subarray(0, 4).toString("latin1"), name).to.equal("\x7fELF");
    }
  });

  it("an object that was not built is an error naming the file", () => {
    expect(() => bpfObject("no-such-object")).to.throw(/no-such-object\.bpf\.o/);
  });
});
