// The map layouts of datapath/layout.ts against the BTF of the compiled objects: every
// shared struct has the same size and member offsets/sizes on both sides.
import { execFileSync } from "node:child_process";
import { expect } from "chai";
import { bpfObject } from "../../base/assets";
import { OBJECTS, STRUCTS } from "../../datapath";

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

function btfOf(object: string): Map<number, BtfType> {
  const path = `${__dirname}/../../../bpf/build/${object}.bpf.o`;
  bpfObject(object); // throws a clear error when the object was not built
  const json = JSON.parse(
    execFileSync("bpftool", ["btf", "dump", "file", path, "-j"], { encoding: "utf8" }),
  ) as { types: BtfType[] };
  return new Map(json.types.map((t) => [t.id, t]));
}

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id) as BtfType;
  switch (t.kind) {
    case "INT":
    case "STRUCT":
    case "UNION":
    case "ENUM":
      return t.size as number;
    case "ARRAY": {
      const arr = t as BtfType & { type_id: number; nr_elems: number };
      return arr.nr_elems * sizeOf(types, arr.type_id);
    }
    case "TYPEDEF":
    case "CONST":
    case "VOLATILE":
      return sizeOf(types, t.type_id as number);
    default:
      throw new Error(`size of BTF kind ${t.kind}`);
  }
}

describe("datapath layouts match the BTF of the objects", () => {
  const seen = new Set<string>();
  for (const object of OBJECTS) {
    it(`${object}.bpf.o: every shared struct it carries has layout.ts's size and offsets`, () => {
      const types = btfOf(object);
      for (const [name, layout] of Object.entries(STRUCTS)) {
        const t = [...types.values()].find((x) => x.kind === "STRUCT" && x.name === name);
        if (!t) continue;
        seen.add(name);
        expect(t.size, `${name} size`).to.equal(layout.size);
        const btfMembers = Object.fromEntries(
          (t.members ?? []).map((m) => [
            m.name,
            { offset: m.bits_offset / 8, size: sizeOf(types, m.type_id) },
          ]),
        );
        expect(btfMembers, `${name} members`).to.deep.equal(layout.fields);
      }
    });
  }
  it("every struct of layout.ts appears in some object", () => {
    expect([...seen].sort()).to.deep.equal(Object.keys(STRUCTS).sort());
  });
});
