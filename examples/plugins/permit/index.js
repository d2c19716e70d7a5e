// permit: flags on-chain submission of signed token permits, the way
// permit-phishing kits cash in the signatures they collect off-chain.
//
// Calls recognised (top-level calldata only; Permit2 permits hidden inside a
// Universal Router execute() are not unpacked):
//   0xd505accf EIP-2612 permit(owner, spender, value, deadline, v, r, s)
//   0x8fcbaf0c DAI permit(holder, spender, nonce, expiry, allowed, v, r, s)
//              allowed=true always grants 2^256-1; expiry 0 means "never".
//   0x2b67b570 Permit2 permit(owner, PermitSingle{details{token, amount,
//              expiration, nonce}, spender, sigDeadline}, signature)
//   0x2a2d80d1 Permit2 permit(owner, PermitBatch{details[], spender,
//              sigDeadline}, signature)
//   0x87517c45 Permit2 approve(token, spender, uint160 amount, uint48
//              expiration), sent by the owner itself.
//
// Findings:
//   PERMIT_THIRD_PARTY_SUBMISSION (high)  owner/holder != tx.from: someone
//       else submits the owner's signature (metadata says whether the
//       submitter is the spender, the usual drainer pattern).
//   PERMIT_UNLIMITED_AMOUNT (high)  value 2^256-1, DAI allowed=true, or a
//       Permit2 amount of 2^160-1 (or at/above config.unlimitedThreshold).
//   PERMIT_LONG_EXPIRY (low)  a deadline/expiration that never practically
//       ends: DAI expiry 0, a Permit2 expiration of 2^48-1, or any deadline at
//       or above config.farDeadline (unix seconds; default 2^32-1, year 2106).
//       A Permit2 expiration of 0 means "this block only" and is not flagged.
// Findings are emitted in that order; a Permit2 batch reports each code at
// most once, with the first entry that matched.

'use strict';

// ---- decoding helpers (each example plugin carries its own copy) ----------

var MAX_UINT256 = (1n << 256n) - 1n;
var MAX_UINT160 = (1n << 160n) - 1n;
var MAX_UINT48 = (1n << 48n) - 1n;

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

// Argument word at a byte offset from the start of the arguments (after the
// selector); null when the calldata is too short.
function wordAtByte(cd, byteOff) {
  var at = 8 + 2 * byteOff;
  return byteOff >= 0 && cd.length >= at + 64 ? cd.slice(at, at + 64) : null;
}

function word(cd, i) { return wordAtByte(cd, 32 * i); }
function wordUint(w) { return BigInt('0x' + w); }
function wordAddr(w) { return '0x' + w.slice(24); }

// A word used as an offset or length: a small non-negative number, or -1.
function wordSmall(w) {
  if (w === null) return -1;
  var n = wordUint(w);
  return n <= 0xffffffn ? Number(n) : -1;
}

function normAddr(a) {
  var h = hexBody(a);
  return h.length === 40 ? '0x' + h : null;
}

function configUint(v, name) {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string' && /^(0x[0-9a-fA-F]+|[0-9]+)$/.test(v)) return BigInt(v);
  throw new Error('config.' + name + ' must be a non-negative integer or a decimal/0x string');
}

// ---- decoders: each returns {kind, owner, spender, items:[{token, amount,
// ---- unlimited, expiry, neverExpires}]} or null -----------------------------

function eip2612(cd) {
  var w = [0, 1, 2, 3].map(function (i) { return word(cd, i); });
  if (w.indexOf(null) >= 0) return null;
  var value = wordUint(w[2]);
  return {
    kind: 'EIP-2612 permit', owner: wordAddr(w[0]), spender: wordAddr(w[1]),
    items: [{ amount: value, unlimited: value === MAX_UINT256, expiry: wordUint(w[3]), neverExpires: false }]
  };
}

function daiPermit(cd) {
  var w = [0, 1, 2, 3, 4].map(function (i) { return word(cd, i); });
  if (w.indexOf(null) >= 0) return null;
  var allowed = wordUint(w[4]) !== 0n;
  var expiry = wordUint(w[3]);
  if (!allowed) return null; // allowed=false sets the allowance to 0: a revocation
  return {
    kind: 'DAI permit', owner: wordAddr(w[0]), spender: wordAddr(w[1]),
    items: [{ amount: MAX_UINT256, unlimited: true, expiry: expiry, neverExpires: expiry === 0n }]
  };
}

// PermitDetails{token, uint160 amount, uint48 expiration, uint48 nonce},
// four words starting at byte offset `off`.
function permitDetails(cd, off) {
  var t = wordAtByte(cd, off);
  var a = wordAtByte(cd, off + 32);
  var e = wordAtByte(cd, off + 64);
  if (t === null || a === null || e === null) return null;
  var amount = wordUint(a);
  var exp = wordUint(e);
  return {
    token: wordAddr(t), amount: amount, unlimited: amount >= MAX_UINT160,
    expiry: exp, neverExpires: exp >= MAX_UINT48
  };
}

