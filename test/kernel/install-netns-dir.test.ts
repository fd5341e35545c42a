// `waggle install` says when the runtime's netns directory is missing (not mounted), in its log
// and as a /readyz warning: early-pod repair then records pods by /proc paths that die with
// their process.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { NETNS_DIR_MISSING } from "../../install/main";
import { CALICO_SHAPES } from "../unit/install-fixtures";
import { CliProcess, InstallHost, runCli } from "./install-process";

describe("install (kernel): the runtime's netns directory", function () {
  this.timeout(60_000);
  let host: InstallHost;
  let installer: CliProcess | undefined;
  beforeEach(() => {
    host = new InstallHost();
    writeFileSync(join(host.netDir, "10-calico.conflist"), CALICO_SHAPES.manifest, { mode: 0o600 });
  });
  afterEach(async () => {
    installer?.kill();
    installer = undefined;
    await runCli(["uninstall", ...host.uninstallFlags()]);
    host.remove();
  });

  // The API server is a closed port on loopback: the repair's pod listing fails and retries.
  const start = (netnsDir: string) =>
    new CliProcess([
      "install",
      ...host.flags([
        "--kubernetes-service-host",
        "127.0.0.1",
        "--kubernetes-service-port",
        "9",
        "--node-name",
        "node-under-test",
        "--netns-dir",
        netnsDir,
      ]),
    ]);

  /** /readyz of the running installer, parsed. */
  async function readyz(): Promise<{ ready: boolean; warnings: Record<string, string> }> {
    const listening = await (installer as CliProcess).waitForLog("health server listening");
    const res = await fetch(`http://127.0.0.1:${listening.port}/readyz`);
    return (await res.json()) as { ready: boolean; warnings: Record<string, string> };
  }

  it("a missing --netns-dir is logged as a warning naming it, and /readyz stays ready but warns", async () => {
    const missing = join(host.root, "not-mounted");
    installer = start(missing);
    const line = await installer.waitForLog(NETNS_DIR_MISSING);
    expect(line).to.deep.include({ level: "warn", netnsDir: missing });
    await installer.waitForLog("entry written");
    const r = await readyz();
    expect(r.ready).to.equal(true);
    expect(r.warnings).to.deep.equal({ netnsDir: `${NETNS_DIR_MISSING}: ${missing}` });
    // mounted later (the manifest fixed): the warning goes without a restart
    mkdirSync(missing);
    expect((await readyz()).warnings).to.deep.equal({});
  });

  it("a present --netns-dir gives no such warning", async () => {
    const dir = join(host.root, "netns");
    mkdirSync(dir);
    installer = start(dir);
    await installer.waitForLog("shared programs loaded");
    await installer.waitForLog("entry written");
    expect(installer.lines.map((l) => l.message)).to.not.include(NETNS_DIR_MISSING);
    expect(await readyz()).to.deep.include({ ready: true, warnings: {} });
  });
});
