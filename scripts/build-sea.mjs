#!/usr/bin/env node
// Builds dist/waggle: a Node.js single executable application (SEA) carrying the bundled JS, the
// ebpf-napi addon with the shared libraries beside it, and every bpf/build/*.bpf.o.
//
// Run by scripts/build as `node_modules/.bin/node scripts/build-sea.mjs` (Node 24: the SEA blob
// must be made by the same Node binary it is injected into), after tsc has filled out/.
// Options: --bpf-dir DIR (the BPF objects, default bpf/build) and --output FILE (default
// dist/waggle), for building another release's binary beside this one (the upgrade tests).
//
// Steps: bundle app/main.ts with esbuild (one CJS file); find the glibc floor of every shipped ELF
// file (objdump -T); hash the addon files (the runtime directory's name); write the SEA config and
// blob; copy node, strip its symbol table, inject the blob with postject; rename into place.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const { values: options } = parseArgs({
  options: { "bpf-dir": { type: "string" }, output: { type: "string" } },
});
// Per build: other builds in the same tree may run at the same time.
const work = join(root, "build", "sea", String(process.pid));
const output = resolve(options.output ?? join(root, "dist", "waggle"));
const addonDir = join(root, "ebpf-napi", "build", "Release");
const addonFile = "ebpf_napi.node";
/** Libraries the addon finds beside itself ($ORIGIN rpath); a host need not have them. */
const addonLibs = ["libbpf.so.1", "libelf.so.1", "libz.so.1"];
const bpfDir = resolve(options["bpf-dir"] ?? join(root, "bpf", "build"));
const nodeBinary = process.execPath;
// The fuse postject flips so the binary knows a blob was injected (Node's documented value).
const seaFuse = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

const log = (msg) => process.stderr.write(`build-sea: ${msg}\n`);

function fail(msg) {
  process.stderr.write(`build-sea: ${msg}\n`);
  process.exit(1);
}

if (!/^v24\./.test(process.version)) {
  fail(`must run on Node 24 (node_modules/.bin/node), not ${process.version} from ${nodeBinary}`);
}

// Modules from out/ (tsc ran first): the same code the binary runs.
const { assetKey, gitCommit } = require(join(root, "out", "base", "build-info.js"));
const { glibcFloor, glibcNeeds } = require(join(root, "out", "base", "glibc.js"));
const { shippedBpfObjects } = require(join(root, "out", "base", "assets.js"));

const addonFiles = [addonFile, ...addonLibs];
for (const f of addonFiles) {
  if (!existsSync(join(addonDir, f)))
    fail(`missing ${relative(root, join(addonDir, f))}: run scripts/build-addon`);
}
// Every object bpf/ builds, except the addon's test-only programs.
const bpfObjects = existsSync(bpfDir) ? shippedBpfObjects(readdirSync(bpfDir)) : [];
if (bpfObjects.length === 0) fail(`no BPF objects in ${relative(root, bpfDir)}: run make -C bpf`);

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
mkdirSync(dirname(output), { recursive: true });

// --- build info baked into the bundle --------------------------------------------------------
const runtimeHash = createHash("sha256");
for (const f of addonFiles) {
  runtimeHash.update(`${f}\0${statSync(join(addonDir, f)).size}\0`);
  runtimeHash.update(readFileSync(join(addonDir, f)));
}
const needs = glibcNeeds([nodeBinary, ...addonFiles.map((f) => join(addonDir, f))]);
const floor = glibcFloor(needs);
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const buildInfo = {
  version: pkg.version,
  commit: gitCommit(root),
  glibcFloor: floor,
  runtimeId: runtimeHash.digest("hex").slice(0, 16),
  addonFiles,
  bpfObjects,
};
log(
  `glibc needs: ${needs.map((n) => `${n.file} ${n.version}`).join(", ")}; floor ${floor?.version} (${floor?.file})`,
);
writeFileSync(join(work, "build-info.json"), `${JSON.stringify(buildInfo, null, 2)}\n`);

// --- bundle ----------------------------------------------------------------------------------
// yargs' help layout (cliui, wrap-ansi) imports string-width, whose module setup builds an
// Intl.Segmenter and Unicode property regexes: ~40 ms on every CLI start, for help text that is
// plain ASCII. Each import of string-width gets a stand-in that measures printable ASCII itself
// and requires the real module (the version that importer resolves to) only for anything else.
const lazyStringWidth = {
  name: "lazy-string-width",
  setup(build) {
    build.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData?.real) return undefined;
      const real = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: { real: true },
      });
      if (real.errors.length > 0) return { errors: real.errors };
      return { path: real.path, namespace: "lazy-string-width" };
    });
    build.onLoad({ filter: /.*/, namespace: "lazy-string-width" }, (args) => ({
      loader: "js",
      resolveDir: dirname(args.path),
      contents: [
        "const printableAscii = /^[\\x20-\\x7e]*$/;",
        "let real;",
        "export default function stringWidth(text, options) {",
        '  if (typeof text === "string" && printableAscii.test(text)) return text.length;',
        `  real ??= require(${JSON.stringify(args.path)}).default;`,
        "  return real(text, options);",
        "}",
      ].join("\n"),
    }));
  },
};

