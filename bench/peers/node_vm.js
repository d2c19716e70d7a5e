#!/usr/bin/env node
'use strict';
// node_vm.js - Node.js peer on one thread: the plugin in a vm context.
//
//   node node_vm.js call    PLUGIN_DIR TX.jsonl [--seconds S] [--warmup N]
//   node node_vm.js timeout PLUGIN_DIR TX.jsonl [--seconds S] [--after-evaluate]
//   node node_vm.js restart PLUGIN_DIR [--n N]
//
// call:    no timeout: a direct call into the context per transaction
//          (JSON.parse, scanTransaction, JSON.stringify, as raw_jsc does).
// timeout: the only way Node bounds a synchronous scan: runInContext with
//          the `timeout` option per transaction (plugin.json's timeout_ms).
//          --after-evaluate: microtaskMode 'afterEvaluate', so promise jobs
//          are inside the timeout too (what txscan guarantees).
// restart: a new context + load the (already compiled) code + init(ctx);
//          the old context is dropped for the GC.
// Prints one JSON line like the C benchmarks.

const { Sandbox, readPlugin, opt, num, readLines, percentile, emit } = require('./sandbox');

function main() {
  const args = process.argv.slice(2);
  const mode = args[0];
  const plugin = readPlugin(args[1]);
  if (mode === 'restart') return restart(plugin, args);
  const txs = readLines(args[2]);
  const seconds = num(args, '--seconds', 3);
  const warmup = num(args, '--warmup', 20000);
  const afterEvaluate = args.includes('--after-evaluate');
  const sb = new Sandbox(plugin, { afterEvaluate });
  const timeout = plugin.timeoutMs;
  let k = 0;
  let last = '';
  const one = mode === 'call'
    ? () => { last = sb.run(txs[k]); k = k + 1 === txs.length ? 0 : k + 1; }
    : () => { last = sb.step(txs[k], timeout); k = k + 1 === txs.length ? 0 : k + 1; };
  if (mode !== 'call' && mode !== 'timeout') throw new Error('unknown mode ' + mode);
  for (let i = 0; i < warmup; i++) one();
  if (last[0] !== 'R') throw new Error('scan failed: ' + last);
  const limit = seconds * 1e9;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let n = 0;
  let t = 0;
  while (t < limit) {
    for (let j = 0; j < 64; j++) one();
    n += 64;
    t = Number(process.hrtime.bigint() - t0);
  }
  const cpu = process.cpuUsage(c0);
  if (last[0] !== 'R') throw new Error('scan failed: ' + last);
  emit({
    bench: 'node_vm',
    mode: mode + (afterEvaluate ? '_after_evaluate' : ''),
    plugin: plugin.id,
    node: process.version,
    calls: n,
    seconds: t / 1e9,
    per_s: n / (t / 1e9),
    us_per_call: t / 1e3 / n,
    cpu_us_per_call: (cpu.user + cpu.system) / n,
    result_bytes: last.length - 1,
  });
}

function restart(plugin, args) {
  const n = num(args, '--n', 500);
  let t0 = process.hrtime.bigint();
  const sb = new Sandbox(plugin);
  const firstMs = Number(process.hrtime.bigint() - t0) / 1e6;
  for (let i = 0; i < Math.min(20, n); i++) sb.fresh();
  const ms = new Array(n);
  for (let i = 0; i < n; i++) {
    t0 = process.hrtime.bigint();
    sb.fresh();
    ms[i] = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  const sum = ms.reduce((a, b) => a + b, 0);
  ms.sort((a, b) => a - b);
  emit({
    bench: 'node_vm',
    mode: 'restart',
    plugin: plugin.id,
    node: process.version,
    n,
    first_ms: firstMs,
    mean_ms: sum / n,
    p50_ms: percentile(ms, 50),
    p99_ms: percentile(ms, 99),
    max_ms: ms[n - 1],
    rss_kb: Math.round(process.memoryUsage().rss / 1024),
  });
}

main();
