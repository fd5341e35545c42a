// Container images for the containerd tests, made without a registry: a directory tree is
// packed as one uncompressed layer into an OCI image layout (oci-layout, index.json,
// blobs/sha256), tarred, and imported with `ctr images import` into the runtime's "k8s.io"
// namespace, where its CRI plugin finds it by name.
//
// Two images, cached under build/images by the hash of what goes into them:
// - pause: the static test/support/cri/pause.c, the sandbox's first process;
// - app: a merged-/usr skeleton (bin, lib, lib64, sbin pointing into /usr), an /etc/passwd
//   naming root, the app user 1000 and the proxy user 1337, and empty mount points. Its
//   containers mount the host's /usr read-only, so haproxy and python3 come from the node's
//   packages (the same ones the other kernel tests run) instead of a second copy.
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { runChecked } from "./command";
import { REPO } from "./libcni";

export const PAUSE_IMAGE = "localhost/waggle-test/pause:1";
export const APP_IMAGE = "localhost/waggle-test/app:1";

const PAUSE_SOURCE = join(REPO, "test", "support", "cri", "pause.c");

export interface ImageSpec {
  /** The name containerd gives the image (io.containerd.image.name). */
  name: string;
  /** Writes the root file system into `root`. */
  populate(root: string): Promise<void>;
  /** The image config's process settings. */
  config: { Entrypoint?: string[]; Cmd?: string[]; User?: string; WorkingDir?: string };
  /** What the tree depends on beyond this file (hashed into the cache key). */
  inputs: string[];
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** Packs `spec` as an OCI image archive (cached) and returns the archive's path. */
export async function buildImageArchive(spec: ImageSpec): Promise<string> {
  const cacheDir = join(REPO, "build", "images");
  mkdirSync(cacheDir, { recursive: true });
  const key = sha256(JSON.stringify({ name: spec.name, config: spec.config, inputs: spec.inputs }));
  const archive = join(
    cacheDir,
    `${spec.name.replace(/[^a-z0-9]+/g, "-")}-${key.slice(0, 16)}.tar`,
  );
  if (existsSync(archive)) return archive;
  const work = mkdtempSync(join(cacheDir, "work-"));
  try {
    const root = join(work, "rootfs");
    mkdirSync(root);
    await spec.populate(root);
    const layout = join(work, "layout");
    const blobs = join(layout, "blobs", "sha256");
    mkdirSync(blobs, { recursive: true });
    const blob = (data: Buffer | string) => {
      const digest = sha256(data);
      writeFileSync(join(blobs, digest), data);
      return { digest: `sha256:${digest}`, size: Buffer.byteLength(data) };
    };
    // Reproducible layer: sorted names, root-owned, a fixed time.
    const layerTar = join(work, "layer.tar");
    await runChecked("tar", [
      "--sort=name",
      "--numeric-owner",
      "--owner=0",
      "--group=0",
      "--mtime=@0",
      "-C",
      root,
      "-cf",
      layerTar,
      ".",
    ]);
    const layer = blob(readFileSync(layerTar));
    const config = blob(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: {
          Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
          ...spec.config,
        },
        rootfs: { type: "layers", diff_ids: [layer.digest] },
      }),
    );
    const manifest = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
      }),
    );
    writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    writeFileSync(
      join(layout, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            ...manifest,
            platform: { architecture: "amd64", os: "linux" },
            annotations: {
              "io.containerd.image.name": spec.name,
              "org.opencontainers.image.ref.name": spec.name.split(":").pop(),
            },
          },
        ],
      }),
    );
    const tmp = `${archive}.${process.pid}`;
    await runChecked("tar", ["--sort=name", "-C", layout, "-cf", tmp, "."]);
    renameSync(tmp, archive);
    return archive;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The pause image: /pause, built static from test/support/cri/pause.c. */
export function pauseImage(): ImageSpec {
  return {
    name: PAUSE_IMAGE,
    inputs: [readFileSync(PAUSE_SOURCE, "utf8")],
    config: { Entrypoint: ["/pause"], User: "65535:65535" },
    async populate(root) {
      await runChecked("gcc", ["-static", "-Os", "-s", "-o", join(root, "pause"), PAUSE_SOURCE]);
    },
  };
}

const PASSWD =
  "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\nistio-proxy:x:1337:1337:proxy:/tmp:/bin/sh\n";
const GROUP = "root:x:0:\napp:x:1000:\nistio-proxy:x:1337:\n";

/** The app image: a merged-/usr skeleton whose containers mount the host's /usr. */
export function appImage(): ImageSpec {
  return {
    name: APP_IMAGE,
    inputs: [PASSWD, GROUP],
    config: { Cmd: ["/bin/sh"], WorkingDir: "/" },
    async populate(root) {
      for (const dir of [
        "usr",
        "etc",
        "proc",
        "sys",
        "dev",
        "run",
        "root",
        "srv",
        "tmp",
        "var/tmp",
      ])
        mkdirSync(join(root, dir), { recursive: true });
      chmodSync(join(root, "tmp"), 0o1777);
      chmodSync(join(root, "var", "tmp"), 0o1777);
      for (const link of ["bin", "sbin", "lib", "lib64"])
        symlinkSync(`usr/${link}`, join(root, link));
      writeFileSync(join(root, "etc", "passwd"), PASSWD);
      writeFileSync(join(root, "etc", "group"), GROUP);
    },
  };
}

/** Imports an archive into a containerd's "k8s.io" namespace (unpacked for its snapshotter). */
export async function importImage(socket: string, archive: string): Promise<void> {
  if (statSync(archive).size === 0) throw new Error(`image archive ${archive} is empty`);
  await runChecked("ctr", [
    "--address",
    socket,
    "--namespace",
    "k8s.io",
    "images",
    "import",
    archive,
  ]);
}
