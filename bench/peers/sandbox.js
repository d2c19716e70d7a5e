'use strict';
// sandbox.js - how the Node.js peers load a txscan plugin: the same folder
// (plugin.json + CommonJS main file), in a vm context with the same
// restrictions txscan applies (no eval / new Function / WebAssembly code
// generation, a console that goes nowhere), the module/exports shim, and
// init(ctx) once per context. The plugin's code is compiled once per process
// (vm.Script) and re-run in every new context, which is how a careful Node
// host makes "restart = fresh context" cheap.

const fs = require('fs');
const path = require('path');
const vm = require('vm');

function readPlugin(dir) {
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'plugin.json'), 'utf8'));
  const filename = path.resolve(dir, m.main);
  return {
    id: m.id,
    version: m.version,
    config: m.config || {},
    timeoutMs: m.timeout_ms || 50,
    // scans per context before a fresh one, as txscan's restart_every (0: never)
    restartEvery: m.restart_every === undefined ? 10000 : m.restart_every,
    filename,
    source: fs.readFileSync(filename, 'utf8'),
  };
}

// Lists plugin folders under root (or root itself), sorted by folder name.
function listPlugins(root) {
  if (fs.existsSync(path.join(root, 'plugin.json'))) return [root];
  return fs.readdirSync(root).sort()
    .map((d) => path.join(root, d))
    .filter((d) => fs.existsSync(path.join(d, 'plugin.json')));
}

// Runs inside the context. step(text) answers with one tagged string, as
// txscan's JavaScript harness once did: 'R' + JSON (settled), 'E' + message, 'P' (a promise
// still pending: read settled() after the microtasks have run).
const BOOT_SRC = `(function (wrapper, ctxJson) {
  'use strict';
  const parse = JSON.parse, stringify = JSON.stringify;
  const module = { exports: {} };
  wrapper.call(globalThis, module, module.exports);
  let m = module.exports;
  if (typeof m.scanTransaction !== 'function' && m.default && typeof m.default.scanTransaction === 'function') m = m.default;
  if (typeof m.scanTransaction !== 'function') throw new TypeError('module.exports.scanTransaction is not a function');
  const ctx = parse(ctxJson);
  let out = 'P';
  function ser(v) {
    try { const s = stringify(v === undefined ? null : v); return 'R' + (s === undefined ? 'null' : s); }
    catch (e) { return 'Eresult cannot be serialised as JSON: ' + e; }
  }
  function fmt(e) { return 'E' + (e && e.stack ? String(e.stack) : String(e)); }
  function settle(r) {
    if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') {
      out = 'P';
      Promise.resolve(r).then((v) => { out = ser(v); }, (e) => { out = fmt(e); });
      return 'P';
    }
    return ser(r);
  }
  return {
    init: typeof m.init === 'function' ? function () { return settle(m.init(ctx)); } : null,
    // one scan, from outside the context without a timeout
    run: function (text) { return settle(m.scanTransaction(parse(text), ctx)); },
    // the same from a script run with a timeout: reads globalThis.__tx
    step: function () { try { return settle(m.scanTransaction(parse(globalThis.__tx), ctx)); } catch (e) { return fmt(e); } },
    stepBatch: function () {
      const txs = globalThis.__txs, res = new Array(txs.length);
      for (let i = 0; i < txs.length; i++) {
        try { res[i] = settle(m.scanTransaction(parse(txs[i]), ctx)); } catch (e) { res[i] = fmt(e); }
        if (res[i] === 'P') res[i] = 'Easync results are not batched';
      }
      return res;
    },
    settled: function () { const r = out; out = 'P'; return r; },
  };
})`;

const quietConsole = Object.freeze({
  log() {}, info() {}, warn() {}, error() {}, debug() {}, trace() {},
});

class Sandbox {
  // opts.afterEvaluate: microtasks run inside runInContext (and its timeout)
  constructor(plugin, opts = {}) {
    this.plugin = plugin;
    this.afterEvaluate = !!opts.afterEvaluate;
    this.script = new vm.Script('(function (module, exports) {' + plugin.source + '\n})', {
      filename: plugin.filename,
    });
    this.boot = new vm.Script(BOOT_SRC, { filename: 'peer:boot' });
    this.stepScript = new vm.Script('__h.step()', { filename: 'peer:step' });
    this.batchScript = new vm.Script('__h.stepBatch()', { filename: 'peer:batch' });
    this.ctxJson = JSON.stringify({ plugin: { id: plugin.id, version: plugin.version }, config: plugin.config });
    this.fresh();
  }

  // A new context with the module loaded and init(ctx) run; the old one is
  // dropped (the GC reclaims it).
  fresh() {
    const sandbox = { console: quietConsole };
    const ctx = vm.createContext(sandbox, {
      codeGeneration: { strings: false, wasm: false },
      microtaskMode: this.afterEvaluate ? 'afterEvaluate' : undefined,
    });
    const wrapper = this.script.runInContext(ctx);
    const h = this.boot.runInContext(ctx)(wrapper, this.ctxJson);
    sandbox.__h = h;
    if (h.init) {
      const r = vm.runInContext('__h.init()', ctx, { timeout: 1000 });
      const settled = r === 'P' ? h.settled() : r;
      if (settled[0] !== 'R') throw new Error(this.plugin.id + ': init failed: ' + settled.slice(1));
    }
    this.ctx = ctx;
    this.sandbox = sandbox;
    this.h = h;
  }

  // No timeout: a plain call into the context (sync plugins only).
  run(text) {
    return this.h.run(text);
  }

  // One scan under a timeout. Returns the tagged string; 'T' on a timeout
  // (the context is then replaced, as txscan replaces its engine).
  step(text, timeoutMs) {
    this.sandbox.__tx = text;
    let r;
    try {
      r = this.stepScript.runInContext(this.ctx, { timeout: timeoutMs });
    } catch (e) {
      if (e && e.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
        this.fresh();
        return 'T';
      }
      return 'E' + String(e && e.stack ? e.stack : e);
    }
    if (r === 'P') {
      r = this.h.settled();
      if (r === 'P') r = 'Epromise did not settle';
    }
    return r;
  }

  // Several scans under one timeout; null when it fired (context replaced).
  stepBatch(texts, timeoutMs) {
    this.sandbox.__txs = texts;
    try {
      return this.batchScript.runInContext(this.ctx, { timeout: timeoutMs });
    } catch (e) {
      if (e && e.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
        this.fresh();
        return null;
      }
      throw e;
    }
  }
}

// Command-line helpers shared by the peers.
function opt(args, name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
function num(args, name, fallback) {
  const v = opt(args, name, null);
  return v === null ? fallback : Number(v);
}
function readLines(file) {
  return fs.readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.length > 0);
}
function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}
function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

module.exports = { readPlugin, listPlugins, Sandbox, opt, num, readLines, percentile, emit };
