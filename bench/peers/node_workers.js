#!/usr/bin/env node
'use strict';
// node_workers.js - Node.js peer for throughput: a worker_threads pool (2 by
// default, one per core here), each worker holding the plugin in a vm context
// and running every transaction with a vm timeout. The main thread sends
// transactions in batches (one message per batch: message passing costs far
// more than a small scan) and keeps two batches queued per worker so none
// idles while the main thread handles a reply.
//
//   node node_workers.js PLUGIN_DIR TX.jsonl [--workers 2] [--batch 64]
//                        [--inflight 2] [--limit N] [--batch-timeout]
//
// Default: one runInContext({timeout}) per transaction, the same guarantee
// txscan gives (each scan has its own deadline).
// --batch-timeout: one runInContext per batch with the plugin's timeout for
// the whole batch; when it fires, the batch is re-run one transaction at a
// time with per-transaction timeouts (same outcome, far fewer watchdogs).
// Prints one JSON line: transactions/s over the file (after a warm-up).

const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const { Sandbox, readPlugin, num, readLines, emit } = require('./sandbox');

if (!isMainThread) {
  const plugin = readPlugin(workerData.dir);
  const sb = new Sandbox(plugin);
  const timeout = plugin.timeoutMs;
  const batchTimeout = workerData.batchTimeout;
  parentPort.on('message', (msg) => {
    const txs = msg.txs;
    let out = batchTimeout ? sb.stepBatch(txs, timeout) : null;
    let failed = 0;
    if (out === null) {
      out = new Array(txs.length);
      for (let i = 0; i < txs.length; i++) out[i] = sb.step(txs[i], timeout);
    }
    for (let i = 0; i < out.length; i++) if (out[i][0] !== 'R') failed++;
    parentPort.postMessage({ id: msg.id, out, failed });
  });
} else {
  main();
}

function main() {
  const args = process.argv.slice(2);
  const dir = args[0];
  let txs = readLines(args[1]);
  const limit = num(args, '--limit', 0);
  if (limit > 0) txs = txs.slice(0, limit);
  const nWorkers = num(args, '--workers', 2);
  const batch = num(args, '--batch', 64);
  const inflight = num(args, '--inflight', 2);
  const batchTimeout = args.includes('--batch-timeout');
  const plugin = readPlugin(dir);

  const workers = [];
  let ready = 0;
  for (let w = 0; w < nWorkers; w++) {
    const worker = new Worker(__filename, { workerData: { dir, batchTimeout } });
    worker.pending = 0;
    worker.on('error', (e) => { console.error(e); process.exit(1); });
    workers.push(worker);
  }

  // Runs txs[from..to) through the pool; resolves with the failure count.
  function run(from, to) {
    return new Promise((resolve) => {
      let next = from;
      let done = from;
      let failed = 0;
      let seq = 0;
      function feed(worker) {
        while (worker.pending < inflight && next < to) {
          const end = Math.min(to, next + batch);
          worker.postMessage({ id: seq++, txs: txs.slice(next, end) });
          worker.pending++;
          next = end;
        }
      }
      for (const worker of workers) {
        worker.removeAllListeners('message');
        worker.on('message', (msg) => {
          worker.pending--;
          done += msg.out.length;
          failed += msg.failed;
          if (done === to) resolve(failed);
          else feed(worker);
        });
        feed(worker);
      }
      if (from === to) resolve(0);
    });
  }

  (async () => {
    const warm = Math.min(txs.length, 4000);
    await run(0, warm);
    ready = txs.length;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const failed = await run(0, txs.length);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(c0);
    for (const w of workers) await w.terminate();
    emit({
      bench: 'node_workers',
      mode: batchTimeout ? 'batch_timeout' : 'per_tx_timeout',
      plugin: plugin.id,
      node: process.version,
      workers: nWorkers,
      batch,
      txs: ready,
      seconds: secs,
      per_s: ready / secs,
      cpu_us_per_tx: (cpu.user + cpu.system) / ready,
      failed,
    });
  })();
}
