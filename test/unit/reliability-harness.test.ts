// The reliability harness's own judgements: what counts as a hang.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { runWaggle } from "../support/cni-binary";
import { churnBoundMs } from "../support/reliability";

describe("reliability harness: hangs and bounds", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-harness-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const script = (name: string, body: string) => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };

  it("a call still running at the bound is killed and counted a hang", async () => {
    const run = await runWaggle({}, "", {
      binary: script("sleeper", "exec sleep 30"),
      timeoutMs: 200,
    });
    expect(run.outcome).to.equal("hang");
    expect(run.signal).to.equal("SIGKILL");
  });

  it("a call that ends within the bound is judged by its answer, not as a hang", async () => {
    const run = await runWaggle({}, "", {
      binary: script("answers", `echo '{"cniVersion":"1.1.0"}'`),
      timeoutMs: 5_000,
    });
    expect(run.outcome).to.equal("ok");
  });

  it("a churn lane's bound grows with the lanes sharing the CPUs, never under 20 s", () => {
    expect(churnBoundMs(1)).to.equal(20_000);
    expect(churnBoundMs(3)).to.equal(20_000);
    expect(churnBoundMs(100)).to.equal(120_000);
  });
});
