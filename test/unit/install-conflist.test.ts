import { expect } from "chai";
import {
  CONVERTED_FROM_KEY,
  checkConfig,
  compareConfNames,
  confFormatOf,
  conflistNameFor,
  conflistToConf,
  confToConflist,
  entryState,
  goExt,
  withEntry,
  withoutEntry,
} from "../../install/conflist";
import { CALICO_SHAPES, SAMPLE_ENTRY } from "./install-fixtures";

/** The plugins of a list, parsed. */
function plugins(text: string): Array<Record<string, unknown>> {
  return (JSON.parse(text) as { plugins: Array<Record<string, unknown>> }).plugins;
}

/** `edited` is `original` with one inserted run of text; returns that run. */
function insertedRun(original: string, edited: string): string {
  let head = 0;
  while (head < original.length && original[head] === edited[head]) head++;
  let tail = 0;
  while (
    tail < original.length - head &&
    original[original.length - 1 - tail] === edited[edited.length - 1 - tail]
  ) {
    tail++;
  }
  expect(original.slice(0, head) + original.slice(original.length - tail)).to.equal(original);
  return edited.slice(head, edited.length - tail);
}

describe("install: conflist (libcni's rules, the entry as a text splice)", () => {
  describe("which files a runtime loads", () => {
    it("takes .conf, .conflist and .json by Go's filepath.Ext, nothing else", () => {
      expect(confFormatOf("10-calico.conflist")).to.equal("conflist");
      expect(confFormatOf("10-flannel.conf")).to.equal("conf");
      expect(confFormatOf("99-x.json")).to.equal("conf");
      expect(confFormatOf(".conf")).to.equal("conf"); // Go: Ext(".conf") == ".conf"
      for (const ignored of [
        "10-calico.conflist.bak",
        "calico-kubeconfig",
        "x.conf.swp",
        ".x.conflist.waggle-tmp-1-ab",
      ]) {
        expect(confFormatOf(ignored), ignored).to.equal(null);
      }
      expect(goExt("a.b.c")).to.equal(".c");
      expect(goExt("noext")).to.equal("");
    });

    it("orders names byte-wise like sort.Strings", () => {
      const names = [
        "10-calico.conflist",
        "10-calico.conf",
        "05-z.conf",
        "Z.conf",
        "a.conf",
        "10-calico.conf.json",
      ];
      expect([...names].sort(compareConfNames)).to.deep.equal([
        "05-z.conf",
        "10-calico.conf",
        "10-calico.conf.json",
        "10-calico.conflist",
        "Z.conf",
        "a.conf",
      ]);
    });
  });

  describe("validity (a config libcni would reject is skipped)", () => {
    it("accepts both Calico shapes as lists of three plugins", () => {
      for (const text of Object.values(CALICO_SHAPES)) {
        const check = checkConfig("10-calico.conflist", text);
        expect(check).to.include({
          valid: true,
          format: "conflist",
          networkName: "k8s-pod-network",
          inlinePlugins: 3,
        });
      }
    });

    const invalidLists: Array<[string, string]> = [
      ["empty file (a truncate in progress)", ""],
      ["half-written JSON", CALICO_SHAPES.manifest.slice(0, 200)],
      ["a JSON array", "[]"],
      ["no name", '{"cniVersion":"0.3.1","plugins":[{"type":"a"}]}'],
      ["a name that is not a string", '{"name":1,"plugins":[{"type":"a"}]}'],
      ["cniVersion not a string", '{"name":"n","cniVersion":1,"plugins":[{"type":"a"}]}'],
      ["no plugins in list", '{"name":"n","plugins":[]}'],
      ["plugins not an array", '{"name":"n","plugins":{"type":"a"}}'],
      ["a plugin without type", '{"name":"n","plugins":[{"type":"a"},{"ipam":{}}]}'],
      ["a plugin with an empty type", '{"name":"n","plugins":[{"type":""}]}'],
      ["a plugin that is not an object", '{"name":"n","plugins":["a"]}'],
      [
        "a capability that is not a boolean",
        '{"name":"n","plugins":[{"type":"a","capabilities":{"x":"yes"}}]}',
      ],
      ["ipam type not a string", '{"name":"n","plugins":[{"type":"a","ipam":{"type":3}}]}'],
      [
        "dns nameservers not strings",
        '{"name":"n","plugins":[{"type":"a","dns":{"nameservers":[1]}}]}',
      ],
      [
        "disableCheck neither bool nor true/false",
        '{"name":"n","disableCheck":"yes","plugins":[{"type":"a"}]}',
      ],
      ["loadOnlyInlinedPlugins without plugins", '{"name":"n","loadOnlyInlinedPlugins":true}'],
      ["a bad cniVersions entry", '{"name":"n","cniVersions":["1.x"],"plugins":[{"type":"a"}]}'],
      ["a BOM before the object", '\ufeff{"name":"n","plugins":[{"type":"a"}]}'],
    ];
    for (const [what, text] of invalidLists) {
      it(`rejects a .conflist with ${what}`, () => {
        expect(checkConfig("10-x.conflist", text).valid).to.equal(false);
      });
    }

    it("accepts what libcni accepts: string booleans, a list without plugins (plugin dir), null fields", () => {
      expect(
        checkConfig("a.conflist", '{"name":"n","disableCheck":"TRUE","plugins":[{"type":"a"}]}')
          .valid,
      ).to.equal(true);
      expect(checkConfig("a.conflist", '{"name":"n"}')).to.include({
        valid: true,
        inlinePlugins: 0,
        loadsPluginDir: true,
      });
      expect(
        checkConfig("a.conflist", '{"name":"n","plugins":[{"type":"a","ipam":null,"name":null}]}')
          .valid,
      ).to.equal(true);
      expect(
        checkConfig(
          "a.conflist",
          '{"name":"n","loadOnlyInlinedPlugins":true,"plugins":[{"type":"a"}]}',
        ),
      ).to.include({ valid: true, loadsPluginDir: false });
    });

    it("reads a .conf/.json as one plugin: type required, matched case-insensitively like Go", () => {
      expect(checkConfig("10-br.conf", '{"name":"n","type":"bridge"}')).to.include({
        valid: true,
        format: "conf",
      });
      expect(checkConfig("10-br.json", '{"name":"n","Type":"bridge"}').valid).to.equal(true);
      // A list saved as .conf has no type: libcni (and so the runtime) skips it.
      expect(checkConfig("10-calico.conf", CALICO_SHAPES.manifest).valid).to.equal(false);
      // Go's decoder: the last case-insensitive match wins, in document order.
      expect(checkConfig("a.conf", '{"type":"bridge","TYPE":""}').valid).to.equal(false);
      expect(checkConfig("a.conf", '{"TYPE":"","type":"bridge"}').valid).to.equal(true);
    });
  });

  describe("the entry in a Calico list", () => {
    for (const [shape, original] of Object.entries(CALICO_SHAPES)) {
      it(`${shape}: inserts exactly one entry, last, and changes no other byte`, () => {
        const edited = withEntry(original, SAMPLE_ENTRY);
        const list = plugins(edited);
        expect(list.map((p) => p.type)).to.deep.equal([
          ...plugins(original).map((p) => p.type),
          "waggle",
        ]);
        expect(list[list.length - 1]).to.deep.equal(SAMPLE_ENTRY);
        const run = insertedRun(original, edited);
        expect(run.startsWith(",")).to.equal(true);
        expect(entryState(edited, SAMPLE_ENTRY)).to.equal("current");
      });

      it(`${shape}: is idempotent (a second insert returns the same text)`, () => {
        const edited = withEntry(original, SAMPLE_ENTRY);
        expect(withEntry(edited, SAMPLE_ENTRY)).to.equal(edited);
      });

      it(`${shape}: removal gives back the original bytes`, () => {
        expect(withoutEntry(withEntry(original, SAMPLE_ENTRY))).to.equal(original);
        expect(withoutEntry(original)).to.equal(original);
      });

      it(`${shape}: re-inserting after Calico's rewrite gives the same file as before`, () => {
        const first = withEntry(original, SAMPLE_ENTRY);
        // Calico's installer writes its own content again, without our entry.
        expect(withEntry(original, SAMPLE_ENTRY)).to.equal(first);
      });
    }

    it("follows the list's own style: indented like the elements in the manifest shape", () => {
      const edited = withEntry(CALICO_SHAPES.manifest, SAMPLE_ENTRY);
      expect(edited).to.include(
        '    },\n    {\n      "type": "waggle",\n      "log_level": "info",',
      );
      expect(edited.endsWith("    }\n  ]\n}\n")).to.equal(true);
    });

    it("follows the list's own style: one line after the operator shape's one-line portmap", () => {
      const edited = withEntry(CALICO_SHAPES.operator, SAMPLE_ENTRY);
      expect(edited).to.include(
        '"capabilities": {"portMappings": true}},\n    {"type": "waggle", "log_level": "info", "kubernetes": {',
      );
    });

    it("replaces an outdated entry, keeping exactly one", () => {
      const old = { ...SAMPLE_ENTRY, log_level: "debug" };
      const withOld = withEntry(CALICO_SHAPES.manifest, old);
      expect(entryState(withOld, SAMPLE_ENTRY)).to.equal("outdated");
      const updated = withEntry(withOld, SAMPLE_ENTRY);
      expect(plugins(updated).filter((p) => p.type === "waggle")).to.deep.equal([SAMPLE_ENTRY]);
      expect(withoutEntry(updated)).to.equal(CALICO_SHAPES.manifest);
    });

    it("collapses duplicates and moves a misplaced entry to the end", () => {
      const text =
        '{"name":"n","cniVersion":"0.3.1","plugins":[{"type":"waggle"},{"type":"calico"},{"type":"waggle","x":1},{"type":"portmap"}]}';
      expect(entryState(text, SAMPLE_ENTRY)).to.equal("outdated");
      const fixed = withEntry(text, SAMPLE_ENTRY);
      expect(plugins(fixed).map((p) => p.type)).to.deep.equal(["calico", "portmap", "waggle"]);
      expect(withoutEntry(fixed)).to.equal(
        '{"name":"n","cniVersion":"0.3.1","plugins":[{"type":"calico"},{"type":"portmap"}]}',
      );
    });

    it("keeps unknown keys, key order, duplicate keys and number spelling of other plugins", () => {
      const text =
        '{"z":1,"name":"n","plugins":[{"type":"c","2":"b","1":"a","mtu":1.50,"mtu":1440e0,"x":{"y":[]}}],"a":0}';
      const edited = withEntry(text, SAMPLE_ENTRY);
      insertedRun(text, edited);
      expect(withoutEntry(edited)).to.equal(text);
    });
  });

  describe("a single-plugin .conf becomes a .conflist", () => {
    const conf =
      '{\n  "cniVersion": "0.3.1",\n  "name": "mynet",\n  "type": "bridge",\n  "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}\n}\n';

    it("as libcni's ConfListFromConf would build it, with the entry last", () => {
      const list = confToConflist({ fileName: "10-mynet.conf", text: conf }, SAMPLE_ENTRY);
      expect(list.fileName).to.equal("10-mynet.conflist");
      expect(checkConfig(list.fileName, list.text)).to.include({
        valid: true,
        networkName: "mynet",
        inlinePlugins: 2,
      });
      const parsed = JSON.parse(list.text) as Record<string, unknown>;
      expect(parsed.cniVersion).to.equal("0.3.1");
      expect(parsed.name).to.equal("mynet");
      expect(plugins(list.text)).to.deep.equal([JSON.parse(conf), SAMPLE_ENTRY]);
      expect(parsed).to.have.property(CONVERTED_FROM_KEY);
    });

    it("and back to the original bytes (CRLF, odd spacing and .json too)", () => {
      for (const [name, text] of [
        ["10-mynet.conf", conf],
        ["10-mynet.json", '\r\n  {"type":"bridge",\r\n\t"name":"x"}  \r\n'],
        ["01.conf", '{"type":"ptp"}'],
      ] as const) {
        const list = confToConflist({ fileName: name, text }, SAMPLE_ENTRY);
        expect(conflistToConf(list.text), name).to.deep.equal({ fileName: name, text });
        expect(conflistToConf(withoutEntry(list.text)), name).to.deep.equal({
          fileName: name,
          text,
        });
      }
    });

    it("names: only the extension changes", () => {
      expect(conflistNameFor("10-x.conf")).to.equal("10-x.conflist");
      expect(conflistNameFor("10-x.y.json")).to.equal("10-x.y.conflist");
    });

    it("refuses a file that is not a valid single-plugin config", () => {
      expect(() =>
        confToConflist({ fileName: "a.conf", text: '{"name":"n"}' }, SAMPLE_ENTRY),
      ).to.throw(/not a valid/);
    });

    it("a list waggle did not convert is never 'restored'", () => {
      expect(conflistToConf(CALICO_SHAPES.operator)).to.equal(null);
      expect(conflistToConf(withEntry(CALICO_SHAPES.operator, SAMPLE_ENTRY))).to.equal(null);
      expect(
        conflistToConf(
          `{"name":"n","plugins":[{"type":"a"}],"${CONVERTED_FROM_KEY}":{"file":"../x.conf","before":"","after":""}}`,
        ),
      ).to.equal(null);
    });
  });
});