const esbuild = require("esbuild");
/** Options every bundle shares: one CJS file for Node 24, names kept for stack traces. */
const bundleOptions = {
  bundle: true,
  platform: "node",
  target: "node24",
  format: "cjs",
  minify: true,
  keepNames: true,
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
  // The workspace package from its TypeScript source (its package.json points into out/).
  alias: { "ebpf-napi": join(root, "ebpf-napi", "lib", "index.ts") },
  define: {
    WAGGLE_BUILD: JSON.stringify(buildInfo),
    // ESM dependencies (yargs) read import.meta.url; in the CJS bundle it is the binary itself.
    "import.meta.url": "__waggleImportMetaUrl",
  },
  banner: { js: 'var __waggleImportMetaUrl=require("node:url").pathToFileURL(__filename).href;' },
};

// The JavaScript travels as chunks: SEA assets each compiled by a small boot script with a V8
// code cache made here, by the same node, after running the chunk (scripts/sea-train.cjs; a
// cache taken after a run holds the functions that ran compiled, unlike SEA's useCodeCache,
// taken before it).
// - "main": the bundle of app/main.ts, trained on CNI VERSION and `waggle version`;
// - large dependencies only some commands use, loaded on first require: the Kubernetes client
//   (3 MB) costs nothing to the commands that never talk to the API server.
const chunk = require("./sea-chunk.cjs");
const lazyChunks = [
  { name: "k8s", module: "@kubernetes/client-node" },
  // the command line parser: CNI calls never use it
  { name: "cli", module: "yargs" },
  // the installer's logger and metrics (CNI calls log through base/line-log.ts)
  { name: "log", module: "winston" },
  { name: "metrics", module: "prom-client" },
];
const lit = JSON.stringify;
const mainFlows = [
  { env: { CNI_COMMAND: "VERSION" }, waits: true },
  { argv: ["version"], waits: true },
  ...cniFlows(join(work, "train")),
];

/**
 * CNI calls that need no kernel, so every build machine can run them: an unmeshed pod's ADD
 * and CHECK, logging at info to a file as the default config does, and DEL of a container with
 * nothing pinned (a bpf root that does not exist).
 */
function cniFlows(dir) {
  // A path that is no network namespace: the plugin's own would be refused (code 8).
  const netns = join(dir, "netns");
  const conf = {
    cniVersion: "1.1.0",
    name: "k8s-pod-network",
    type: "waggle",
    bpf_root: join(dir, "bpf"),
    log_file: join(dir, "cni.log"),
    log_level: "info",
    prevResult: {
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", sandbox: netns }],
      ips: [{ address: "10.0.0.2/32", interface: 0 }],
    },
    runtimeConfig: { "io.kubernetes.cri.pod-annotations": {} },
  };
  const env = (command) => ({
    CNI_COMMAND: command,
    CNI_CONTAINERID: "waggle-build-training",
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin",
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=build;K8S_POD_NAME=training",
  });
  return ["ADD", "CHECK", "DEL"].map((command) => ({
    env: env(command),
    stdin: JSON.stringify(conf),
    waits: true,
  }));
}

/**
 * A meshed pod's ADD, CHECK and DEL for real, when this build machine can run them (root, a
 * bpffs at /sys/fs/bpf, cgroup v2, iproute2): a throwaway network namespace with eth0, a cgroup
 * and a bpf root, removed by cleanup(). Elsewhere (an image build) no flows, and why.
 */
