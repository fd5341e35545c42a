import { type ChildProcess, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "chai";
import { writeFileAtomic } from "../../install/atomic-file";
import {
  BinaryKeeper,
  installBinary,
  pluginBinaryPath,
  runningWaggleBinary,
} from "../../install/binary-copy";
import { capturingLogger, scratchDir, sleep, waitFor } from "./install-fixtures";

/**
 * Runs `target` in a shell loop until stopped; prints "ok N" per success and "fail: <err>"
 * per failed exec. The detector the atomicity test relies on.
 */
function execLoop(target: string): {
  proc: ChildProcess;
  /** Successful execs so far. */
  done: () => number;
  result: () => Promise<{ ok: number; failures: string[] }>;
} {
  const script = `
    ok=0
    while [ ! -e "$STOP" ]; do
      if out=$("$TARGET" 2>&1); then ok=$((ok+1)); echo "ran"; else echo "fail: $out"; fi
    done
    echo "ok $ok"`;
  const stop = `${target}.stop`;
  const proc = spawn("bash", ["-c", script], {
    env: { ...process.env, TARGET: target, STOP: stop },
  });
  let out = "";
  proc.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return {
    proc,
    done: () => out.split("\n").filter((l) => l === "ran").length,
    result: async () => {
      writeFileSync(stop, "");
      await new Promise((r) => proc.once("exit", r));
      const failures = out
        .split("\n")
        .filter((l) => l.startsWith("fail") || l.includes("Text file busy"));
      const ok = Number(/ok (\d+)/.exec(out)?.[1] ?? 0);
      return { ok, failures };
    },
  };
}

describe("install: binary-copy (atomic install into the CNI bin dir)", function () {
  this.timeout(60_000);
  let dir: string;
  let remove: () => void;
  let small: string;
  let large: string;
  beforeEach(() => {
    ({ dir, remove } = scratchDir("bincopy"));
    // Two valid executables of very different sizes: /bin/true, and /bin/true padded with
    // 16 MiB (the kernel ignores bytes past the ELF segments), so a copy takes a while.
    small = join(dir, "src-small");
    large = join(dir, "src-large");
    copyFileSync("/bin/true", small);
    copyFileSync("/bin/true", large);
    writeFileSync(large, Buffer.alloc(16 << 20), { flag: "a" });
  });
  afterEach(() => remove());

  it("installs the binary as <dir>/waggle, mode 0755, same bytes, no temporary left", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    expect(await installBinary(small, bin)).to.equal("installed");
    const target = pluginBinaryPath(bin);
    expect(target).to.equal(join(bin, "waggle"));
    expect(statSync(target).mode & 0o7777).to.equal(0o755);
    expect(readFileSync(target).equals(readFileSync(small))).to.equal(true);
    expect(readdirSync(bin)).to.deep.equal(["waggle"]);
  });

  it("leaves an identical binary alone (same inode), replaces a different one", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    await installBinary(small, bin);
    const ino = statSync(pluginBinaryPath(bin)).ino;
    expect(await installBinary(small, bin)).to.equal("unchanged");
    expect(statSync(pluginBinaryPath(bin)).ino).to.equal(ino);
    expect(await installBinary(large, bin)).to.equal("installed");
    expect(statSync(pluginBinaryPath(bin)).size).to.equal(statSync(large).size);
  });

  it("a concurrent exec never sees a partial file: no ETXTBSY, no ENOEXEC over 60 replacements", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    await installBinary(small, bin);
    const loop = execLoop(pluginBinaryPath(bin));
    await sleep(100);
    // At least 60 replacements, and on until the loop has run 50 execs meanwhile (a busy
    // machine runs fewer execs per replacement).
    const deadline = Date.now() + 40_000;
    for (let i = 0; i < 60 || (loop.done() <= 50 && Date.now() < deadline); i++) {
      expect(await installBinary(i % 2 === 0 ? large : small, bin)).to.equal("installed");
    }
    const { ok, failures } = await loop.result();
    expect(failures, failures.slice(0, 3).join("; ")).to.deep.equal([]);
    expect(ok, "the exec loop really ran").to.be.greaterThan(50);
  });

  it("control: the detector does see partial files when a copy writes in place", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    const target = pluginBinaryPath(bin);
    copyFileSync(small, target);
    const loop = execLoop(target);
    await sleep(100);
    // The non-atomic way, for up to 3 s: truncate and rewrite the file the loop executes.
    const deadline = Date.now() + 3000;
    const content = readFileSync(large);
    let writeErrors = 0;
    while (Date.now() < deadline && writeErrors === 0) {
      try {
        writeFileSync(target, content.subarray(0, 4096));
        await appendFile(target, content.subarray(4096));
      } catch {
        writeErrors++; // ETXTBSY: opened for writing while it runs
      }
    }
    const { failures } = await loop.result();
    expect(failures.length + writeErrors, "in-place writes collide with execs").to.be.greaterThan(
      0,
    );
  });

  it("names a missing source or bin dir in the error", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    await installBinary(join(dir, "nope"), bin).then(
      () => expect.fail("should fail"),
      (err: Error) => expect(err.message).to.match(/cannot read the waggle binary .*nope/),
    );
    await installBinary(small, join(dir, "no-bin")).then(
      () => expect.fail("should fail"),
      (err: Error) => expect(err.message).to.match(/CNI bin dir .*no-bin is not usable/),
    );
    expect(existsSync(join(dir, "no-bin"))).to.equal(false);
  });

  it("keeps the binary installed: put back within 2 s after a delete or a replacement", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    const { log, lines } = capturingLogger();
    const keeper = new BinaryKeeper({ source: large, binDir: bin, log });
    try {
      expect(await keeper.install()).to.equal("installed");
      await keeper.start();
      const target = pluginBinaryPath(bin);
      const same = () => {
        try {
          return readFileSync(target).equals(readFileSync(large));
        } catch {
          return false;
        }
      };
      unlinkSync(target);
      await waitFor("the binary back after a delete", same, 2000);
      writeFileSync(join(bin, "other"), "#!/bin/sh\n");
      renameSync(join(bin, "other"), target);
      await waitFor("the binary back after a replacement", same, 2000);
      await keeper.settled();
      expect(lines.filter((l) => l.message === "binary put back")).to.have.length(2);
      expect(statSync(target).mode & 0o7777).to.equal(0o755);
    } finally {
      await keeper.stop();
    }
  });

  it("outside the single executable, there is no running binary to copy", () => {
    expect(runningWaggleBinary()).to.equal(undefined);
  });

  it("writeFileAtomic: an aborting beforeRename leaves the target and no temporary", async () => {
    const target = join(dir, "f.conflist");
    writeFileSync(target, "old");
    await writeFileAtomic(target, "new", {
      mode: 0o600,
      beforeRename: async () => {
        throw new Error("changed meanwhile");
      },
    }).then(
      () => expect.fail("should fail"),
      (err: Error) => expect(err.message).to.equal("changed meanwhile"),
    );
    expect(readFileSync(target, "utf8")).to.equal("old");
    expect(readdirSync(dir).filter((n) => n.includes("waggle-tmp"))).to.deep.equal([]);
  });
});
