#!/usr/bin/env node
// Quick check of txscan plugins under Node.js, without the C host.
//
//   node scripts/check-plugins-node.js [--sample FILE | --no-sample] [PLUGIN_DIR...]
//
// For each plugin folder (default: every folder in examples/plugins/):
//   1. validates plugin.json the way the host does (required and known keys,
//      id format, limits are positive integers);
//   2. loads the main file (bundled by esbuild first when txscan would bundle
//      it: ES module, TypeScript, imports) as CommonJS in a fresh vm context
//      that has ECMAScript, console and Node's own web globals (TextEncoder,
//      atob, timers, crypto...): no require, and string code generation
//      (eval, Function) and WebAssembly disabled;
//   3. runs init(ctx) once, then every case of fixtures.jsonl
//      ({"name", "tx", "expect": [codes]}) and compares the finding codes,
//      in order;
//   4. runs every transaction of the sample file (default
//      examples/transactions/sample.jsonl) and reports any throw, invalid
//      finding, or call slower than the plugin's timeout_ms.
// Exit status 0 when everything passed, 1 otherwise.
//
// This mirrors the contract in docs/plugins.md; it is not the host. Timeouts
// are measured, not enforced, and heap limits are not applied.

'use strict';

const fs = require('fs');
const path = require('path');
const vm = require('vm');

const ROOT = path.resolve(__dirname, '..');
const MANIFEST_KEYS = {
  id: 'string', version: 'string', main: 'string', timeout_ms: 'int', heap_limit_mb: 'int',
  heap_restart_mb: 'int', restart_every: 'int', instances: 'int', config: 'object',
  description: 'string'
};
const DEFAULTS = { timeout_ms: 50, heap_limit_mb: 64, heap_restart_mb: 32, restart_every: 10000, instances: 1 };
// The web globals txscan gives plugins (docs/plugins.md, "The environment"),
// taken from Node's own.
const WEB_GLOBALS = ['TextEncoder', 'TextDecoder', 'atob', 'btoa', 'structuredClone', 'queueMicrotask',
  'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'crypto', 'performance',
  'DOMException', 'Event', 'EventTarget', 'AbortController', 'AbortSignal'];

// A main that txscan bundles at load (ES module, TypeScript, imports), bundled
// the same way with esbuild; other mains are read as they are.
function mainSource(dir, main) {
  const file = path.join(dir, main);
  const source = fs.readFileSync(file, 'utf8');
  let typeModule = false;
  try { typeModule = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).type === 'module'; } catch {}
  const bundle = /\.(ts|mts|cts|tsx|mjs|jsx)$/.test(main) || (main.endsWith('.js') && typeModule) ||
    /^[ \t]*(import|export)[ {*]/m.test(source) ||
    (fs.existsSync(path.join(dir, 'node_modules')) && source.includes('require('));
  if (!bundle) return source;
  const os = require('os');
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'txs-node-check-')), 'out.js');
  require('child_process').execFileSync('esbuild', ['./' + main, '--bundle', '--format=cjs',
    '--platform=browser', '--log-level=error', '--outfile=' + out], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  const code = fs.readFileSync(out, 'utf8');
  fs.rmSync(path.dirname(out), { recursive: true });
  return code;
}
const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];
const FINDING_KEYS = ['code', 'severity', 'message', 'metadata'];

function parseArgs(argv) {
  const opts = { sample: path.join(ROOT, 'examples/transactions/sample.jsonl'), dirs: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--sample') opts.sample = argv[++i];
    else if (argv[i] === '--no-sample') opts.sample = null;
    else if (argv[i] === '-h' || argv[i] === '--help') {
      console.log('usage: check-plugins-node.js [--sample FILE | --no-sample] [PLUGIN_DIR...]');
      process.exit(0);
    } else opts.dirs.push(argv[i]);
  }
  if (opts.dirs.length === 0) {
    const base = path.join(ROOT, 'examples/plugins');
    opts.dirs = fs.readdirSync(base).sort().map((d) => path.join(base, d))
      .filter((d) => fs.existsSync(path.join(d, 'plugin.json')));
  }
  return opts;
}

