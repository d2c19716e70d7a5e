#!/usr/bin/env node
'use strict';
// node_scan.js - the same batch job as `txscan scan`, in Node.js: read JSON
// Lines, run every plugin of a folder on every transaction with its timeout,
// one worker thread per plugin, and write one report line per transaction in
// input order (the report format of txscan's docs: tx, line, verdict,
// complete, ms, findings, plugins).
//
//   node node_scan.js -p PLUGINS_DIR [--batch 256] [--inflight 4] [--batch-timeout] FILE > reports.jsonl
//
// Each worker runs runInContext({timeout}) per transaction in a context with
// microtaskMode 'afterEvaluate', so an async plugin's promise jobs are inside
// the deadline too, and validates findings itself (in parallel), answering with
// ready-made JSON fragments. The main thread parses each line once (input
// check and tx id), fans batches out to every worker, and stitches replies
// into report lines in order, with backpressure on stdout.
// --batch-timeout: one timeout per batch, re-run per transaction when it fires
// (only for plugins that stay synchronous; async ones keep per-tx timeouts).
// A plugin's restart_every (default 10000, as txscan's) gives it a fresh vm
// context after that many scans, module loaded and init run again, as a Node
// host would recycle; a batch never spans a restart.
// The run's summary goes to stderr as one JSON line.

const fs = require('fs');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const { Sandbox, readPlugin, listPlugins, opt, num } = require('./sandbox');

const SEVERITY = ['none', 'info', 'low', 'medium', 'high', 'critical'];
const RANK = { info: 1, low: 2, medium: 3, high: 4, critical: 5 };
const CODE = /^[A-Z][A-Z0-9_]{0,127}$/;
const ALLOWED = new Set(['code', 'severity', 'message', 'metadata']);

if (!isMainThread) worker();
else main().catch((e) => { console.error(e); process.exit(2); });

// ---- worker: one plugin -------------------------------------------------

function validate(id, json) {
  const r = JSON.parse(json);
  if (r === null) return { frag: '', top: 0 };
  const list = Array.isArray(r) ? r : typeof r === 'object' ? [r] : null;
  if (!list) throw new Error('scanTransaction returned a ' + typeof r + '; expected null, a finding or an array of findings');
  if (list.length > 1000) throw new Error(list.length + ' findings; at most 1000 per scan');
  let top = 0;
  const parts = [];
  for (let j = 0; j < list.length; j++) {
    const f = list[j], i = j + 1;  // numbered from 1, as txscan does
    if (f === null || typeof f !== 'object' || Array.isArray(f)) throw new Error('finding ' + i + ': must be an object');
    for (const k of Object.keys(f)) if (!ALLOWED.has(k)) throw new Error('finding ' + i + ': unknown field "' + k + '"');
    if (typeof f.code !== 'string' || !CODE.test(f.code)) throw new Error('finding ' + i + ': code must be UPPER_SNAKE_CASE');
    const rank = RANK[f.severity];
    if (!rank) throw new Error('finding ' + i + ' (' + f.code + '): severity must be one of info, low, medium, high, critical');
    if (typeof f.message !== 'string' || f.message.length > 4096) throw new Error('finding ' + i + ' (' + f.code + '): message must be a string');
    if (f.metadata !== undefined && (f.metadata === null || typeof f.metadata !== 'object' || Array.isArray(f.metadata))) {
      throw new Error('finding ' + i + ' (' + f.code + '): metadata must be an object');
    }
    const o = { plugin: id, code: f.code, severity: f.severity, message: f.message };
    if (f.metadata !== undefined) o.metadata = f.metadata;
    parts.push(JSON.stringify(o));
    if (rank > top) top = rank;
  }
  return { frag: parts.join(','), top };
}

