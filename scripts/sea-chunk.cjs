// How dist/waggle's JavaScript chunks are compiled, shared by the build (scripts/build-sea.mjs),
// its training runs (scripts/sea-train.cjs) and the binary's boot script the build writes: a V8
// code cache only fits a script whose source and file name are exactly the same.
"use strict";

/** A chunk runs as the body of this function (the CommonJS module wrapper's parameters). */
const head = "(function (exports, require, module, __filename, __dirname) {";
const tail = "\n})";

module.exports = {
  /**
   * The script a chunk's asset holds: its code, wrapped, checked to be ASCII (esbuild escapes
   * anything else), so that the binary reads it as Latin-1, byte for byte, with no decoder.
   */
  wrap(source) {
    const at = source.search(/[\u0080-\uffff]/);
    if (at !== -1) throw new Error(`chunk code is not ASCII at offset ${at}`);
    return head + source + tail;
  },
  /** A chunk's script from its asset's bytes (ASCII: see wrap). */
  script: (bytes) => Buffer.from(bytes).toString("latin1"),
  /** The file name stack traces show for a chunk. */
  filenameOf: (name) => `waggle:chunks/${name}.cjs`,
  /** SEA asset keys of a chunk's code and of its code cache. */
  codeKey: (name) => `chunks/${name}.cjs`,
  cacheKey: (name) => `chunks/${name}.cache`,
  /** Global the loader is published under, for the stand-ins of lazily loaded modules. */
  loaderSymbolName: "waggle.loadChunk",
  /** Global where each loaded chunk's code cache verdict is recorded (base/build-info.ts). */
  statesSymbolName: "waggle.chunks",
  /** Global holding the phase timer's marks when WAGGLE_PHASES=1 (base/phases.ts). */
  phasesSymbolName: "waggle.phases",
};
