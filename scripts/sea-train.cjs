// Build-time only: runs one chunk of dist/waggle's JavaScript under the node the binary is made
// from, through the same wrapper, once per flow, then writes V8's code cache of the chunk. A
// cache taken after running holds every function that ran compiled, so the binary starts those
// paths without compiling. A flow that fails fails the build: this is also a smoke test.
//
// usage: node scripts/sea-train.cjs <work dir> <chunk> '<flows JSON>' ['<assets JSON>']
//   assets: { key: file } the chunk reads through node:sea (answered here from the files)
//   flows: [{ "argv": [...], "env": {...}, "stdin": "...", "waits": true }]
//   (stdin: what the flow reads from fd 0, else this process's stdin; waits: until
//   process.exitCode is set)
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const chunk = require("./sea-chunk.cjs");

const [dir, name, flowsJson, assetsJson = "{}"] = process.argv.slice(2);
const flows = JSON.parse(flowsJson);
const assets = JSON.parse(assetsJson);

/** node:sea as the binary has it, its assets read from the files they are built from. */
const sea = {
  isSea: () => true,
  getRawAsset: (key) => {
    if (!(key in assets)) throw new Error(`sea-train: no asset ${key}`);
    const bytes = fs.readFileSync(assets[key]);
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  },
  getAsset: (key, encoding) => {
    const raw = sea.getRawAsset(key);
    return encoding === undefined ? raw : Buffer.from(raw).toString(encoding);
  },
};
const chunkRequire = (id) => (id === "node:sea" || id === "sea" ? sea : require(id));
const scripts = new Map();

function compile(chunkName) {
  let script = scripts.get(chunkName);
  if (script === undefined) {
    const source = chunk.script(fs.readFileSync(path.join(dir, chunk.codeKey(chunkName))));
    script = new vm.Script(source, { filename: chunk.filenameOf(chunkName) });
    scripts.set(chunkName, script);
  }
  return script;
}

function run(chunkName) {
  const m = { exports: {} };
  compile(chunkName).runInThisContext()(m.exports, chunkRequire, m, __filename, __dirname);
  return m.exports;
}

globalThis[Symbol.for(chunk.loaderSymbolName)] = run;
globalThis[Symbol.for(chunk.statesSymbolName)] = {};

const realSetTimeout = setTimeout;

async function until(done) {
  const deadline = Date.now() + 30_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("flow did not finish in 30 s");
    await new Promise((resolve) => realSetTimeout(resolve, 5));
  }
}

// Timers a flow leaves (the command line's forced exit after 2 s) die with it, as they would
// with its process: one firing during a later flow would end that flow early.
let flowTimers = [];
globalThis.setTimeout = (...args) => {
  const timer = realSetTimeout(...args);
  flowTimers.push(timer);
  return timer;
};

// A flow's stdin: the chunk reads fd 0 with fs.readFileSync (app/main.ts), answered here.
const readFileSync = fs.readFileSync;
let flowStdin;
fs.readFileSync = (file, ...rest) =>
  file === 0 && flowStdin !== undefined ? Buffer.from(flowStdin) : readFileSync(file, ...rest);

// The CNI path ends with process.exit (app/main.ts): in a flow it only sets the exit code.
const exit = process.exit;

async function train() {
  process.exit = (code) => {
    process.exitCode = code ?? 0;
  };
  const baseEnv = { ...process.env };
  for (const flow of flows) {
    process.argv = [process.argv[0], "waggle", ...(flow.argv ?? [])];
    process.env = { ...baseEnv, ...(flow.env ?? {}) };
    flowStdin = flow.stdin;
    process.exitCode = undefined;
    run(name);
    if (flow.waits) await until(() => process.exitCode !== undefined);
    for (const timer of flowTimers) clearTimeout(timer);
    flowTimers = [];
    if (process.exitCode)
      throw new Error(`flow ${JSON.stringify(flow)} exited ${process.exitCode}`);
  }
  fs.writeFileSync(path.join(dir, chunk.cacheKey(name)), compile(name).createCachedData());
}

train().then(
  () => exit(0),
  (err) => {
    process.stderr.write(`sea-train ${name}: ${err.stack ?? err}\n`);
    exit(1);
  },
);
