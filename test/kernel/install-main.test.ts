// `waggle install` / `waggle uninstall` end to end as child processes, with the real
// datapath loading and pinning its programs under a unique bpffs root.

import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { CALICO_SHAPES, waitFor } from "../unit/install-fixtures";
import { CliProcess, httpGet, InstallHost, runCli, SEA_BINARY } from "./install-process";

describe("install (kernel): the install container's main loop", function () {
  this.timeout(60_000);
  let host: InstallHost;
  let installer: CliProcess | undefined;

  beforeEach(() => {
    host = new InstallHost();
  });
  afterEach(async () => {
    installer?.kill();
    installer = undefined;
    // Whatever a failed test left: the uninstall path cleans pins, then the scratch dirs go.
    await runCli(["uninstall", ...host.uninstallFlags()]);
    host.remove();
  });

  const calicoPath = () => join(host.netDir, "10-calico.conflist");

  async function startInstaller(): Promise<number> {
    writeFileSync(calicoPath(), CALICO_SHAPES.manifest, { mode: 0o600 });
    installer = new CliProcess(["install", ...host.flags()], {});
    const listening = await installer.waitForLog("health server listening");
    await installer.waitForLog("entry written");
    return listening.port as number;
  }

  it("installs binary, kubeconfig, programs and entry; ready; serves health and metrics", async () => {
    const port = await startInstaller();
    expect(readFileSync(join(host.binDir, "waggle")).equals(readFileSync(host.binary))).to.equal(
      true,
    );
    expect(statSync(join(host.binDir, "waggle")).mode & 0o777).to.equal(0o755);
    expect(statSync(join(host.netDir, "waggle-kubeconfig")).mode & 0o777).to.equal(0o600);
    const entryText = readFileSync(calicoPath(), "utf8");
    expect(JSON.parse(entryText).plugins.at(-1)).to.deep.include({
      type: "waggle",
      bpf_root: host.bpfRoot,
    });
    expect(statSync(calicoPath()).mode & 0o777).to.equal(0o600);
    expect(readdirSync(join(host.bpfRoot, "datapath", "progs")).length).to.be.greaterThan(0);

    expect(await httpGet(port, "/healthz")).to.deep.equal({ status: 200, body: "ok\n" });
    const ready = await httpGet(port, "/readyz");
    expect(ready.status).to.equal(200);
    expect(JSON.parse(ready.body)).to.deep.equal({
      ready: true,
      checks: { entryInPlace: true, programsLoaded: true },
      warnings: {},
    });
    const metrics = await httpGet(port, "/metrics");
    expect(metrics.body).to.match(/^waggle_install_entry_in_place 1$/m);
    expect(metrics.body).to.match(/^waggle_install_programs_loaded 1$/m);
    expect(metrics.body).to.match(
      /^waggle_install_config_file_info\{file="10-calico.conflist"\} 1$/m,
    );
    expect((await httpGet(port, "/nope")).status).to.equal(404);
  });

  it("puts the entry back after Calico's rewrite (timed) and counts the repair", async () => {
    const port = await startInstaller();
    const installed = readFileSync(calicoPath(), "utf8");
    writeFileSync(calicoPath(), CALICO_SHAPES.manifest); // Calico's plain rewrite
    const rewritten = Date.now();
    await waitFor("the entry back", () => readFileSync(calicoPath(), "utf8") === installed, 2000);
    const latency = Date.now() - rewritten;
    await waitFor(
      "the repair counted",
      async () => /^waggle_install_repairs_total 1$/m.test((await httpGet(port, "/metrics")).body),
      2000,
    );
    expect((await httpGet(port, "/readyz")).status).to.equal(200);
    console.log(`      repair latency (child process, Calico rewrite): ${latency} ms`);
  });

  it("SIGTERM: exits 0 and leaves entry, binary, kubeconfig and pins in place", async () => {
    await startInstaller();
    const before = readFileSync(calicoPath(), "utf8");
    expect(await installer?.terminate()).to.equal(0);
    expect(readFileSync(calicoPath(), "utf8")).to.equal(before);
    expect(before).to.include('"type": "waggle"');
    expect(existsSync(join(host.binDir, "waggle"))).to.equal(true);
    expect(existsSync(join(host.netDir, "waggle-kubeconfig"))).to.equal(true);
    expect(existsSync(join(host.bpfRoot, "datapath", "progs"))).to.equal(true);
    expect(installer?.lines.some((l) => /stay in place/.test(l.message))).to.equal(true);
  });

  it("a second installer (upgrade) takes over the pins and the entry without a gap", async () => {
    await startInstaller();
    expect(await installer?.terminate()).to.equal(0);
    const entryBefore = readFileSync(calicoPath(), "utf8");
    installer = new CliProcess(["install", ...host.flags()]);
    await installer.waitForLog("shared programs loaded");
    await waitFor(
      "in place",
      () => installer?.lines.some((l) => l.message === "health server listening") ?? false,
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(readFileSync(calicoPath(), "utf8")).to.equal(entryBefore);
    expect(
      installer.lines.some((l) => l.message === "entry written" || l.message === "entry put back"),
    ).to.equal(false);
  });

  it("uninstall restores Calico's file byte for byte (mode 0600) and removes binary, kubeconfig and pins", async () => {
    await startInstaller();
    expect(await installer?.terminate()).to.equal(0);
    const result = await runCli(["uninstall", ...host.uninstallFlags()]);
    expect(result.code, result.stderr).to.equal(0);
    expect(readFileSync(calicoPath(), "utf8")).to.equal(CALICO_SHAPES.manifest);
    expect(statSync(calicoPath()).mode & 0o777).to.equal(0o600);
    expect(readdirSync(host.netDir)).to.deep.equal(["10-calico.conflist"]);
    expect(readdirSync(host.binDir)).to.deep.equal([]);
    expect(existsSync(host.bpfRoot)).to.equal(false);
    const again = await runCli(["uninstall", ...host.uninstallFlags()]);
    expect(again.code, "idempotent").to.equal(0);
  });

  it("the single executable (dist/waggle) installs itself: no --binary needed", async () => {
    expect(existsSync(SEA_BINARY), `${SEA_BINARY} missing: run npm run build`).to.equal(true);
    writeFileSync(calicoPath(), CALICO_SHAPES.manifest, { mode: 0o600 });
    const flags = host.flags();
    flags.splice(flags.indexOf("--binary"), 2);
    installer = new CliProcess(["install", ...flags], {}, SEA_BINARY);
    await installer.waitForLog("entry written");
    expect(readFileSync(join(host.binDir, "waggle")).equals(readFileSync(SEA_BINARY))).to.equal(
      true,
    );
    expect(await installer.terminate()).to.equal(0);
  });

  it("a bad setting exits 2 naming the flag and its variable, changing nothing", async () => {
    const result = await runCli(["install", ...host.flags(["--cni-net-dir", "relative/dir"])]);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/--cni-net-dir \(WAGGLE_CNI_NET_DIR\) must be an absolute path/);
    expect(readdirSync(host.binDir)).to.deep.equal([]);
  });

  it("missing credentials exit 1 with the cause, before anything on the host changes", async () => {
    writeFileSync(calicoPath(), CALICO_SHAPES.manifest, { mode: 0o600 });
    const result = await runCli([
      "install",
      ...host.flags(["--token-file", join(host.saDir, "missing")]),
    ]);
    expect(result.code).to.equal(1);
    expect(result.lines.find((l) => l.message === "install failed")?.error).to.match(
      /cannot read the service account token .*missing/,
    );
    expect(readdirSync(host.binDir)).to.deep.equal([]);
    expect(readFileSync(calicoPath(), "utf8")).to.equal(CALICO_SHAPES.manifest);
    expect(existsSync(host.bpfRoot)).to.equal(false);
  });

  it("a bpf root that is no bpffs exits 1 at once naming it, before anything on the host changes (it once hung)", async () => {
    writeFileSync(calicoPath(), CALICO_SHAPES.manifest, { mode: 0o600 });
    const notBpffs = join(host.root, "not-bpffs", "waggle");
    const t0 = performance.now();
    const result = await runCli(["install", ...host.flags(["--bpf-root", notBpffs])]);
    expect(performance.now() - t0).to.be.below(20_000);
    expect(result.code).to.equal(1);
    expect(result.lines.find((l) => l.message === "install failed")?.error).to.contain(
      `${notBpffs} is not on a bpffs`,
    );
    expect(readdirSync(host.binDir)).to.deep.equal([]);
    expect(readFileSync(calicoPath(), "utf8")).to.equal(CALICO_SHAPES.manifest);
    expect(existsSync(notBpffs)).to.equal(false);
  });
});
