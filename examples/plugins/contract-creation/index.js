// contract-creation: reports contract deployments, and (crudely) initcode
// that contains opcodes drainers and upgradeable traps like to use.
//
// A transaction is a deployment when tx.to is null, missing, "" or "0x".
// Forta's SDK marks deployments with the zero address instead, so
// config.zeroAddressIsCreation (default true) treats to == 0x000...000 the
// same way.
//
// Findings (exactly one per deployment):
//   CONTRACT_CREATION (info)        a deployment.
//   SUSPICIOUS_INITCODE (medium)    the initcode contains one of
//       config.suspiciousOpcodes (default SELFDESTRUCT 0xff, DELEGATECALL
//       0xf4, CALLCODE 0xf2).
//
// The opcode scan is a heuristic, not a disassembler: it walks the bytes as
// EVM code and skips PUSH1..PUSH32 immediates and Solidity's CBOR metadata
// trailer, but it cannot tell code from data (constructor arguments, immutable
// blobs), and plenty of honest contracts (proxies, factories) use
// DELEGATECALL. At most config.maxScanBytes bytes are scanned.

'use strict';

function hexBody(v) {
  if (typeof v !== 'string') return '';
  var s = v.trim().toLowerCase();
  if (s.slice(0, 2) === '0x') s = s.slice(2);
  if (!/^[0-9a-f]*$/.test(s)) return '';
  return s.length % 2 ? '0' + s : s;
}

function calldata(tx) {
  var input = hexBody(tx.input);
  return input !== '' ? input : hexBody(tx.data);
}

var OPCODES = { SELFDESTRUCT: 0xff, DELEGATECALL: 0xf4, CALLCODE: 0xf2, CREATE2: 0xf5, CREATE: 0xf0 };

// Solidity metadata (CBOR map) prefixes: bzzr0, bzzr1, ipfs. The hash that
// follows is data, not code.
var METADATA = [
  { prefix: 'a165627a7a72305820', hashBytes: 32 },
  { prefix: 'a265627a7a72315820', hashBytes: 32 },
  { prefix: 'a264697066735822', hashBytes: 34 }
];

function metadataSkip(hex, i) {
  for (var k = 0; k < METADATA.length; k++) {
    var m = METADATA[k];
    if (hex.startsWith(m.prefix, i)) return m.prefix.length / 2 + m.hashBytes;
  }
  return 0;
}

// Names of the watched opcodes found in the code, in first-seen order.
function scanOpcodes(hex, watched, maxBytes) {
  var found = [];
  var n = Math.min(hex.length / 2, maxBytes);
  for (var pc = 0; pc < n; pc++) {
    var op = parseInt(hex.substr(2 * pc, 2), 16);
    if (op >= 0x60 && op <= 0x7f) { pc += op - 0x5f; continue; } // PUSHn data
    if (op === 0xa1 || op === 0xa2) { // LOG1/LOG2, or the start of a CBOR map
      var skip = metadataSkip(hex, 2 * pc);
      if (skip) { pc += skip - 1; continue; }
    }
    var name = watched.get(op);
    if (name && found.indexOf(name) < 0) found.push(name);
  }
  return found;
}

function isCreation(tx, zeroIsCreation) {
  if (!('to' in tx) || tx.to === null || tx.to === '') return true;
  if (typeof tx.to !== 'string') return false;
  var h = tx.to.trim().toLowerCase();
  if (h === '0x') return true;
  return zeroIsCreation && /^(0x)?0{40}$/.test(h);
}

var settings = null;

function loadSettings(config) {
  var c = config || {};
  var names = c.suspiciousOpcodes || ['SELFDESTRUCT', 'DELEGATECALL', 'CALLCODE'];
  var watched = new Map();
  names.forEach(function (n) {
    if (!(n in OPCODES)) throw new Error('config.suspiciousOpcodes: unknown opcode ' + n + ' (known: ' + Object.keys(OPCODES).join(', ') + ')');
    watched.set(OPCODES[n], n);
  });
  var max = c.maxScanBytes === undefined ? 65536 : c.maxScanBytes;
  if (!Number.isSafeInteger(max) || max < 0) throw new Error('config.maxScanBytes must be a non-negative integer');
  return { watched: watched, maxScanBytes: max, zeroIsCreation: c.zeroAddressIsCreation !== false };
}

module.exports = {
  init: function (ctx) {
    settings = loadSettings(ctx.config);
  },

  scanTransaction: function (tx, ctx) {
    if (!tx || typeof tx !== 'object') return null;
    if (!settings) settings = loadSettings(ctx.config);
    if (!isCreation(tx, settings.zeroIsCreation)) return null;

    var code = calldata(tx);
    var meta = {
      creator: typeof tx.from === 'string' ? tx.from.toLowerCase() : '',
      initcode_bytes: String(code.length / 2),
      to: tx.to == null ? '' : String(tx.to)
    };
    var found = scanOpcodes(code, settings.watched, settings.maxScanBytes);
    if (found.length > 0) {
      return {
        code: 'SUSPICIOUS_INITCODE',
        severity: 'medium',
        message: 'Contract creation whose initcode contains ' + found.join(', '),
        metadata: Object.assign({ opcodes: found.join(',') }, meta)
      };
    }
    return {
      code: 'CONTRACT_CREATION',
      severity: 'info',
      message: 'Contract creation (' + meta.initcode_bytes + ' bytes of initcode)',
      metadata: meta
    };
  }
};