function readManifest(dir) {
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'plugin.json'), 'utf8'));
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw new Error('plugin.json: not an object');
  for (const k of Object.keys(m)) {
    const t = MANIFEST_KEYS[k];
    if (!t) throw new Error(`plugin.json: unknown key "${k}"`);
    const v = m[k];
    if (t === 'int' && !(Number.isInteger(v) && v > 0)) throw new Error(`plugin.json: "${k}" must be a positive integer`);
    if (t === 'object' && (v === null || typeof v !== 'object' || Array.isArray(v))) throw new Error(`plugin.json: "${k}" must be an object`);
    if (t === 'string' && (typeof v !== 'string' || v === '')) throw new Error(`plugin.json: "${k}" must be a non-empty string`);
  }
  for (const k of ['id', 'version', 'main']) if (!(k in m)) throw new Error(`plugin.json: missing "${k}"`);
  if (!/^[a-z0-9-]{1,64}$/.test(m.id)) throw new Error('plugin.json: "id" must match [a-z0-9-]{1,64}');
  return Object.assign({}, DEFAULTS, { config: {} }, m);
}

// A fresh realm per plugin, shaped like the host's: ECMAScript + console.
function loadPlugin(dir, manifest, logs) {
  const pluginConsole = {};
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    pluginConsole[level] = (...args) => logs.push(`[${manifest.id}] ${level}: ${args.map(String).join(' ')}`);
  }
  const sandbox = { console: pluginConsole };
  for (const g of WEB_GLOBALS) sandbox[g] = globalThis[g];
  const context = vm.createContext(sandbox, {
    name: manifest.id,
    codeGeneration: { strings: false, wasm: false }
  });
  vm.runInContext('delete globalThis.WebAssembly;', context);
  const file = path.join(dir, manifest.main);
  const source = mainSource(dir, manifest.main);
  const wrapper = new vm.Script(`(function (module, exports) {${source}\n})`, { filename: file });
  const module = vm.runInContext('({ exports: {} })', context);
  wrapper.runInContext(context)(module, module.exports);
  let mod = module.exports;
  if (mod === null || (typeof mod !== 'object' && typeof mod !== 'function')) throw new Error('module.exports must be an object');
  // ES module output of bundlers: `export default {...}` lands on .default.
  if (mod.scanTransaction === undefined && mod.default && typeof mod.default.scanTransaction === 'function') mod = mod.default;
  if (typeof mod.scanTransaction !== 'function') throw new Error('module.exports.scanTransaction is not a function');
  if (mod.init !== undefined && typeof mod.init !== 'function') throw new Error('module.exports.init is not a function');
  // Values handed to the plugin are created inside its realm, from JSON, as
  // the host does.
  const fromJson = vm.runInContext('(function (s) { return JSON.parse(s); })', context);
  const ctxJson = JSON.stringify({ plugin: { id: manifest.id, version: manifest.version }, config: manifest.config });
  return { mod, fromJson, ctx: () => fromJson(ctxJson) };
}

// Normalise a result into a list of findings, or throw naming the bad field.
function checkResult(res) {
  if (res === null || res === undefined) return [];
  const list = Array.isArray(res) ? res : [res];
  return list.map((f, i) => {
    const at = Array.isArray(res) ? `findings[${i}]` : 'finding';
    if (!f || typeof f !== 'object' || Array.isArray(f)) throw new Error(`${at}: not an object`);
    for (const k of Object.keys(f)) if (!FINDING_KEYS.includes(k)) throw new Error(`${at}.${k}: unknown field`);
    if (typeof f.code !== 'string' || !/^[A-Z][A-Z0-9_]{0,63}$/.test(f.code)) throw new Error(`${at}.code: must be UPPER_SNAKE`);
    if (!SEVERITIES.includes(f.severity)) throw new Error(`${at}.severity: must be one of ${SEVERITIES.join('|')}`);
    if (typeof f.message !== 'string' || f.message === '') throw new Error(`${at}.message: must be a non-empty string`);
    if (f.metadata !== undefined && (f.metadata === null || typeof f.metadata !== 'object' || Array.isArray(f.metadata))) {
      throw new Error(`${at}.metadata: must be an object`);
    }
    JSON.stringify(f); // throws on BigInt and cycles, as copying out would
    return f;
  });
}