function trainingLab(dir) {
  const none = (reason) => ({ flows: [], reason, cleanup: () => {} });
  if (process.getuid?.() !== 0) return none("not root");
  const { onBpffs } = require(join(root, "out", "datapath", "pins.js"));
  if (!onBpffs("/sys/fs/bpf")) return none("no bpffs at /sys/fs/bpf");
  const { cgroup2Root } = require(join(root, "out", "base", "cgroup2.js"));
  let cgroupRoot;
  try {
    cgroupRoot = cgroup2Root();
  } catch (err) {
    return none(err.message);
  }
  const name = `waggle-build-${process.pid}`;
  const netns = `/run/netns/${name}`;
  const cgroup = join(cgroupRoot, name);
  const bpfRoot = join("/sys/fs/bpf", name);
  const ip = (...args) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
  const cleanup = () => {
    for (const undo of [
      () => rmSync(bpfRoot, { recursive: true, force: true }),
      () => ip("netns", "del", name),
      () => existsSync(cgroup) && execFileSync("rmdir", [cgroup]),
    ]) {
      try {
        undo();
      } catch (err) {
        log(`training lab: ${err.message}`);
      }
    }
  };
  try {
    ip("netns", "add", name);
    ip("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0");
    ip("-n", name, "addr", "add", "10.250.0.2/32", "dev", "eth0");
    ip("-n", name, "link", "set", "eth0", "up");
    mkdirSync(cgroup);
  } catch (err) {
    cleanup();
    return none(`cannot make a network namespace and cgroup: ${err.message}`);
  }
  const conf = {
    cniVersion: "1.1.0",
    name: "k8s-pod-network",
    type: "waggle",
    bpf_root: bpfRoot,
    log_file: join(dir, "cni.log"),
    log_level: "info",
    prevResult: {
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", sandbox: netns }],
      ips: [{ address: "10.250.0.2/32", interface: 0 }],
    },
    runtimeConfig: {
      "io.kubernetes.cri.pod-annotations": {
        "sidecar.istio.io/status":
          '{"initContainers":["istio-validation"],"containers":["istio-proxy"]}',
      },
      cgroupPath: `/${name}`,
    },
  };
  const env = (command) => ({
    CNI_COMMAND: command,
    CNI_CONTAINERID: name,
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin",
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=build;K8S_POD_NAME=${name}`,
    // the addon and its libraries are extracted here, not into the host's runtime directory
    WAGGLE_RUNTIME_DIR: join(dir, "runtime"),
  });
  // twice: the first ADD loads the shared programs, the second finds them pinned
  const flows = ["ADD", "CHECK", "DEL", "ADD", "DEL"].map((command) => ({
    env: env(command),
    stdin: JSON.stringify(conf),
    waits: true,
  }));
  return { flows, reason: "", cleanup };
}

/** In the main bundle, each lazy chunk's module is a stand-in that loads the chunk when required. */
const chunkStandIns = {
  name: "chunk-stand-ins",
  setup(build) {
    const byModule = new Map(lazyChunks.map((c) => [c.module, c]));
    const filter = new RegExp(
      `^(${lazyChunks.map((c) => c.module.replace(/[/.@-]/g, "\\$&")).join("|")})$`,
    );
    build.onResolve({ filter }, (args) => ({ path: args.path, namespace: "waggle-chunk" }));
    build.onLoad({ filter: /.*/, namespace: "waggle-chunk" }, (args) => ({
      loader: "js",
      contents: `module.exports = globalThis[Symbol.for(${lit(chunk.loaderSymbolName)})](${lit(byModule.get(args.path).name)});`,
    }));
  },
};

mkdirSync(join(work, "chunks"));
/** The SEA assets the JavaScript reads (the addon files, the BPF objects), by key. */
const fileAssets = {};
for (const f of addonFiles) fileAssets[assetKey.addon(f)] = join(addonDir, f);
for (const b of bpfObjects) fileAssets[assetKey.bpf(b)] = join(bpfDir, `${b}.bpf.o`);

/** Rewrites a chunk's bundle as the script its asset holds (sea-chunk.cjs wrap). */
function wrapChunk(file) {
  writeFileSync(file, chunk.wrap(readFileSync(file, "utf8")));
}

/** Runs a chunk's flows at build time (a failure fails the build) and keeps its code cache. */
function trainChunk(name, flows, input) {
  execFileSync(
    nodeBinary,
    [join(root, "scripts", "sea-train.cjs"), work, name, lit(flows), lit(fileAssets)],
    // stderr (the flows' log lines) is shown only when training fails, in the error
    { input, env: { PATH: process.env.PATH }, stdio: ["pipe", "ignore", "pipe"] },
  );
}

for (const c of lazyChunks) {
  const file = join(work, chunk.codeKey(c.name));
  await esbuild.build({
    ...bundleOptions,
    stdin: { contents: `module.exports = require(${lit(c.module)});`, resolveDir: root },
    outfile: file,
    plugins: [lazyStringWidth],
  });
  wrapChunk(file);
  trainChunk(c.name, [{}], "");
  log(`chunk ${c.name} (${c.module}) ${(statSync(file).size / 1024).toFixed(0)} KiB`);
}

const result = await esbuild.build({
  ...bundleOptions,
  entryPoints: [join(root, "app", "main.ts")],
  outfile: join(work, chunk.codeKey("main")),
  plugins: [lazyStringWidth, chunkStandIns],
});
wrapChunk(join(work, chunk.codeKey("main")));
writeFileSync(join(work, "meta.json"), JSON.stringify(result.metafile));
const kernelLab = trainingLab(join(work, "train"));
try {
  // The kernel-free flows must pass (a smoke test); a meshed ADD the build machine's kernel
  // refuses only costs the binary its training, said here.
  if (kernelLab.flows.length > 0) {
    try {
      trainChunk("main", [...mainFlows, ...kernelLab.flows], '{"cniVersion":"1.1.0"}');
      log(
        "main chunk trained on a meshed ADD, CHECK and DEL too (a throwaway netns, cgroup, bpf root)",
      );
    } catch (err) {
      const said = String(err.stderr ?? "")
        .split("\n")
        .find((line) => line.startsWith("sea-train"));
      kernelLab.reason = `it failed here: ${(said ?? err.message).slice(0, 300)}`;
      kernelLab.flows = [];
    }
  }
  if (kernelLab.flows.length === 0) {
    log(`main chunk not trained on a meshed ADD: ${kernelLab.reason}`);
    trainChunk("main", mainFlows, '{"cniVersion":"1.1.0"}');
  }
} finally {
  kernelLab.cleanup();
}
log(`chunk main ${(statSync(join(work, chunk.codeKey("main"))).size / 1024).toFixed(0)} KiB`);

// --- SEA blob --------------------------------------------------------------------------------
const boot = join(work, "boot.cjs");
await esbuild.build({
  ...bundleOptions,
  define: {},
  banner: {},
  entryPoints: [join(root, "scripts", "sea-boot.cjs")],
  outfile: boot,
});
const assets = { ...fileAssets };
for (const name of ["main", ...lazyChunks.map((c) => c.name)]) {
  assets[chunk.codeKey(name)] = join(work, chunk.codeKey(name));
  assets[chunk.cacheKey(name)] = join(work, chunk.cacheKey(name));
}
const blob = join(work, "sea-prep.blob");
const seaConfig = {
  main: boot,
  output: blob,
  disableExperimentalSEAWarning: true,
  // A root CNI plugin must not pick up NODE_OPTIONS from whatever environment runs it.
  execArgvExtension: "none",
  // Node options of every run (Node's own, not V8 flags: a V8 flag changes V8's flag hash,
  // which makes Node's built-in code cache and ours unusable, 13-15 ms more per call here):
  // - no inspector on SIGUSR1: Node's default opens a debugger on 127.0.0.1:9229 to whoever
  //   signals the process, and this root process runs in the host's network namespace;
  // - one V8 worker thread instead of four: a CNI call runs about 30 ms of JavaScript, and the
  //   three threads fewer made a meshed ADD 4-6 ms cheaper (docs/benchmarks.md).
  execArgv: ["--disable-sigusr1", "--v8-pool-size=1"],
  useCodeCache: true,
  useSnapshot: false,
  assets,
};
writeFileSync(join(work, "sea-config.json"), `${JSON.stringify(seaConfig, null, 2)}\n`);
execFileSync(nodeBinary, ["--experimental-sea-config", join(work, "sea-config.json")], {
  stdio: ["ignore", "ignore", "inherit"],
});

// --- inject ----------------------------------------------------------------------------------
const staged = join(dirname(output), `.waggle.${process.pid}.tmp`);
copyFileSync(nodeBinary, staged);
chmodSync(staged, 0o755);
// The symbol table and debug info are 18 MB of the 126 MB node binary and unused at run time
// (the dynamic symbols addons link against stay).
execFileSync("strip", ["--strip-all", staged]);
execFileSync(
  nodeBinary,
  [
    require.resolve("postject/dist/cli.js"),
    staged,
    "NODE_SEA_BLOB",
    blob,
    "--sentinel-fuse",
    seaFuse,
  ],
  { stdio: ["ignore", "ignore", "pipe"] },
);
// Copied, not renamed: postject writes the file in one write, and the kernel keeps such a file
// in the page cache in large folios that every run maps whole (VERSION's peak RSS 69 MiB
// instead of 50). A copy is cached like the installer's copy on a node (copy_file_range).
const copied = join(dirname(output), `.waggle.${process.pid}.copy`);
copyFileSync(staged, copied);
rmSync(staged);
renameSync(copied, output);
rmSync(work, { recursive: true, force: true });
log(
  `${relative(root, output)} ${(statSync(output).size / 1024 / 1024).toFixed(1)} MiB, runtime id ${buildInfo.runtimeId}, ${bpfObjects.length} BPF object(s): ${bpfObjects.map((b) => basename(b)).join(", ")}`,
);
