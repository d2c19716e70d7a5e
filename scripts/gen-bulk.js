#!/usr/bin/env node
// Writes N transactions (JSON Lines) for throughput runs, derived from the
// sample set. Plain Node.js, no npm dependencies; deterministic for a given
// sample file, N and seed.
//
//   node scripts/gen-bulk.js OUT [N] [--sample FILE] [--max-line BYTES] [--seed S]
//
//   OUT          output path ("-" for stdout)
//   N            number of transactions (default 100000)
//   --sample     template file (default examples/transactions/sample.jsonl)
//   --max-line   skip templates whose JSON is longer than this (default 4096,
//                which leaves out the multi-kilobyte deployments and the
//                ~190 KiB heavy-calldata case; use 0 for no limit)
//   --seed       variation seed (default 1)
//
// Transaction i uses template i mod T (T = templates kept), so the mix of
// rule-triggering and benign transactions matches the sample. Each copy gets a
// new hash and nonce; a new sender from a pool of 4096 synthetic addresses
// unless the template's sender also appears in its calldata (permit
// submitters, transferFrom owners: changing those would change what the rules
// see); and, for canonical non-zero hex values, a few wei more. Odd input
// (value without 0x, odd-length data, "0x" quantities) is kept verbatim. The
// "_meta" field of the sample is dropped.

'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

function usage(msg) {
  if (msg) console.error('gen-bulk: ' + msg);
  console.error('usage: node scripts/gen-bulk.js OUT [N] [--sample FILE] [--max-line BYTES] [--seed S]');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { out: null, n: 100000, sample: path.resolve(__dirname, '../examples/transactions/sample.jsonl'), maxLine: 4096, seed: 1 };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : usage(a + ' needs a value'));
    if (a === '--sample') o.sample = val();
    else if (a === '--max-line') o.maxLine = Number(val());
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '-h' || a === '--help') usage();
    else pos.push(a);
  }
  if (pos.length < 1 || pos.length > 2) usage();
  o.out = pos[0];
  if (pos.length === 2) o.n = Number(pos[1]);
  if (!Number.isSafeInteger(o.n) || o.n < 0) usage('N must be a non-negative integer');
  if (!Number.isSafeInteger(o.maxLine) || o.maxLine < 0) usage('--max-line must be a non-negative integer');
  if (!Number.isSafeInteger(o.seed)) usage('--seed must be an integer');
  return o;
}

function loadTemplates(file, maxLine) {
  const all = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
  const kept = [];
  for (const tx of all) {
    delete tx._meta;
    const text = JSON.stringify(tx);
    if (maxLine && text.length > maxLine) continue;
    const body = String(tx.input || tx.data || '').toLowerCase();
    const from = typeof tx.from === 'string' ? tx.from.toLowerCase().replace(/^0x/, '') : '';
    kept.push({ tx, keepFrom: from.length === 40 && body.includes(from) });
  }
  return { kept, total: all.length };
}

// 32 fresh bytes of hash per transaction, from one SHA-256 per 1024
// transactions expanded with a counter (fast and deterministic).
function hashMaker(seed) {
  let block = null;
  let blockNo = -1;
  return (i) => {
    const b = Math.floor(i / 1024);
    if (b !== blockNo) {
      block = crypto.createHash('sha256').update('txscan-bulk:' + seed + ':' + b).digest('hex');
      blockNo = b;
    }
    const suffix = (i % 1024).toString(16).padStart(8, '0') + (seed >>> 0).toString(16).padStart(8, '0');
    return '0x' + block.slice(0, 48) + suffix;
  };
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const { kept, total } = loadTemplates(o.sample, o.maxLine);
  if (kept.length === 0) usage('no templates left in ' + o.sample + ' (raise --max-line?)');

  const senders = [];
  for (let k = 0; k < 4096; k++) senders.push('0x' + crypto.createHash('sha256').update('txscan-bulk-sender:' + o.seed + ':' + k).digest('hex').slice(0, 40));
  const hashOf = hashMaker(o.seed);

  const fd = o.out === '-' ? 1 : fs.openSync(o.out, 'w');
  let chunk = [];
  let bytes = 0;
  const flush = () => {
    if (chunk.length === 0) return;
    const s = chunk.join('\n') + '\n';
    bytes += Buffer.byteLength(s);
    fs.writeSync(fd, s);
    chunk = [];
  };

  for (let i = 0; i < o.n; i++) {
    const t = kept[i % kept.length];
    const tx = Object.assign({}, t.tx);
    tx.hash = hashOf(i);
    tx.nonce = '0x' + i.toString(16);
    if (!t.keepFrom && 'from' in tx) tx.from = senders[(Math.imul(i, 0x9e3779b1) >>> 20) & 4095];
    if (typeof tx.value === 'string' && /^0x[1-9a-f][0-9a-f]*$/.test(tx.value)) {
      tx.value = '0x' + (BigInt(tx.value) + BigInt(i % 4096)).toString(16);
    }
    chunk.push(JSON.stringify(tx));
    if (chunk.length === 4096) flush();
  }
  flush();
  if (fd !== 1) fs.closeSync(fd);
  console.error(`gen-bulk: wrote ${o.n} transactions (${(bytes / 1048576).toFixed(1)} MiB) from ${kept.length} of ${total} templates in ${Date.now() - t0} ms`);
}

main();
