// `waggle install` says when the runtime's netns directory is missing (not mounted): early-pod
// repair then records pods by /proc paths that die with their process.
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

  it("a missing --netns-dir is logged as a warning naming it", async () => {
    installer = start(join(host.root, "not-mounted"));
    const line = await installer.waitForLog(NETNS_DIR_MISSING);
    expect(line).to.deep.include({ level: "warn", netnsDir: join(host.root, "not-mounted") });
  });

  it("a present --netns-dir gives no such warning", async () => {
    const dir = join(host.root, "netns");
    mkdirSync(dir);
    installer = start(dir);
    await installer.waitForLog("shared programs loaded");
    await installer.waitForLog("entry written");
    expect(installer.lines.map((l) => l.message)).to.not.include(NETNS_DIR_MISSING);
  });
});
