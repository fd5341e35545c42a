// The single executable dist/waggle as a node would run it: no Node.js on PATH, copied to a
// fresh directory, first runs racing to extract the addon, /tmp mounted noexec, bpffs missing.
// Needs root (mount namespaces, bpffs, BPF probes). Every directory it makes is removed after.

import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { PHASES_ENV, parsePhaseReport } from "../../base/phases";
import { type CommandResult, run, sleep } from "../support/command";
import { RUN_TAG } from "../support/names";
import { BpfRoot } from "../support/waggle-mode";

const ROOT = join(__dirname, "..", "..", "..");
const WAGGLE = join(ROOT, "dist", "waggle");
const SCRATCH = join(ROOT, "build", `binary-test-${RUN_TAG}`);
/** A PATH with the usual tools and no node: /usr/bin/node (Node 20) is hidden behind an empty dir. */
const NO_NODE_PATH = "/usr/sbin:/sbin";

let counter = 0;
/** A fresh empty directory under this run's scratch dir (outside /tmp on purpose). */
function freshDir(label: string): string {
  counter += 1;
  const dir = join(SCRATCH, `${label}-${counter}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

/** dist/waggle copied into a fresh directory, as the installer puts it on a node. */
function copiedBinary(): string {
  const bin = join(freshDir("bin"), "waggle");
  copyFileSync(WAGGLE, bin);
  return bin;
}

function waggle(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  input = "",
): Promise<CommandResult> {
  return run(bin, args, { env: { PATH: NO_NODE_PATH, ...env }, input, timeoutMs: 60_000 });
}

/**
 * Shell commands (for inPrivateMounts) that leave the addon no runtime directory: `noexec`
 * ($WAGGLE_RUNTIME_DIR) mounted noexec, /var/lib/waggle read-only, the binary's directory
 * read-only.
 */
function blockRuntimeDirs(noexec: string, binDir: string): string {
  return [
    `mount -t tmpfs -o noexec tmpfs "${noexec}"`,
    "mkdir -p /var/lib/waggle",
    "mount -t tmpfs -o ro tmpfs /var/lib/waggle",
    `mount -o bind,ro "${binDir}" "${binDir}"`,
  ].join("; ");
}

/** Runs a shell script in a private mount namespace (changes there never reach the host). */
function inPrivateMounts(script: string, env: NodeJS.ProcessEnv = {}): Promise<CommandResult> {
  return run("unshare", ["--mount", "--propagation", "private", "sh", "-euc", script], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    timeoutMs: 60_000,
  });
}

function expectOk(r: CommandResult, what: string): void {
  expect(r.code, `${what}: stderr ${r.stderr} stdout ${r.stdout}`).to.equal(0);
}

/** Parses `waggle version --verbose --json`. */
function versionJson(r: CommandResult): {
  version: string;
  libbpf: string;
  addon: string;
  node: string;
  chunks: Record<string, string>;
} {
  expectOk(r, "waggle version --verbose --json");
  return JSON.parse(r.stdout);
}

/**
 * dist/waggle as a CNI call (CNI_COMMAND set) in a network namespace of its own (`unshare
 * --net`: a debugger it opened would listen only there), blocked in read(0) on a pipe left
 * open: every thread Node starts at start-up has started by then.
 */
async function cniCallReadingStdin(env: NodeJS.ProcessEnv): Promise<{
  child: ChildProcess;
  pid: number;
  finish(stdin: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
}> {
  const child = spawn("/usr/bin/unshare", ["--net", WAGGLE], {
    env: { PATH: NO_NODE_PATH, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => err.push(d));
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  const pid = child.pid as number;
  const binary = realpathSync(WAGGLE);
  const deadline = Date.now() + 30_000;
  // /proc/PID/syscall: the syscall number and arguments it is blocked in (read is 0, fd 0)
  for (;;) {
    let blocked = false;
    try {
      blocked =
        readlinkSync(`/proc/${pid}/exe`) === binary &&
        readFileSync(`/proc/${pid}/syscall`, "utf8").startsWith("0 0x0 ");
    } catch {
      // not started yet, or gone (then the deadline says so)
    }
    if (blocked) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`dist/waggle never blocked reading stdin: ${Buffer.concat(err)}`);
    }
    await sleep(20);
  }
  return {
    child,
    pid,
    finish: async (stdin) => {
      child.stdin.end(stdin);
      const code = await exited;
      return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
    },
  };
}

function entries(dir: string): string[] {
  return readdirSync(dir).sort();
}

describe("binary: dist/waggle as a single executable", function () {
  this.timeout(120_000);

  before(() => {
    if (!existsSync(WAGGLE)) throw new Error(`${WAGGLE} is missing: run npm run build first`);
    mkdirSync(SCRATCH, { recursive: true });
  });
  after(() => {
    rmSync(SCRATCH, { recursive: true, force: true });
  });

  it("runs from a copy in a fresh directory with no node on PATH: version", async () => {
    const r = await waggle(copiedBinary(), ["version"]);
    expectOk(r, "version");
    expect(r.stdout).to.match(
      /^waggle \d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?\)\nnode v24\.\d+\.\d+\n$/,
    );
  });

  it("answers CNI VERSION with the supported spec versions (stdin from /dev/null)", async () => {
    const r = await run("sh", ["-c", `CNI_COMMAND=VERSION exec "${WAGGLE}" </dev/null`], {
      env: { PATH: "/usr/bin:/bin" },
    });
    expectOk(r, "CNI VERSION");
    const out = JSON.parse(r.stdout);
    expect(out.supportedVersions).to.include.members(["0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
  });

  it("CNI VERSION neither extracts nor loads the addon", async () => {
    const runtime = freshDir("runtime");
    const r = await waggle(
      WAGGLE,
      [],
      { CNI_COMMAND: "VERSION", WAGGLE_RUNTIME_DIR: runtime, LD_DEBUG: "files" },
      '{"cniVersion":"0.4.0"}',
    );
    expectOk(r, "CNI VERSION");
    expect(JSON.parse(r.stdout).cniVersion).to.equal("0.4.0");
    expect(r.stderr).to.not.contain("ebpf_napi.node");
    expect(entries(runtime)).to.deep.equal([]);
  });

  it(`with ${PHASES_ENV}=1 a CNI call reports its phases from the boot script on, and loads no chunk but main (no command line, installer logger or metrics)`, async () => {
    const r = await waggle(WAGGLE, [], { CNI_COMMAND: "VERSION", [PHASES_ENV]: "1" }, "{}");
    expectOk(r, "CNI VERSION");
    const report = parsePhaseReport(r.stderr);
    const names = (report?.marks ?? []).map(([name]) => name);
    expect(names.slice(0, 3)).to.deep.equal(["boot", "chunk main compiled", "chunk main ran"]);
    expect(names.at(-1)).to.equal("exit");
    expect(names.filter((n) => n.startsWith("chunk"))).to.deep.equal([
      "chunk main compiled",
      "chunk main ran",
    ]);
    const plain = await waggle(WAGGLE, [], { CNI_COMMAND: "VERSION" }, "{}");
    expect(parsePhaseReport(plain.stderr)).to.equal(null);
  });

  it("CNI commands other than VERSION extract the addon before the plugin runs", async () => {
    const runtime = freshDir("runtime");
    // STATUS may load and pin the shared programs: into a root of this test's own, never the
    // node's default /sys/fs/bpf/waggle (whatever is or isn't there must not decide this test).
    const bpfRoot = new BpfRoot();
    const conf = JSON.stringify({
      cniVersion: "1.1.0",
      name: "k8s-pod-network",
      type: "waggle",
      bpf_root: bpfRoot.path,
    });
    let r: CommandResult;
    try {
      r = await waggle(WAGGLE, [], { CNI_COMMAND: "STATUS", WAGGLE_RUNTIME_DIR: runtime }, conf);
    } finally {
      bpfRoot.destroy();
    }
    expectOk(r, "CNI STATUS");
    const [id] = entries(runtime);
    expect(entries(join(runtime, id))).to.include.members([
      "COMPLETE",
      "ebpf_napi.node",
      "libbpf.so.1",
    ]);
  });

  describe("on a node where the addon cannot be extracted (/var/lib/waggle read-only, the binary's dir read-only, $WAGGLE_RUNTIME_DIR noexec)", () => {
    /** Runs one CNI command of a copied binary in a private mount namespace where every runtime dir candidate is blocked. */
    async function blockedCni(command: string, conf: object, containerId = "c1") {
      const noexec = freshDir("noexec");
      const bin = copiedBinary();
      const binDir = join(bin, "..");
      const script = [
        blockRuntimeDirs(noexec, binDir),
        `echo '${JSON.stringify(conf)}' | CNI_COMMAND=${command} CNI_CONTAINERID=${containerId} CNI_NETNS=/var/run/netns/none CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni CNI_ARGS='IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0' "${bin}"`,
      ].join("; ");
      return inPrivateMounts(script, { WAGGLE_RUNTIME_DIR: noexec });
    }
    const base = {
      cniVersion: "1.1.0",
      name: "k8s-pod-network",
      type: "waggle",
      log_file: "",
      bpf_root: join("/sys/fs/bpf", `waggle-unused-${RUN_TAG}`),
    };
    const prevResult = { cniVersion: "1.1.0", ips: [{ address: "10.250.9.9/32" }] };
    const annotations = (meshed: boolean) => ({
      "io.kubernetes.cri.pod-annotations": meshed
        ? { "sidecar.istio.io/status": '{"containers":["istio-proxy"]}' }
        : {},
      cgroupPath: "/",
    });

    it("STATUS answers code 50 naming why", async () => {
      const status = await blockedCni("STATUS", base);
      expect(status.code).to.equal(1);
      const err = JSON.parse(status.stdout);
      expect(err.code).to.equal(50);
      expect(err.msg)
        .to.contain("the eBPF addon cannot be used: no usable runtime directory")
        .and.contain("noexec");
    });

    it("ADD of a meshed pod answers code 50 naming why", async () => {
      const add = await blockedCni("ADD", {
        ...base,
        prevResult,
        runtimeConfig: annotations(true),
      });
      expect(add.code).to.equal(1);
      const err = JSON.parse(add.stdout);
      expect(err).to.include({ cniVersion: "1.1.0", code: 50 });
      expect(err.msg).to.contain("the eBPF addon cannot be used");
    });

    it("ADD of an unmeshed pod succeeds: it needs no addon", async () => {
      const add = await blockedCni("ADD", {
        ...base,
        prevResult,
        runtimeConfig: annotations(false),
      });
      expect(add.code, add.stdout + add.stderr).to.equal(0);
      expect(JSON.parse(add.stdout).ips).to.deep.equal(prevResult.ips);
    });

    it("DEL of a container with nothing pinned succeeds: kubelet's teardown is never blocked", async () => {
      const del = await blockedCni("DEL", base);
      expect(del.code, del.stdout + del.stderr).to.equal(0);
      expect(del.stdout).to.equal("");
    });
  });

  describe("CNI callers get CNI errors, never a stack trace or the command line's help", () => {
    const env = {
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/var/run/netns/none",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
    };

    it("stdin that is a directory: code 5 on stdout, exit 1", async () => {
      const r = await inPrivateMounts(`CNI_COMMAND=DEL exec "${WAGGLE}" < /`, env);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.equal("");
      const err = JSON.parse(r.stdout);
      expect(err.code).to.equal(5);
      expect(err.msg)
        .to.contain("reading the configuration from stdin failed")
        .and.contain("EISDIR");
    });

    it("CNI_COMMAND missing but the other CNI_* variables set: code 4 on stdout, exit 1", async () => {
      const r = await waggle(WAGGLE, [], env, '{"cniVersion":"1.0.0","name":"n","type":"waggle"}');
      expect(r.code).to.equal(1);
      expect(JSON.parse(r.stdout)).to.include({
        cniVersion: "1.0.0",
        code: 4,
        msg: "required env variables [CNI_COMMAND] missing",
      });
    });

    it("a prevResult nested 20,000 levels deep: code 6, nothing written back, no stack overflow", async () => {
      const deep = `${"[".repeat(20_000)}${"]".repeat(20_000)}`;
      const stdin = `{"cniVersion":"1.0.0","name":"n","type":"waggle","log_file":"","prevResult":{"cniVersion":"1.0.0","x":${deep}}}`;
      const r = await waggle(WAGGLE, [], { ...env, CNI_COMMAND: "ADD" }, stdin);
      expect(r.code).to.equal(1);
      expect(JSON.parse(r.stdout)).to.include({
        code: 6,
        msg: "error decoding network config: nested too deeply",
      });
    });
  });

  it("ADD of a meshed pod with no bpffs mounted answers code 50 at once, creating nothing (it once looped on mkdir)", async () => {
    const conf = {
      cniVersion: "1.1.0",
      name: "k8s-pod-network",
      type: "waggle",
      log_file: "",
      prevResult: { cniVersion: "1.1.0", ips: [{ address: "10.250.9.9/32" }] },
      runtimeConfig: {
        "io.kubernetes.cri.pod-annotations": {
          "sidecar.istio.io/status": '{"containers":["istio-proxy"]}',
        },
        cgroupPath: "/",
      },
    };
    const t0 = performance.now();
    const r = await inPrivateMounts(
      `umount /sys/fs/bpf; ! mountpoint -q /sys/fs/bpf; echo '${JSON.stringify(conf)}' | CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS=/var/run/netns/none CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni CNI_ARGS='IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0' "${WAGGLE}"; test ! -e /sys/fs/bpf/waggle`,
    );
    expect(performance.now() - t0).to.be.below(20_000);
    expect(r.code, r.stderr).to.equal(1);
    const err = JSON.parse(r.stdout.trim());
    expect(err.code).to.equal(50);
    expect(err.msg).to.contain("/sys/fs/bpf/waggle is not on a bpffs");
  });

  it("waggle version neither extracts nor loads the addon", async () => {
    const runtime = freshDir("runtime");
    const r = await waggle(copiedBinary(), ["version"], {
      WAGGLE_RUNTIME_DIR: runtime,
      LD_DEBUG: "files",
    });
    expectOk(r, "version");
    expect(r.stderr).to.not.contain("ebpf_napi.node");
    expect(r.stderr).to.not.contain("libbpf.so");
    expect(entries(runtime)).to.deep.equal([]);
  });

  it("version --verbose extracts the addon to $WAGGLE_RUNTIME_DIR and reports libbpf", async () => {
    const runtime = freshDir("runtime");
    const info = versionJson(
      await waggle(copiedBinary(), ["version", "--verbose", "--json"], {
        WAGGLE_RUNTIME_DIR: runtime,
      }),
    );
    expect(info.libbpf).to.match(/^v1\.\d+/);
    expect(info.node).to.match(/^v24\./);
    // The JS runs from the main chunk and the command line's (yargs), each with the code cache
    // made at build time by the same node.
    expect(info.chunks).to.deep.equal({
      main: "code cache accepted",
      cli: "code cache accepted",
    });
    const [id] = entries(runtime);
    expect(id).to.match(/^[0-9a-f]{16}$/);
    expect(info.addon).to.equal(join(runtime, id, "ebpf_napi.node"));
    expect(entries(join(runtime, id))).to.deep.equal([
      "COMPLETE",
      "ebpf_napi.node",
      "libbpf.so.1",
      "libelf.so.1",
      "libz.so.1",
    ]);
  });

  it("loads its own libbpf, libelf and libz, not the host's (hidden in a private mount namespace)", async () => {
    const runtime = freshDir("runtime");
    const hide = ["libbpf.so.1", "libelf.so.1", "libz.so.1"]
      .map((l) => `f=$(readlink -f /lib/x86_64-linux-gnu/${l}); mount --bind /dev/null "$f"`)
      .join("; ");
    const r = await inPrivateMounts(`${hide}; exec "${WAGGLE}" version --verbose --json`, {
      WAGGLE_RUNTIME_DIR: runtime,
    });
    const info = versionJson(r);
    expect(info.addon.startsWith(`${runtime}/`)).to.equal(true);
    expect(info.libbpf).to.match(/^v1\./);
  });

  it("20 concurrent first runs against an empty runtime dir all succeed, leaving one complete copy", async () => {
    const runtime = freshDir("runtime");
    const bin = copiedBinary();
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        waggle(bin, ["version", "--verbose", "--json"], { WAGGLE_RUNTIME_DIR: runtime }),
      ),
    );
    const addons = new Set(results.map((r) => versionJson(r).addon));
    expect(addons.size).to.equal(1);
    const [id] = entries(runtime);
    expect(entries(runtime)).to.have.length(1);
    const files = entries(join(runtime, id));
    expect(files, "no temporary file left behind").to.deep.equal([
      "COMPLETE",
      "ebpf_napi.node",
      "libbpf.so.1",
      "libelf.so.1",
      "libz.so.1",
    ]);
    for (const f of files.filter((n) => n !== "COMPLETE")) {
      const bytes = readFileSync(join(runtime, id, f));
      expect(bytes.subarray(0, 4).toString("latin1"), f).to.equal("\x7fELF");
      expect(statSync(join(runtime, id, f)).mode & 0o777, f).to.equal(0o755);
    }
  });

  it("works with /tmp mounted noexec (it never uses /tmp)", async () => {
    // The binary and its runtime dir live outside /tmp whatever the checkout's location (a CI
    // clone may itself sit under /tmp, which the noexec mount would hide).
    const dir = mkdtempSync("/var/lib/waggle-test-");
    try {
      const bin = join(dir, "waggle");
      copyFileSync(WAGGLE, bin);
      chmodSync(bin, 0o755);
      const runtime = join(dir, "runtime");
      mkdirSync(runtime, { mode: 0o755 });
      const r = await inPrivateMounts(
        `mount -t tmpfs -o noexec,nosuid,nodev tmpfs /tmp; exec "${bin}" version --verbose --json`,
        { WAGGLE_RUNTIME_DIR: runtime, TMPDIR: "/tmp" },
      );
      expect(versionJson(r).addon.startsWith(`${runtime}/`)).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("skips a noexec $WAGGLE_RUNTIME_DIR and a read-only /var/lib/waggle for the dir beside the binary", async () => {
    const bin = copiedBinary();
    const noexec = freshDir("noexec");
    const r = await inPrivateMounts(
      [
        `mount -t tmpfs -o noexec tmpfs "${noexec}"`,
        "mkdir -p /var/lib/waggle",
        "mount -t tmpfs -o ro tmpfs /var/lib/waggle",
        `exec "${bin}" version --verbose --json`,
      ].join("; "),
      { WAGGLE_RUNTIME_DIR: noexec },
    );
    const info = versionJson(r);
    expect(info.addon.startsWith(`${join(bin, "..", ".waggle-runtime")}/`), info.addon).to.equal(
      true,
    );
  });

  it("with no usable runtime dir, version --verbose fails naming every candidate; doctor names the addon", async () => {
    const bin = copiedBinary();
    const noexec = freshDir("noexec");
    const binDir = join(bin, "..");
    const common = blockRuntimeDirs(noexec, binDir);
    const version = await inPrivateMounts(`${common}; exec "${bin}" version --verbose`, {
      WAGGLE_RUNTIME_DIR: noexec,
    });
    expect(version.code).to.equal(1);
    expect(version.stderr).to.contain("no usable runtime directory");
    expect(version.stderr).to.contain(`${noexec}: `).and.contain("noexec");
    expect(version.stderr).to.contain("/var/lib/waggle/runtime: ");
    expect(version.stderr).to.contain(`${binDir}/.waggle-runtime: `);
    const doctor = await inPrivateMounts(`${common}; exec "${bin}" doctor`, {
      WAGGLE_RUNTIME_DIR: noexec,
    });
    expect(doctor.code).to.not.equal(0);
    expect(doctor.stdout).to.match(
      /^FAIL eBPF addon \(libbpf\) loads: no usable runtime directory/m,
    );
  });

  it("SIGUSR1 opens no debugger: a CNI call signalled while it reads stdin goes on and answers", async () => {
    const call = await cniCallReadingStdin({ CNI_COMMAND: "VERSION" });
    process.kill(call.pid, "SIGUSR1");
    await sleep(200); // Node's default would be opening its inspector now
    const r = await call.finish('{"cniVersion":"1.1.0"}');
    expect(r.stderr, "no inspector, no error").to.equal("");
    expect(r.code).to.equal(0);
    expect(JSON.parse(r.stdout).supportedVersions).to.include("1.1.0");
  });

  it("a CNI call starts one V8 worker thread and no SIGUSR1 inspector thread", async () => {
    const call = await cniCallReadingStdin({ CNI_COMMAND: "VERSION" });
    let names: string[];
    try {
      names = readdirSync(`/proc/${call.pid}/task`).map((t) =>
        readFileSync(`/proc/${call.pid}/task/${t}/comm`, "utf8").trim(),
      );
    } finally {
      await call.finish('{"cniVersion":"1.1.0"}');
    }
    expect(
      names.filter((n) => n === "V8Worker"),
      names.join(", "),
    ).to.have.length(1);
    expect(names, names.join(", ")).to.not.include("SignalInspector");
  });

  it("ignores NODE_OPTIONS (a root CNI plugin must not be steered by its environment)", async () => {
    const r = await waggle(WAGGLE, ["version"], {
      NODE_OPTIONS: "--require /nonexistent/inject.js",
    });
    expectOk(r, "version with NODE_OPTIONS");
  });

  it("an unknown command exits 2 with usage on stderr", async () => {
    const r = await waggle(WAGGLE, ["frobnicate"]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain("frobnicate");
    expect(r.stdout).to.equal("");
  });

  it("doctor passes every check on this machine and exits 0", async () => {
    const r = await waggle(copiedBinary(), ["doctor"]);
    expectOk(r, "doctor");
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines.filter((l) => l.startsWith("FAIL"))).to.deep.equal([]);
    expect(lines.at(-1)).to.match(/^waggle doctor: all \d+ prerequisites met$/);
    for (const what of [
      "kernel >=",
      "cgroup v2 mounted",
      "bpffs mounted at /sys/fs/bpf",
      "glibc >=",
      "program type",
      "map type",
      "helper bpf_",
      "BPF object",
    ]) {
      expect(
        lines.some((l) => l.startsWith("ok") && l.includes(what)),
        what,
      ).to.equal(true);
    }
  });

  it("doctor --json lists every check with ok true", async () => {
    const r = await waggle(WAGGLE, ["doctor", "--json"]);
    expectOk(r, "doctor --json");
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      failed: string[];
      checks: { id: string; ok: boolean }[];
    };
    expect(report.ok).to.equal(true);
    expect(report.failed).to.deep.equal([]);
    expect(report.checks.map((c) => c.id)).to.include.members([
      "kernel",
      "cgroup2",
      "bpffs",
      "glibc",
      "addon",
    ]);
  });

  it("doctor with bpffs unmounted (private mount namespace) exits non-zero and names bpffs", async () => {
    const r = await inPrivateMounts(
      `umount /sys/fs/bpf; ! mountpoint -q /sys/fs/bpf; exec "${WAGGLE}" doctor`,
    );
    expect(r.code, r.stderr).to.equal(1);
    expect(r.stdout).to.match(
      /^FAIL bpffs mounted at \/sys\/fs\/bpf: \/sys\/fs\/bpf is filesystem 0x[0-9a-f]+, not bpffs/m,
    );
    expect(r.stdout).to.contain("mount -t bpf bpf /sys/fs/bpf");
    expect(r.stdout.trimEnd().split("\n").at(-1)).to.match(/prerequisites missing: bpffs$/);
  });

  it("doctor --bpf-root checks the configured root", async () => {
    const notBpf = freshDir("not-bpffs");
    const r = await waggle(WAGGLE, ["doctor", "--bpf-root", join(notBpf, "pins")]);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.contain(
      `FAIL bpffs mounted at ${join(notBpf, "pins")}: ${notBpf} is filesystem`,
    );
  });
});
