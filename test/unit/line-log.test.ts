// The CNI plugin's synchronous JSON-lines log (base/line-log.ts): the lines winston's logger
// writes (base/log.ts), each on disk when the call returns, rotation as winston's tailable
// File transport does it, and a file that cannot be used never failing or hanging the caller.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createLineLog, type LoggerOptions } from "../../base/line-log";
import { closeLogger, createLogger } from "../../base/log";

const LINE_LOG = join(__dirname, "..", "..", "base", "line-log.js");

function lines(file: string): Record<string, unknown>[] {
  return readFileSync(file, "utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Logs one info line with `options` in a child process: its status, stdout and stderr lines. */
function logInChild(options: LoggerOptions) {
  const script = `
    const log = require(${JSON.stringify(LINE_LOG)}).createLineLog(${JSON.stringify(options)});
    log.info("still logged", { n: 1 });
    log.close();`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 10_000 });
  return {
    ms: Date.now() - t0,
    status: r.status,
    stdout: r.stdout,
    stderr: r.stderr
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe("line log: the CNI plugin's synchronous JSON lines (base/line-log.ts)", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-line-log-test-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes the same line as the winston logger, timestamp aside (keys sorted, errors as fields)", async () => {
    const meta = { command: "ADD", containerId: "c1", pod: "shop/web" };
    const fields = { zeta: 1, alpha: { b: 1, a: 2 }, big: 7n, error: new Error("gone") };
    const winstonFile = join(dir, "winston.log");
    const winston = createLogger({ level: "info", file: winstonFile, defaultMeta: meta });
    winston.info("attached", fields);
    await closeLogger(winston);
    const file = join(dir, "line.log");
    const log = createLineLog({ level: "info", file, defaultMeta: meta });
    log.info("attached", fields);
    log.close();
    const withoutTime = (text: string) =>
      text.replace(/"timestamp":"[^"]+"/, '"timestamp":""').replace(/at [^"]+/, "");
    expect(withoutTime(readFileSync(file, "utf8"))).to.equal(
      withoutTime(readFileSync(winstonFile, "utf8")),
    );
    const [line] = lines(file);
    expect(Date.parse(line.timestamp as string)).to.not.be.NaN;
    expect(line.error).to.include({ name: "Error", message: "gone" });
  });

  it("each line is in the file when the call returns, before close", () => {
    const file = join(dir, "sync.log");
    const log = createLineLog({ level: "debug", file });
    log.debug("one");
    expect(lines(file).map((l) => l.message)).to.deep.equal(["one"]);
    log.error("two");
    expect(lines(file).map((l) => l.message)).to.deep.equal(["one", "two"]);
    log.close();
  });

  it("drops lines below the level and rejects a level it does not know", () => {
    const file = join(dir, "level.log");
    const log = createLineLog({ level: "warn", file });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    log.close();
    expect(lines(file).map((l) => l.message)).to.deep.equal(["w", "e"]);
    expect(() => createLineLog({ level: "verbose" as "info" })).to.throw(/invalid log level/);
  });

  it("rotates as winston's tailable File transport: cni.log -> cni1.log -> cni2.log, maxFiles files in all", () => {
    const file = join(dir, "cni.log");
    for (let i = 0; i < 5; i++) {
      // each process writes one 100-odd byte line; the file holds at most 150 bytes
      const log = createLineLog({ level: "info", file, maxSizeBytes: 150, maxFiles: 3 });
      log.info("line", { i });
      log.close();
    }
    expect(readdirSync(dir).sort()).to.deep.equal(["cni.log", "cni1.log", "cni2.log"]);
    expect(lines(file).map((l) => l.i)).to.deep.equal([4]);
    expect(lines(join(dir, "cni1.log")).map((l) => l.i)).to.deep.equal([3]);
    expect(lines(join(dir, "cni2.log")).map((l) => l.i)).to.deep.equal([2]);
  });

  it("creates the file's directories (0755) and the file with mode 0640 whatever the umask", () => {
    const file = join(dir, "a", "b", "cni.log");
    const old = process.umask(0);
    try {
      createLineLog({ level: "info", file }).close();
    } finally {
      process.umask(old);
    }
    expect(statSync(file).mode & 0o777).to.equal(0o640);
    expect(statSync(join(dir, "a")).mode & 0o777).to.equal(0o755);
  });

  it("a file under /proc (directories that cannot be made) goes to stderr after a warning naming why", () => {
    const file = "/proc/waggle-line-log-test/a/cni.log";
    const r = logInChild({ level: "info", file });
    expect(r.status).to.equal(0);
    expect(r.ms).to.be.below(5000);
    expect(r.stderr).to.have.length(2);
    expect(r.stderr[0]).to.include({
      level: "warn",
      message: "cannot write the log file; logging to stderr only",
    });
    expect(r.stderr[0].error as string).to.match(/^\/proc\/waggle-line-log-test\/a\/cni.log: /);
    expect(r.stderr[1]).to.include({ level: "info", message: "still logged", n: 1 });
  });

  it("a directory, a FIFO without a reader: refused at once, lines on stderr", () => {
    const taken = join(dir, "taken");
    mkdirSync(taken);
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    for (const [file, problem] of [
      [taken, "EISDIR"],
      [fifo, "ENXIO"],
    ]) {
      const r = logInChild({ level: "info", file });
      expect(r.status, "the child hung (killed after 10 s) or failed").to.equal(0);
      expect(r.stderr[0].error as string).to.include(`${file}: ${problem}`);
      expect(r.stderr[1]).to.include({ message: "still logged" });
    }
  });

  it("with no destination it is silent; with stderr on, lines go there as well as to the file", () => {
    const silent = logInChild({ level: "debug" });
    expect(silent).to.include({ status: 0, stdout: "" });
    expect(silent.stderr).to.deep.equal([]);
    const file = join(dir, "both.log");
    const both = logInChild({ level: "info", file, stderr: true });
    expect(both.stderr.map((l) => l.message)).to.deep.equal(["still logged"]);
    expect(lines(file).map((l) => l.message)).to.deep.equal(["still logged"]);
  });
});
