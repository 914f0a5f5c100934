// index.js - the no-op function of the benchmarks for the nodejs runtime (and
// for the Node-based Lambda emulators measured next to wisp): CommonJS, async.
exports.handler = async () => ({});
