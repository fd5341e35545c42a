import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { ensureEntry, entryInPlace, removeEntries, selectPrimary } from "../../install/conf-dir";
import { confToConflist, withEntry } from "../../install/conflist";
import { CALICO_SHAPES, SAMPLE_ENTRY, scratchDir } from "./install-fixtures";

const OLD = Date.now() / 1000 - 3600; // an hour ago: settled
const settled = { settleMs: 1000 };

function write(dir: string, name: string, text: string, mode = 0o600, ageSeconds?: number): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  if (ageSeconds === undefined) utimesSync(path, OLD, OLD);
  return path;
}

const mode = (path: string) => statSync(path).mode & 0o7777;

describe("install: conf-dir (the config directory as a runtime sees it)", () => {
  let dir: string;
  let remove: () => void;
  beforeEach(() => {
    ({ dir, remove } = scratchDir("confdir"));
  });
  afterEach(() => remove());

  describe("primary selection", () => {
    it("picks the first valid file by name among .conf, .conflist and .json", async () => {
      write(dir, "10-calico.conflist", CALICO_SHAPES.manifest);
      write(dir, "20-other.conf", '{"name":"o","type":"bridge"}');
      write(dir, "05-ignored.conflist.bak", CALICO_SHAPES.operator);
      write(dir, "calico-kubeconfig", "apiVersion: v1");
      mkdirSync(join(dir, "00-a-directory.conf"));
      expect((await selectPrimary(dir)).primary?.name).to.equal("10-calico.conflist");
    });

    it("skips invalid files ahead of the primary, reporting them", async () => {
      write(dir, "01-broken.conflist", "{");
      write(dir, "02-empty.conflist", '{"name":"e","plugins":[]}');
      write(dir, "03-list-as-conf.conf", CALICO_SHAPES.manifest);
      write(dir, "10-calico.conflist", CALICO_SHAPES.operator);
      const selection = await selectPrimary(dir);
      expect(selection.primary?.name).to.equal("10-calico.conflist");
      expect(selection.invalidAhead.map((c) => c.name)).to.deep.equal([
        "01-broken.conflist",
        "02-empty.conflist",
        "03-list-as-conf.conf",
      ]);
    });

    it("counts plugin-dir plugins like libcni: a list with none anywhere is invalid", async () => {
      write(dir, "01-dirlist.conflist", '{"name":"net1","cniVersion":"1.0.0"}');
      write(dir, "10-calico.conflist", CALICO_SHAPES.manifest);
      expect((await selectPrimary(dir)).primary?.name).to.equal("10-calico.conflist");
      mkdirSync(join(dir, "net1"));
      write(join(dir, "net1"), "a.conf", '{"type":"bridge"}');
      expect((await selectPrimary(dir)).primary?.name).to.equal("01-dirlist.conflist");
    });

    it("an empty or missing directory has no primary", async () => {
      expect((await selectPrimary(dir)).primary).to.equal(undefined);
      expect((await selectPrimary(join(dir, "nope"))).primary).to.equal(undefined);
    });
  });

  describe("ensureEntry", () => {
    it("inserts into Calico's list keeping mode 0600, then reports it in place", async () => {
      const path = write(dir, "10-calico.conflist", CALICO_SHAPES.manifest, 0o600);
      expect(await ensureEntry(dir, SAMPLE_ENTRY, settled)).to.deep.equal({
        status: "written",
        file: "10-calico.conflist",
        was: "absent",
      });
      expect(readFileSync(path, "utf8")).to.equal(withEntry(CALICO_SHAPES.manifest, SAMPLE_ENTRY));
      expect(mode(path)).to.equal(0o600);
      const ino = statSync(path).ino;
      expect(await ensureEntry(dir, SAMPLE_ENTRY, settled)).to.deep.equal({
        status: "in-place",
        file: "10-calico.conflist",
      });
      expect(statSync(path).ino, "no rewrite when in place").to.equal(ino);
      expect(await entryInPlace(dir, SAMPLE_ENTRY)).to.equal(true);
    });

    it("writes atomically: no temporary file is left, and no other file is touched", async () => {
      write(dir, "10-calico.conflist", CALICO_SHAPES.operator, 0o644);
      write(dir, "99-loopback.conf", '{"cniVersion":"0.3.1","name":"lo","type":"loopback"}');
      await ensureEntry(dir, SAMPLE_ENTRY, settled);
      expect(readdirSync(dir).sort()).to.deep.equal(["10-calico.conflist", "99-loopback.conf"]);
      expect(mode(join(dir, "10-calico.conflist"))).to.equal(0o644);
      expect(readFileSync(join(dir, "99-loopback.conf"), "utf8")).to.equal(
        '{"cniVersion":"0.3.1","name":"lo","type":"loopback"}',
      );
    });

    it("waits while no config exists", async () => {
      expect(await ensureEntry(dir, SAMPLE_ENTRY, settled)).to.deep.equal({
        status: "no-config",
        invalid: [],
      });
      write(dir, "10-x.conflist", "not json");
      expect(await ensureEntry(dir, SAMPLE_ENTRY, settled)).to.deep.equal({
        status: "no-config",
        invalid: ["10-x.conflist"],
      });
    });

    it("never acts while a file ahead of the primary is invalid and freshly written", async () => {
      write(
        dir,
        "99-other.conflist",
        '{"name":"o","cniVersion":"0.3.1","plugins":[{"type":"ptp"}]}',
      );
      // Calico is in the middle of its non-atomic rewrite: truncated and half written.
      write(dir, "10-calico.conflist", CALICO_SHAPES.manifest.slice(0, 300), 0o600, 0);
      const result = await ensureEntry(dir, SAMPLE_ENTRY, settled);
      expect(result.status).to.equal("unsettled");
      expect(result).to.include({ file: "10-calico.conflist" });
      expect((result as { retryInMs: number }).retryInMs).to.be.within(1, 1000);
      expect(readFileSync(join(dir, "99-other.conflist"), "utf8")).to.not.include("waggle");
      // Once it has stayed broken for the settle time, it is skipped like libcni skips it.
      const later = await ensureEntry(dir, SAMPLE_ENTRY, {
        settleMs: 1000,
        now: Date.now() + 1500,
      });
      expect(later).to.include({ status: "written", file: "99-other.conflist" });
    });

    it("converts a .conf primary to a .conflist (same mode), removing the .conf", async () => {
      const conf = '{\n  "cniVersion": "0.3.1",\n  "name": "mynet",\n  "type": "bridge"\n}\n';
      write(dir, "10-mynet.conf", conf, 0o640);
      expect(await ensureEntry(dir, SAMPLE_ENTRY, settled)).to.deep.equal({
        status: "written",
        file: "10-mynet.conflist",
        was: "single-plugin file",
      });
      expect(readdirSync(dir)).to.deep.equal(["10-mynet.conflist"]);
      const listPath = join(dir, "10-mynet.conflist");
      expect(mode(listPath)).to.equal(0o640);
      expect(readFileSync(listPath, "utf8")).to.equal(
        confToConflist({ fileName: "10-mynet.conf", text: conf }, SAMPLE_ENTRY).text,
      );
      expect(await ensureEntry(dir, SAMPLE_ENTRY, settled)).to.deep.equal({
        status: "in-place",
        file: "10-mynet.conflist",
      });
    });

    it("refuses to convert over a .conflist it did not write", async () => {
      write(dir, "10-mynet.conf", '{"name":"mynet","type":"bridge"}');
      write(dir, "10-mynet.conflist", CALICO_SHAPES.operator);
      const result = await ensureEntry(dir, SAMPLE_ENTRY, settled);
      expect(result).to.include({ status: "failed", file: "10-mynet.conf" });
      expect(readFileSync(join(dir, "10-mynet.conflist"), "utf8")).to.equal(CALICO_SHAPES.operator);
      expect(existsSync(join(dir, "10-mynet.conf"))).to.equal(true);
    });

    it("refuses a list completed from a plugin dir (waggle could not be last)", async () => {
      write(dir, "10-net1.conflist", '{"name":"net1","plugins":[{"type":"bridge"}]}');
      mkdirSync(join(dir, "net1"));
      write(join(dir, "net1"), "z.conf", '{"type":"tuning"}');
      const result = await ensureEntry(dir, SAMPLE_ENTRY, settled);
      expect(result).to.include({ status: "failed", file: "10-net1.conflist" });
      expect((result as { reason: string }).reason).to.match(/can't be last/);
    });

    it("uses --conf-name when given, even when it is not the primary", async () => {
      write(dir, "05-first.conflist", '{"name":"f","plugins":[{"type":"ptp"}]}');
      write(dir, "10-calico.conflist", CALICO_SHAPES.manifest);
      const result = await ensureEntry(dir, SAMPLE_ENTRY, {
        ...settled,
        confName: "10-calico.conflist",
      });
      expect(result).to.include({ status: "written", file: "10-calico.conflist" });
      expect(readFileSync(join(dir, "05-first.conflist"), "utf8")).to.not.include("waggle");
      expect(await entryInPlace(dir, SAMPLE_ENTRY, "10-calico.conflist")).to.equal(true);
      // A named .conf is found again after its conversion.
      write(dir, "30-br.conf", '{"name":"br","type":"bridge"}');
      expect(
        await ensureEntry(dir, SAMPLE_ENTRY, { ...settled, confName: "30-br.conf" }),
      ).to.include({ file: "30-br.conflist" });
      expect(
        await ensureEntry(dir, SAMPLE_ENTRY, { ...settled, confName: "30-br.conf" }),
      ).to.deep.equal({
        status: "in-place",
        file: "30-br.conflist",
      });
    });
  });

  describe("removeEntries", () => {
    it("restores every file it touched to the original bytes and mode, and leaves others alone", async () => {
      write(dir, "10-calico.conflist", CALICO_SHAPES.manifest, 0o600);
      await ensureEntry(dir, SAMPLE_ENTRY, settled);
      // A lower-named file took over later and got the entry too.
      write(dir, "05-operator.conflist", CALICO_SHAPES.operator, 0o644);
      await ensureEntry(dir, SAMPLE_ENTRY, settled);
      const conf = ' {"type":"bridge","name":"b"}\n';
      write(dir, "01-br.conf", conf, 0o640);
      await ensureEntry(dir, SAMPLE_ENTRY, settled);
      write(dir, "99-untouched.conflist", '{"name":"u","plugins":[{"type":"x"}]}', 0o644);

      const removed = await removeEntries(dir);
      expect(removed.map((r) => `${r.file}:${r.action}`)).to.deep.equal([
        "01-br.conflist:restored",
        "05-operator.conflist:entry removed",
        "10-calico.conflist:entry removed",
      ]);
      expect(readdirSync(dir).sort()).to.deep.equal([
        "01-br.conf",
        "05-operator.conflist",
        "10-calico.conflist",
        "99-untouched.conflist",
      ]);
      expect(readFileSync(join(dir, "01-br.conf"), "utf8")).to.equal(conf);
      expect(mode(join(dir, "01-br.conf"))).to.equal(0o640);
      expect(readFileSync(join(dir, "05-operator.conflist"), "utf8")).to.equal(
        CALICO_SHAPES.operator,
      );
      expect(mode(join(dir, "05-operator.conflist"))).to.equal(0o644);
      expect(readFileSync(join(dir, "10-calico.conflist"), "utf8")).to.equal(
        CALICO_SHAPES.manifest,
      );
      expect(mode(join(dir, "10-calico.conflist"))).to.equal(0o600);
      expect(await removeEntries(dir), "idempotent").to.deep.equal([]);
    });
  });
});
