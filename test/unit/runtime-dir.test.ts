import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import {
  completeMarker,
  ensureRuntimeDir,
  type RuntimeFile,
  runtimeDirCandidates,
} from "../../base/runtime-dir";

const ID = "0123456789abcdef";

function files(reads: string[] = []): RuntimeFile[] {
  const make = (name: string, text: string): RuntimeFile => ({
    name,
    bytes: () => {
      reads.push(name);
      return Buffer.from(text);
    },
  });
  return [make("addon.node", "ELF addon bytes"), make("libbpf.so.1", "ELF libbpf bytes")];
}

describe("runtime dir: extracting the addon for the loader", () => {
  let scratch: string;
  beforeEach(() => {
    scratch = mkdtempSync(join(tmpdir(), "waggle-runtime-test-"));
  });
  afterEach(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it("a first run writes every file and the marker, leaving no temporary file", () => {
    const base = join(scratch, "base");
    const got = ensureRuntimeDir({
      id: ID,
      files: files(),
      candidates: [base],
      executable: "addon.node",
    });
    expect(got).to.deep.equal({ dir: join(base, ID), extracted: true });
    expect(readdirSync(got.dir).sort()).to.deep.equal([
      completeMarker,
      "addon.node",
      "libbpf.so.1",
    ]);
    expect(readFileSync(join(got.dir, "addon.node"), "utf8")).to.equal("ELF addon bytes");
    expect(readFileSync(join(got.dir, "libbpf.so.1"), "utf8")).to.equal("ELF libbpf bytes");
    expect(statSync(join(got.dir, "addon.node")).mode & 0o777).to.equal(0o755);
    expect(JSON.parse(readFileSync(join(got.dir, completeMarker), "utf8"))).to.deep.equal({
      id: ID,
      files: ["addon.node", "libbpf.so.1"],
    });
  });

  it("a later run finds the complete directory and reads no asset", () => {
    const base = join(scratch, "base");
    ensureRuntimeDir({ id: ID, files: files(), candidates: [base], executable: "addon.node" });
    const inode = statSync(join(base, ID, "addon.node")).ino;
    const reads: string[] = [];
    const got = ensureRuntimeDir({
      id: ID,
      files: files(reads),
      candidates: [base],
      executable: "addon.node",
    });
    expect(got.extracted).to.equal(false);
    expect(reads).to.deep.equal([]);
    expect(statSync(join(base, ID, "addon.node")).ino).to.equal(inode);
  });

  it("files without the marker (an interrupted first run) are written again", () => {
    const dir = join(scratch, "base", ID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "addon.node"), "trunc");
    writeFileSync(join(dir, ".addon.node.999.abc.tmp"), "partial");
    const got = ensureRuntimeDir({
      id: ID,
      files: files(),
      candidates: [join(scratch, "base")],
      executable: "addon.node",
    });
    expect(got.extracted).to.equal(true);
    expect(readFileSync(join(dir, "addon.node"), "utf8")).to.equal("ELF addon bytes");
  });

  it("a complete directory missing a file (pruned by hand) is repaired", () => {
    const base = join(scratch, "base");
    ensureRuntimeDir({ id: ID, files: files(), candidates: [base], executable: "addon.node" });
    unlinkSync(join(base, ID, "libbpf.so.1"));
    const got = ensureRuntimeDir({
      id: ID,
      files: files(),
      candidates: [base],
      executable: "addon.node",
    });
    expect(got.extracted).to.equal(true);
    expect(existsSync(join(base, ID, "libbpf.so.1"))).to.equal(true);
  });

  it("an unusable candidate is skipped for the next one", () => {
    const notADir = join(scratch, "file");
    writeFileSync(notADir, "");
    const good = join(scratch, "good");
    const got = ensureRuntimeDir({
      id: ID,
      files: files(),
      candidates: [notADir, good],
      executable: "addon.node",
    });
    expect(got.dir).to.equal(join(good, ID));
  });

  it("when no candidate is usable the error names each one and why", () => {
    const notADir = join(scratch, "file");
    writeFileSync(notADir, "");
    const groupWritable = join(scratch, "gw");
    mkdirSync(join(groupWritable, ID), { recursive: true });
    chmodSync(join(groupWritable, ID), 0o775);
    expect(() =>
      ensureRuntimeDir({
        id: ID,
        files: files(),
        candidates: [notADir, groupWritable],
        executable: "addon.node",
      }),
    )
      .to.throw(/no usable runtime directory/)
      .with.property("message")
      .that.contains(`${notADir}: `)
      .and.contains(`${groupWritable}: `)
      .and.contains("writable by group or others");
  });

  it("a directory owned by another user is refused (its files would run as root)", () => {
    const base = join(scratch, "foreign");
    mkdirSync(join(base, ID), { recursive: true });
    writeFileSync(join(base, ID, completeMarker), "{}");
    writeFileSync(join(base, ID, "addon.node"), "planted");
    writeFileSync(join(base, ID, "libbpf.so.1"), "planted");
    chownSync(join(base, ID), 65534, 65534);
    expect(() =>
      ensureRuntimeDir({ id: ID, files: files(), candidates: [base], executable: "addon.node" }),
    ).to.throw(/owned by uid 65534/);
  });

  it("a symlink in place of the directory is refused", () => {
    const base = join(scratch, "link");
    mkdirSync(base);
    mkdirSync(join(scratch, "elsewhere"));
    symlinkSync(join(scratch, "elsewhere"), join(base, ID));
    expect(() =>
      ensureRuntimeDir({ id: ID, files: files(), candidates: [base], executable: "addon.node" }),
    ).to.throw(/not a directory/);
  });

  it("bad input is refused before touching the disk", () => {
    const base = join(scratch, "never");
    expect(() =>
      ensureRuntimeDir({
        id: "../x",
        files: files(),
        candidates: [base],
        executable: "addon.node",
      }),
    ).to.throw(/invalid runtime id/);
    expect(() =>
      ensureRuntimeDir({ id: ID, files: files(), candidates: [base], executable: "other.node" }),
    ).to.throw(/do not include other.node/);
    expect(existsSync(base)).to.equal(false);
  });

  it("candidates: $WAGGLE_RUNTIME_DIR, /var/lib/waggle/runtime, beside the binary; never /tmp", () => {
    expect(
      runtimeDirCandidates({ WAGGLE_RUNTIME_DIR: "/run/w" }, "/opt/cni/bin/waggle"),
    ).to.deep.equal(["/run/w", "/var/lib/waggle/runtime", "/opt/cni/bin/.waggle-runtime"]);
    expect(runtimeDirCandidates({ TMPDIR: "/tmp" }, "/opt/cni/bin/waggle")).to.deep.equal([
      "/var/lib/waggle/runtime",
      "/opt/cni/bin/.waggle-runtime",
    ]);
  });
});
