// The single executable's entry point (bundled into the SEA by scripts/build-sea.mjs): compiles
// each JavaScript chunk from its SEA asset with the code cache made at build time, publishes the
// loader for the chunks loaded on first require, and runs the main chunk.
"use strict";
const vm = require("node:vm");
const sea = require("node:sea");
const chunk = require("./sea-chunk.cjs");

// The phase timer (base/phases.ts), started here so the chunks' compile times are in it.
const phases = process.env.WAGGLE_PHASES === "1" ? [["boot", performance.now()]] : undefined;
if (phases) globalThis[Symbol.for(chunk.phasesSymbolName)] = phases;

const states = {};
globalThis[Symbol.for(chunk.statesSymbolName)] = states;

function loadChunk(name) {
  // The raw assets: views of the executable's own mapping, not copies (the code cache is only
  // read; the script is copied once, into the string V8 compiles).
  const script = new vm.Script(chunk.script(sea.getRawAsset(chunk.codeKey(name))), {
    filename: chunk.filenameOf(name),
    cachedData: Buffer.from(sea.getRawAsset(chunk.cacheKey(name))),
  });
  states[name] = script.cachedDataRejected ? "code cache rejected" : "code cache accepted";
  phases?.push([`chunk ${name} compiled`, performance.now()]);
  const m = { exports: {} };
  script.runInThisContext()(m.exports, require, m, __filename, __dirname);
  phases?.push([`chunk ${name} ran`, performance.now()]);
  return m.exports;
}

globalThis[Symbol.for(chunk.loaderSymbolName)] = loadChunk;
loadChunk("main");