function permit2Single(cd) {
  // The PermitSingle tuple is static, so it is inlined: owner, token, amount,
  // expiration, nonce, spender, sigDeadline, offset of signature.
  var owner = word(cd, 0);
  var spender = word(cd, 5);
  var item = permitDetails(cd, 32);
  if (owner === null || spender === null || item === null) return null;
  return { kind: 'Permit2 permit', owner: wordAddr(owner), spender: wordAddr(spender), items: [item] };
}

var MAX_BATCH = 256;

function permit2Batch(cd) {
  // owner, offset of PermitBatch; PermitBatch = (offset of details[], spender,
  // sigDeadline); details[] = length, then 4 words per entry.
  var owner = word(cd, 0);
  var base = wordSmall(word(cd, 1));
  if (owner === null || base < 0) return null;
  var detailsRel = wordSmall(wordAtByte(cd, base));
  var spender = wordAtByte(cd, base + 32);
  if (detailsRel < 0 || spender === null) return null;
  var arr = base + detailsRel;
  var len = wordSmall(wordAtByte(cd, arr));
  if (len < 0) return null;
  var items = [];
  for (var i = 0; i < Math.min(len, MAX_BATCH); i++) {
    var it = permitDetails(cd, arr + 32 + 128 * i);
    if (it === null) break;
    items.push(it);
  }
  return { kind: 'Permit2 batch permit', owner: wordAddr(owner), spender: wordAddr(spender), items: items };
}

function permit2Approve(cd, from) {
  // approve(token, spender, amount, expiration), sent by the owner:
  // msg.sender is the owner, so there is no third party.
  var w = [0, 1, 2, 3].map(function (i) { return word(cd, i); });
  if (w.indexOf(null) >= 0) return null;
  var amount = wordUint(w[2]);
  var exp = wordUint(w[3]);
  return {
    kind: 'Permit2 approve', owner: from, spender: wordAddr(w[1]),
    items: [{ token: wordAddr(w[0]), amount: amount, unlimited: amount >= MAX_UINT160, expiry: exp, neverExpires: exp >= MAX_UINT48 }]
  };
}

var DECODERS = {
  'd505accf': eip2612,
  '8fcbaf0c': daiPermit,
  '2b67b570': permit2Single,
  '2a2d80d1': permit2Batch,
  '87517c45': permit2Approve
};

// ---- rule -----------------------------------------------------------------

var settings = null;

function loadSettings(config) {
  var c = config || {};
  return {
    unlimited: c.unlimitedThreshold != null ? configUint(c.unlimitedThreshold, 'unlimitedThreshold') : null,
    farDeadline: configUint(c.farDeadline != null ? c.farDeadline : 4294967295, 'farDeadline')
  };
}

module.exports = {
  init: function (ctx) {
    settings = loadSettings(ctx.config);
  },

  scanTransaction: function (tx, ctx) {
    if (!tx || typeof tx !== 'object') return null;
    if (!settings) settings = loadSettings(ctx.config);
    var cd = calldata(tx);
    var decode = DECODERS[cd.slice(0, 8)];
    var from = normAddr(tx.from);
    var p = decode ? decode(cd, from) : null;
    if (!p) return null;

    var meta = {
      kind: p.kind,
      contract: normAddr(tx.to) || '',
      owner: p.owner || '',
      spender: p.spender,
      submitter: from || ''
    };
    var findings = [];

    if (from !== null && p.owner !== null && p.owner !== from) {
      findings.push({
        code: 'PERMIT_THIRD_PARTY_SUBMISSION',
        severity: 'high',
        message: p.kind + ' of owner ' + p.owner + ' submitted by ' + from +
          (p.spender === from ? ', who is also the spender' : ''),
        metadata: Object.assign({ submitter_is_spender: String(p.spender === from) }, meta)
      });
    }

    var s = settings;
    var big = p.items.filter(function (it) {
      return it.unlimited || (s.unlimited !== null && it.amount >= s.unlimited);
    });
    if (big.length > 0) {
      findings.push({
        code: 'PERMIT_UNLIMITED_AMOUNT',
        severity: 'high',
        message: p.kind + ' grants spender ' + p.spender + ' an unlimited allowance',
        metadata: Object.assign({ amount: big[0].amount.toString(), token: big[0].token || meta.contract }, meta)
      });
    }

    var long = p.items.filter(function (it) {
      return it.neverExpires || it.expiry >= s.farDeadline;
    });
    if (long.length > 0) {
      findings.push({
        code: 'PERMIT_LONG_EXPIRY',
        severity: 'low',
        message: p.kind + ' for spender ' + p.spender + ' does not expire in practice',
        metadata: Object.assign({ expiry: long[0].expiry.toString() }, meta)
      });
    }
    return findings;
  }
};
