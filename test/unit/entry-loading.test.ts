// The entry loads only what a command needs: `waggle version` and CNI VERSION must not pay for
// the addon, winston, the Kubernetes client or any BPF object (and CNI VERSION not for yargs).
// Runs out/app/main.js under a preload that records every module, file read and dlopen.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";

const MAIN = join(__dirname, "..", "..", "app", "main.js");

const RECORDER = `
const fs = require("node:fs");
const seen = { modules: [], builtins: [], reads: [], dlopens: [] };
const readFileSync = fs.readFileSync;
fs.readFileSync = function (path, ...rest) {
  if (typeof path === "string") seen.reads.push(path);
  return readFileSync.call(this, path, ...rest);
};
const dlopen = process.dlopen;
process.dlopen = function (module, file, ...rest) {
  seen.dlopens.push(file);
  return dlopen.call(this, module, file, ...rest);
};
process.on("exit", () => {
  seen.modules = Object.keys(require.cache);
  seen.builtins = process.moduleLoadList.filter((m) => m.startsWith("NativeModule "));
  fs.writeFileSync(process.env.RECORD_TO, JSON.stringify(seen));
});
`;

interface Loaded {
  modules: string[];
  /** Node's own modules ("NativeModule net"). */
  builtins: string[];
  reads: string[];
  dlopens: string[];
  status: number | null;
  stdout: string;
}

describe("entry: each path loads only what it needs", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "waggle-entry-test-"));
    writeFileSync(join(dir, "recorder.cjs"), RECORDER);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function runMain(args: string[], env: NodeJS.ProcessEnv, input = ""): Loaded {
    const recordTo = join(dir, `record-${Math.random().toString(36).slice(2)}.json`);
    const r = spawnSync(process.execPath, ["--require", join(dir, "recorder.cjs"), MAIN, ...args], {
      env: { PATH: process.env.PATH, ...env, RECORD_TO: recordTo },
      input,
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`main ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
    const seen = JSON.parse(readFileSync(recordTo, "utf8")) as Omit<Loaded, "status" | "stdout">;
    return { ...seen, status: r.status, stdout: r.stdout };
  }

  const heavy = ["node_modules/winston/", "node_modules/@kubernetes/client-node/", "/ebpf-napi/"];

  function expectNone(loaded: Loaded, fragments: string[]): void {
    for (const f of fragments) {
      expect(
        loaded.modules.filter((m) => m.includes(f)),
        `modules matching ${f}`,
      ).to.deep.equal([]);
    }
    expect(loaded.dlopens, "dlopen calls").to.deep.equal([]);
    expect(
      loaded.reads.filter((p) => p.endsWith(".bpf.o")),
      "BPF objects read",
    ).to.deep.equal([]);
  }

  it("CNI VERSION loads no yargs, winston, Kubernetes client, addon or BPF object", () => {
    const loaded = runMain([], { CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
    expect(JSON.parse(loaded.stdout)).to.have.property("supportedVersions");
    expectNone(loaded, [...heavy, "node_modules/yargs/"]);
  });

  it("a CNI call answers without process.stdout or process.stderr: no node:net, no streams (6-9 ms of set-up on a pipe here)", () => {
    const loaded = runMain([], { CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
    expect(JSON.parse(loaded.stdout)).to.have.property("supportedVersions");
    expect(loaded.builtins, "the recorder sees Node's modules").to.include("NativeModule fs");
    expect(loaded.builtins).not.to.include("NativeModule net");
    expect(loaded.builtins).not.to.include("NativeModule stream");
  });

  it("the modules of a meshed ADD and DEL load no node:crypto, node:net or node:child_process (4-23 ms each on first load here)", () => {
    const out = join(__dirname, "..", "..");
    const modules = ["cni/plugin.js", "datapath/index.js", "base/addon.js", "base/line-log.js"];
    const script = `${modules.map((m) => `require(${JSON.stringify(join(out, m))});`).join("")}
      require("node:fs").writeSync(1, JSON.stringify(process.moduleLoadList));`;
    const file = join(dir, "meshed-modules.cjs");
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, [file], { encoding: "utf8" });
    expect(r.status, r.stderr).to.equal(0);
    const loaded = JSON.parse(r.stdout) as string[];
    // the list is real: the modules did load node:fs
    expect(loaded).to.include("NativeModule fs");
    for (const name of ["crypto", "net", "child_process"]) {
      expect(loaded, `node:${name}`).not.to.include(`NativeModule ${name}`);
    }
  });

  it("the modules of a meshed ADD and DEL load no ip-address (its load and first calls were 4-5 ms of a meshed ADD here)", () => {
    const out = join(__dirname, "..", "..");
    const modules = ["cni/plugin.js", "datapath/index.js", "base/addon.js", "base/line-log.js"];
    const script = `${modules.map((m) => `require(${JSON.stringify(join(out, m))});`).join("")}
      require("node:fs").writeSync(1, JSON.stringify(Object.keys(require.cache)));`;
    const file = join(dir, "meshed-files.cjs");
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, [file], { encoding: "utf8" });
    expect(r.status, r.stderr).to.equal(0);
    const files = JSON.parse(r.stdout) as string[];
    expect(files, "the list is real").to.include(join(out, "datapath", "policy.js"));
    expect(files.filter((f) => f.includes("node_modules/ip-address/"))).to.deep.equal([]);
  });

  it("waggle version loads no winston, Kubernetes client, addon or BPF object", () => {
    const loaded = runMain(["version"], {});
    expect(loaded.stdout).to.match(/^waggle /);
    expectNone(loaded, heavy);
    // The recorder itself proves it sees modules: yargs is there for the CLI.
    expect(loaded.modules.some((m) => m.includes("node_modules/yargs/"))).to.equal(true);
  });
});