function worker() {
  const plugin = readPlugin(workerData.dir);
  const sb = new Sandbox(plugin, { afterEvaluate: true });
  const timeout = plugin.timeoutMs;
  let batchOk = workerData.batchTimeout;
  // For each tx: [status, fragment-or-error, top severity rank, ms]
  function answer(tagged, ms) {
    if (tagged === 'T') return ['timeout', 'timed out after ' + timeout + ' ms', 0, ms];
    if (tagged[0] !== 'R') return ['error', tagged.slice(1), 0, ms];
    try {
      const v = validate(plugin.id, tagged.slice(1));
      return ['ok', v.frag, v.top, ms];
    } catch (e) {
      return ['error', e.message, 0, ms];
    }
  }
  // restart_every: a fresh context (module loaded, init run) after that many
  // scans, as txscan recycles its engine; a timeout's fresh context counts anew.
  const every = plugin.restartEvery;
  let scans = 0;
  function counted(n) {
    scans += n;
    if (every > 0 && scans >= every) {
      sb.fresh();
      scans = 0;
    }
  }
  // Up to n scans before the next restart is due.
  function room(n) {
    return every > 0 ? Math.min(n, every - scans) : n;
  }
  parentPort.on('message', (msg) => {
    const txs = msg.txs;
    const out = new Array(txs.length);
    let i = 0;
    while (batchOk && i < txs.length) {
      const part = txs.slice(i, i + room(txs.length - i));
      const t0 = process.hrtime.bigint();
      const res = sb.stepBatch(part, timeout);
      const each = Number(process.hrtime.bigint() - t0) / 1e6 / part.length;
      if (res === null) { // the batch timed out: its context is fresh; run it per transaction
        scans = 0;
        break;
      }
      if (res.includes('Easync results are not batched')) {
        batchOk = false; // an async plugin: per transaction from now on
        break;
      }
      for (let k = 0; k < part.length; k++) out[i + k] = answer(res[k], each);
      i += part.length;
      counted(part.length);
    }
    for (; i < txs.length; i++) {
      const t0 = process.hrtime.bigint();
      const r = sb.step(txs[i], timeout);
      out[i] = answer(r, Number(process.hrtime.bigint() - t0) / 1e6);
      if (r === 'T') scans = 0; // step made a fresh context
      else counted(1);
    }
    parentPort.postMessage({ id: msg.id, out });
  });
}

// ---- main: input, fan-out, ordered output -----------------------------------

