// Package entry: the compiled API lives in the repository's out/ (tsc), outside this package.
// A package.json "main" of "../out/..." would be resolved against node_modules/ebpf-napi (the
// workspace symlink) and miss; a require from this file resolves against its real path.
module.exports = require("../out/ebpf-napi/lib/index.js");
