// dist/waggle on a degraded node, against a real pod: bpffs not mounted, the runtime directory
// (and every other place the addon could be extracted to) on a full disk, the log file on a
// full disk, and a bpf root another user made or changed. Each call ends at once with exit 0 or
// a documented code; no failure leaves programs on the pod, and DEL never reports success
// while the pod's programs stay attached. Mount changes happen in private mount namespaces.
import "../support/hooks";
import { chownSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import {
  classify,
  describeRun,
  gc,
  type PodRequest,
  podAttachments,
  podCommand,
  podConf,
  podEnv,
  WAGGLE_BINARY,
} from "../support/cni-binary";
import { run } from "../support/command";
import { uniqueName } from "../support/names";
import { useReliabilityBench } from "../support/reliability";

/** A tmpfs of `size` at `dir`, filled up (the shell lines, for a private mount namespace). */
function fullTmpfs(dir: string, size = "256k"): string {
  return `mkdir -p "${dir}"; mount -t tmpfs -o size=${size} tmpfs "${dir}"; dd if=/dev/zero of="${dir}/.filler" bs=4k 2>/dev/null || true`;
}

describe("reliability: dist/waggle on a degraded node", function () {
  this.timeout(300_000);
  const fixture = useReliabilityBench();

  afterEach(async () => {
    await gc(fixture.bench.root.path); // a failed test leaves no pod attached to the next one
  });

  /** Runs one CNI command of `binary` for `req` after `setup` in a private mount namespace. */
  async function inPrivateMounts(
    setup: string,
    command: "ADD" | "DEL",
    req: PodRequest,
    env: Record<string, string> = {},
    binary = WAGGLE_BINARY,
  ) {
    const stdinFile = join(fixture.bench.scratch, `${uniqueName("s")}.json`);
    writeFileSync(stdinFile, JSON.stringify(podConf(req)));
    const cniEnv = { ...podEnv(command, req), ...env };
    const t0 = performance.now();
    const r = await run(
      "unshare",
      [
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-euc",
        `${setup}; exec "${binary}" < "${stdinFile}"`,
      ],
      { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...cniEnv }, timeoutMs: 30_000 },
    );
    return { ...r, ms: performance.now() - t0, ...classify(r.code, r.signal, r.stdout, r.stderr) };
  }

  it("bpffs not mounted: a meshed ADD answers code 50 at once, attaching nothing; DEL exits 0", async () => {
    const pod = fixture.bench.pods[0];
    const req = fixture.bench.request(pod);
    const add = await inPrivateMounts("umount -l /sys/fs/bpf", "ADD", req);
    expect(add.code, add.stdout + add.stderr).to.equal(50);
    expect(add.outcome).to.equal("cni-error");
    expect(add.ms).to.be.below(10_000);
    expect(podAttachments(pod)).to.deep.equal([]);
    const del = await inPrivateMounts("umount -l /sys/fs/bpf", "DEL", req);
    expect(del.outcome, del.stdout + del.stderr).to.equal("ok");
    expect(fixture.bench.leaks()).to.deep.equal([]);
  });

  describe("every runtime directory on a full disk (the addon cannot be extracted)", () => {
    let binDir: string;
    let setup: string;
    const env = () => ({ WAGGLE_RUNTIME_DIR: join(fixture.bench.scratch, "full-runtime") });
    before(() => {
      binDir = join(fixture.bench.scratch, "bin");
      mkdirSync(binDir);
      copyFileSync(WAGGLE_BINARY, join(binDir, "waggle"));
      setup = [
        fullTmpfs(join(fixture.bench.scratch, "full-runtime")),
        fullTmpfs("/var/lib/waggle"),
        `mount -o bind,ro "${binDir}" "${binDir}"`,
      ].join("; ");
    });
    const bin = () => join(binDir, "waggle");

    it("a meshed ADD answers code 50; an unmeshed ADD succeeds", async () => {
      const pod = fixture.bench.pods[0];
      const meshed = await inPrivateMounts(setup, "ADD", fixture.bench.request(pod), env(), bin());
      expect(meshed.code, meshed.stdout + meshed.stderr).to.equal(50);
      expect(meshed.stdout).to.contain("the eBPF addon cannot be used");
      expect(podAttachments(pod)).to.deep.equal([]);
      const plain = await inPrivateMounts(
        setup,
        "ADD",
        fixture.bench.request(pod, { annotations: {} }),
        env(),
        bin(),
      );
      expect(plain.outcome, plain.stdout + plain.stderr).to.equal("ok");
      expect(fixture.bench.leaks()).to.deep.equal([]);
    });

    it("DEL of an attached pod exits 0 and detaches its programs; a later DEL removes the rest", async () => {
      const pod = fixture.bench.pods[0];
      const req = fixture.bench.request(pod);
      const add = await podCommand("ADD", req);
      expect(add.outcome, describeRun(add)).to.equal("ok");
      expect(podAttachments(pod)).to.have.length(11);
      const del = await inPrivateMounts(setup, "DEL", req, env(), bin());
      expect(del.outcome, del.stdout + del.stderr).to.equal("ok");
      expect(podAttachments(pod), "programs still attached after DEL").to.deep.equal([]);
      const again = await podCommand("DEL", req);
      expect(again.outcome, describeRun(again)).to.equal("ok");
      expect(fixture.bench.leaks()).to.deep.equal([]);
    });
  });

  it("the log file on a full disk: ADD and DEL of a meshed pod still answer, leaving nothing", async () => {
    const pod = fixture.bench.pods[0];
    const logDir = join(fixture.bench.scratch, "full-log");
    const req = fixture.bench.request(pod, {
      entry: { log_file: join(logDir, "cni.log"), log_level: "debug" },
    });
    const add = await inPrivateMounts(fullTmpfs(logDir, "64k"), "ADD", req);
    expect(["ok", "cni-error"], add.stdout + add.stderr).to.include(add.outcome);
    const del = await inPrivateMounts(fullTmpfs(logDir, "64k"), "DEL", req);
    expect(del.outcome, del.stdout + del.stderr).to.equal("ok");
    expect(fixture.bench.leaks()).to.deep.equal([]);
  });

  it("a bpf root made by uid 1000 (a 1777 bpffs): a meshed ADD is refused with a documented code, attaching nothing", async () => {
    const pod = fixture.bench.pods[0];
    const root = join("/sys/fs/bpf", uniqueName("u"));
    mkdirSync(root, { mode: 0o755 });
    try {
      chownSync(root, 1000, 1000);
      const add = await podCommand("ADD", fixture.bench.request(pod, { bpfRoot: root }));
      expect(add.outcome, describeRun(add)).to.equal("cni-error");
      expect(add.stdout).to.contain(root);
      expect(podAttachments(pod)).to.deep.equal([]);
    } finally {
      await run("rm", ["-rf", root]);
    }
  });

  it("pods/ swapped by uid 1000 under an attached pod: DEL, CHECK and GC fail with their codes naming it (it was 999), never pass", async () => {
    const pod = fixture.bench.pods[0];
    const req = fixture.bench.request(pod);
    const add = await podCommand("ADD", req);
    expect(add.outcome, describeRun(add)).to.equal("ok");
    const pods = join(fixture.bench.root.path, "pods");
    try {
      chownSync(pods, 1000, 1000);
      for (const [what, r, code] of [
        ["DEL", await podCommand("DEL", req), 106],
        ["CHECK", await podCommand("CHECK", req), 105],
        ["GC", await gc(fixture.bench.root.path), 107],
      ] as const) {
        expect(r.outcome, `${what}: ${describeRun(r)}`).to.equal("cni-error");
        expect(r.code, what).to.equal(code);
        expect(r.stdout, what).to.contain(`${pods} is owned by uid 1000`);
      }
      expect(
        podAttachments(pod),
        "the refused DEL left the programs for a later one",
      ).to.have.length(11);
    } finally {
      chownSync(pods, 0, 0);
    }
    const del = await podCommand("DEL", req);
    expect(del.outcome, describeRun(del)).to.equal("ok");
    expect(fixture.bench.leaks()).to.deep.equal([]);
  });
});