function txId(v) {
  const id = typeof v.hash === 'string' ? v.hash : v.id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

function round3(ms) {
  return Math.round(ms * 1000) / 1000;
}

async function main() {
  const args = process.argv.slice(2);
  const root = opt(args, '-p', opt(args, '--plugins', 'examples/plugins'));
  const batchSize = num(args, '--batch', 256);
  const inflight = num(args, '--inflight', 4);
  const batchTimeout = args.includes('--batch-timeout');
  const file = args.filter((a, i) => !a.startsWith('-') && !(i > 0 && ['-p', '--plugins', '--batch', '--inflight'].includes(args[i - 1])))[0];
  if (!file) throw new Error('usage: node node_scan.js -p PLUGINS_DIR FILE');
  const t0 = process.hrtime.bigint();

  const dirs = listPlugins(root);
  const plugins = dirs.map(readPlugin);
  const workers = dirs.map((dir) => new Worker(__filename, { workerData: { dir, batchTimeout } }));
  const out = process.stdout;
  const totals = { inputs: 0, input_errors: 0, incomplete: 0, by_verdict: [0, 0, 0, 0, 0, 0] };

  // batch: {lines: [[lineNo, id|undefined-for-invalid, text|error]], replies: [], left, t0}
  const batches = new Map();
  let nextSend = 0;
  let nextWrite = 0;
  let waiter = null; // resolves when a batch has been written
  let drainWait = null;

  for (let w = 0; w < workers.length; w++) {
    workers[w].on('error', (e) => { console.error(e); process.exit(2); });
    workers[w].on('message', (msg) => {
      const b = batches.get(msg.id);
      b.replies[w] = msg.out;
      if (--b.left === 0) flush();
    });
  }

  function writeOut(s) {
    if (!out.write(s) && !drainWait) drainWait = new Promise((r) => out.once('drain', () => { drainWait = null; r(); }));
  }

  function flush() {
    while (batches.has(nextWrite) && batches.get(nextWrite).left === 0) {
      const b = batches.get(nextWrite);
      batches.delete(nextWrite);
      nextWrite++;
      const lines = [];
      let v = 0; // index into replies
      const now = Number(process.hrtime.bigint());
      for (const [lineNo, id, text, valid] of b.lines) {
        totals.inputs++;
        if (!valid) {
          totals.input_errors++;
          lines.push(JSON.stringify({ line: lineNo, error: text }));
          continue;
        }
        let top = 0;
        let complete = true;
        const findings = [];
        const ps = [];
        for (let p = 0; p < plugins.length; p++) {
          const [status, frag, rank, ms] = b.replies[p][v];
          if (status === 'ok') {
            if (frag) findings.push(frag);
            if (rank > top) top = rank;
            ps.push('{"id":' + JSON.stringify(plugins[p].id) + ',"status":"ok","ms":' + round3(ms) + '}');
          } else {
            complete = false;
            ps.push('{"id":' + JSON.stringify(plugins[p].id) + ',"status":"' + status + '","ms":' + round3(ms) +
              ',"error":' + JSON.stringify(frag) + '}');
          }
        }
        v++;
        if (!complete) totals.incomplete++;
        totals.by_verdict[top]++;
        lines.push('{"tx":' + JSON.stringify(id) + ',"line":' + lineNo + ',"verdict":"' + SEVERITY[top] +
          '","complete":' + complete + ',"ms":' + round3((now - b.t0) / 1e6) + ',"findings":[' + findings.join(',') +
          '],"plugins":[' + ps.join(',') + ']}');
      }
      writeOut(lines.join('\n') + '\n');
    }
    if (waiter) { const w = waiter; waiter = null; w(); }
  }

  async function send(lines) {
    while (nextSend - nextWrite >= inflight) await new Promise((r) => { waiter = r; });
    if (drainWait) await drainWait;
    const id = nextSend++;
    const texts = [];
    for (const l of lines) if (l[3]) texts.push(l[2]);
    const b = { lines, replies: new Array(workers.length), left: texts.length ? workers.length : 0, t0: Number(process.hrtime.bigint()) };
    batches.set(id, b);
    if (texts.length) for (const w of workers) w.postMessage({ id, txs: texts });
    else flush();
  }

  // Stream the file, split lines, check each once, batch.
  let lineNo = 0;
  let rest = '';
  let cur = [];
  const input = file === '-' ? process.stdin : fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  for await (const chunk of input) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop();
    for (const raw of parts) {
      lineNo++;
      const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (text.trim() === '') continue;
      cur.push(check(lineNo, text));
      if (cur.length === batchSize) { await send(cur); cur = []; }
    }
  }
  if (rest.trim() !== '') { lineNo++; cur.push(check(lineNo, rest)); }
  if (cur.length) await send(cur);
  while (nextWrite < nextSend) await new Promise((r) => { waiter = r; });
  if (drainWait) await drainWait;
  await Promise.all(workers.map((w) => w.terminate()));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stderr.write(JSON.stringify({
    bench: 'node_scan', plugins: plugins.length, inputs: totals.inputs, input_errors: totals.input_errors,
    incomplete: totals.incomplete, by_verdict: totals.by_verdict, seconds: secs, per_s: totals.inputs / secs,
  }) + '\n');
}

function check(lineNo, text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return [lineNo, null, 'invalid JSON: ' + e.message, false];
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    return [lineNo, null, 'transaction must be a JSON object', false];
  }
  return [lineNo, txId(v), text, true];
}
