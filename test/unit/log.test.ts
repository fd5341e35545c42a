import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { closeLogger, createLogger, isLogLevel, type LogLevel } from "../../cni/log";

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

  it("with no destination it is silent and still closes", async () => {
    const logger = createLogger({ level: "debug" });
    logger.error("nowhere");
    await closeLogger(logger);
  });
});
