import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import {
  closeLogger,
  createLogger,
  isLogLevel,
  type LoggerOptions,
  type LogLevel,
} from "../../base/log";

function lines(file: string): Record<string, unknown>[] {
  return readFileSync(file, "utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("log: JSON-lines logger", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-log-test-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes one JSON object per line with level, message, timestamp and fields", async () => {
    const file = join(dir, "waggle.log");
    const logger = createLogger({ level: "info", file, defaultMeta: { component: "test" } });
    logger.info("pod attached", { containerId: "abc123" });
    await closeLogger(logger);
    const [entry] = lines(file);
    expect(entry).to.include({
      level: "info",
      message: "pod attached",
      containerId: "abc123",
      component: "test",
    });
    expect(Date.parse(entry.timestamp as string)).to.be.a("number").and.not.NaN;
  });

  it("drops lines below the level", async () => {
    const file = join(dir, "waggle.log");
    const logger = createLogger({ level: "warn", file });
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    await closeLogger(logger);
    expect(lines(file).map((l) => l.message)).to.deep.equal(["w", "e"]);
  });

  it("an error keeps its stack", async () => {
    const file = join(dir, "waggle.log");
    const logger = createLogger({ level: "info", file });
    logger.error("attach failed", { error: new Error("ENOENT: gone") });
    logger.error(new Error("thrown"));
    await closeLogger(logger);
    const [first, second] = lines(file);
    expect(first.error).to.include({ name: "Error", message: "ENOENT: gone" });
    expect((first.error as { stack: string }).stack).to.contain("log.test");
    expect(second.message).to.equal("thrown");
    expect(second.stack).to.be.a("string").and.contain("log.test");
  });

  it("closeLogger resolves only after every line reached the file", async () => {
    const file = join(dir, "waggle.log");
    const logger = createLogger({ level: "info", file });
    for (let i = 0; i < 500; i++) logger.info("line", { i });
    await closeLogger(logger);
    expect(lines(file).map((l) => l.i)).to.deep.equal([...Array(500).keys()]);
  });

  it("rejects a level it does not know", () => {
    expect(() => createLogger({ level: "verbose" as LogLevel })).to.throw(
      /invalid log level "verbose"/,
    );
    expect(isLogLevel("debug")).to.equal(true);
    expect(isLogLevel("trace")).to.equal(false);
  });

  /**
   * Creates a logger with `options` in a child process, logs one info line and closes it, so a
   * hang cannot stall the test run: returns how long that took and what reached stdout and
   * stderr.
   */
  function logInChild(options: LoggerOptions): {
    ms: number;
    status: number | null;
    stdout: string;
    stderr: string;
  } {
    const log = join(__dirname, "..", "..", "base", "log.js");
    const script = `
      const { createLogger, closeLogger } = require(${JSON.stringify(log)});
      const logger = createLogger(${JSON.stringify(options)});
      logger.info("still logged", { n: 1 });
      closeLogger(logger).then(() => process.exit(0));`;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 10_000 });
    return { ms: Date.now() - t0, status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** logInChild to `file` (stderr off), with what reached stderr as JSON objects. */
  function logToFileInChild(file: string): { ms: number; status: number | null; stderr: object[] } {
    const r = logInChild({ level: "info", file });
    return {
      ms: r.ms,
      status: r.status,
      stderr: r.stderr
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l)),
    };
  }

  it("a file whose directory cannot be created (under /proc) neither hangs nor fails: stderr instead", () => {
    // Node's recursive mkdir never returns there; winston's File transport would call it.
    const file = "/proc/waggle-log-test/a/cni.log";
    const r = logToFileInChild(file);
    expect(r.status, "the child hung (killed after 10 s) or failed").to.equal(0);
    expect(r.ms).to.be.below(5000);
    expect(r.stderr).to.have.length(2);
    expect(r.stderr[0]).to.include({
      level: "warn",
      message: "cannot write the log file; logging to stderr only",
    });
    expect((r.stderr[0] as { error: string }).error).to.match(
      new RegExp(`^${file.replaceAll("/", "\\/")}: ENOENT`),
    );
    expect(r.stderr[1]).to.include({ level: "info", message: "still logged", n: 1 });
  });

  it("a file that cannot be opened (a directory there) falls back to stderr the same way", () => {
    const file = join(dir, "taken");
    mkdirSync(file);
    const r = logToFileInChild(file);
    expect(r.status).to.equal(0);
    expect((r.stderr[0] as { error: string }).error).to.include(`${file}: EISDIR`);
    expect(r.stderr[1]).to.include({ message: "still logged" });
  });

  it("a FIFO without a reader neither blocks nor fails: stderr instead (it once held DEL forever)", () => {
    const file = join(dir, "fifo");
    execFileSync("mkfifo", [file]);
    const r = logToFileInChild(file);
    expect(r.status, "the child hung (killed after 10 s) or failed").to.equal(0);
    expect(r.ms).to.be.below(5000);
    expect((r.stderr[0] as { error: string }).error).to.include(`${file}: ENXIO`);
    expect(r.stderr[1]).to.include({ message: "still logged" });
  });

  it("a FIFO with a reader is refused too: the log file must be a regular file", () => {
    const file = join(dir, "fifo-read");
    execFileSync("mkfifo", [file]);
    const reader = spawn("sh", ["-c", `exec cat "${file}" > /dev/null`]);
    try {
      execFileSync("sleep", ["0.2"]);
      const r = logToFileInChild(file);
      expect(r.status).to.equal(0);
      expect((r.stderr[0] as { error: string }).error).to.equal(`${file}: not a regular file`);
    } finally {
      reader.kill();
    }
  });

  it("creates the file with mode 0640 whatever the umask", async () => {
    const file = join(dir, "mode", "waggle.log");
    const old = process.umask(0);
    try {
      await closeLogger(createLogger({ level: "info", file }));
    } finally {
      process.umask(old);
    }
    expect(statSync(file).mode & 0o777).to.equal(0o640);
    expect(statSync(join(dir, "mode")).mode & 0o777).to.equal(0o755);
  });

  it("creates the file's missing directories", async () => {
    const file = join(dir, "a", "b", "waggle.log");
    const logger = createLogger({ level: "info", file });
    logger.info("deep");
    await closeLogger(logger);
    expect(lines(file).map((l) => l.message)).to.deep.equal(["deep"]);
  });

  it("with no destination it is silent (nothing on stdout or stderr, not even winston's no-transport warning) and still closes", () => {
    const r = logInChild({ level: "debug" });
    expect(r.status, "the child hung (killed after 10 s) or failed").to.equal(0);
    expect(r.stdout).to.equal("");
    expect(r.stderr).to.equal("");
  });
});