async function scan(plugin, txText) {
  const t0 = process.hrtime.bigint();
  const res = await plugin.mod.scanTransaction(plugin.fromJson(txText), plugin.ctx());
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { findings: checkResult(res), ms };
}

function readJsonl(file) {
  return fs.readFileSync(file, 'utf8').split('\n')
    .map((text, i) => ({ text, line: i + 1 }))
    .filter((l) => l.text.trim() !== '');
}

async function checkPlugin(dir, opts) {
  const name = path.basename(dir);
  const problems = [];
  const logs = [];
  let manifest;
  let plugin;
  try {
    manifest = readManifest(dir);
    if (manifest.id !== name) problems.push(`id "${manifest.id}" differs from folder name "${name}"`);
    plugin = loadPlugin(dir, manifest, logs);
    if (typeof plugin.mod.init === 'function') await plugin.mod.init(plugin.ctx());
  } catch (e) {
    return { name, problems: [`load: ${e.stack || e}`], summary: '' };
  }

  let passed = 0;
  const fixtures = path.join(dir, 'fixtures.jsonl');
  const cases = fs.existsSync(fixtures) ? readJsonl(fixtures) : [];
  if (cases.length === 0) problems.push('no fixtures.jsonl cases');
  for (const { text, line } of cases) {
    let fx;
    try {
      fx = JSON.parse(text);
    } catch (e) {
      problems.push(`fixtures.jsonl:${line}: invalid JSON: ${e.message}`);
      continue;
    }
    const label = `fixtures.jsonl:${line} "${fx.name}"`;
    try {
      const { findings, ms } = await scan(plugin, JSON.stringify(fx.tx));
      const got = findings.map((f) => f.code);
      if (JSON.stringify(got) !== JSON.stringify(fx.expect)) {
        problems.push(`${label}: expected ${JSON.stringify(fx.expect)}, got ${JSON.stringify(got)}`);
      } else if (ms > manifest.timeout_ms) {
        problems.push(`${label}: took ${ms.toFixed(2)} ms > timeout_ms ${manifest.timeout_ms}`);
      } else passed++;
    } catch (e) {
      problems.push(`${label}: threw ${e.stack || e}`);
    }
  }

  let sampleNote = '';
  if (opts.sample) {
    const counts = {};
    let worst = 0;
    const lines = readJsonl(opts.sample);
    for (const { text, line } of lines) {
      try {
        const { findings, ms } = await scan(plugin, text);
        worst = Math.max(worst, ms);
        for (const f of findings) counts[f.code] = (counts[f.code] || 0) + 1;
      } catch (e) {
        problems.push(`${path.basename(opts.sample)}:${line}: ${e.stack || e}`);
      }
    }
    if (worst > manifest.timeout_ms) problems.push(`sample: slowest call ${worst.toFixed(2)} ms > timeout_ms ${manifest.timeout_ms}`);
    const hist = Object.keys(counts).sort().map((c) => `${c}=${counts[c]}`).join(' ') || 'no findings';
    sampleNote = `; sample: ${lines.length} txs, ${hist}, slowest ${worst.toFixed(2)} ms`;
  }
  if (logs.length > 0) sampleNote += `; ${logs.length} console lines`;
  return { name, problems, summary: `${passed}/${cases.length} fixtures${sampleNote}` };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.sample && !fs.existsSync(opts.sample)) {
    console.error(`sample file ${opts.sample} not found (use --no-sample)`);
    process.exit(2);
  }
  let failed = 0;
  for (const dir of opts.dirs) {
    const r = await checkPlugin(path.resolve(dir), opts);
    console.log(`${r.problems.length ? 'FAIL' : 'ok  '} ${r.name}: ${r.summary}`);
    for (const p of r.problems) console.log(`     ${p}`);
    if (r.problems.length) failed++;
  }
  console.log(failed ? `${failed} plugin(s) failed` : `all ${opts.dirs.length} plugins passed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e.stack || e);
  process.exit(2);
});
