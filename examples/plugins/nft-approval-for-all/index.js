// nft-approval-for-all: flags setApprovalForAll(operator, true), the call
// every NFT drainer asks for: it lets the operator move every token of the
// collection (ERC-721) or every id and amount (ERC-1155) the sender owns.
//
//   0xa22cb465 setApprovalForAll(address operator, bool approved)
//
// Findings:
//   NFT_APPROVAL_FOR_ALL (high)          approved != 0 and the operator is not
//       in config.operatorAllowlist (marketplace conduits you trust).
//   NFT_APPROVAL_FOR_ALL_BLOCKLISTED (critical)   approved != 0 and the operator
//       is in config.blocklist.
//   NFT_APPROVAL_REVOKED (info)          approved == 0, a revocation; only when
//       config.reportRevocations is true.
// Top-level calldata only; the token contract (tx.to) is not checked.

'use strict';

// ---- decoding helpers (each example plugin carries its own copy) ----------

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

function word(cd, i) {
  var at = 8 + 64 * i;
  return cd.length >= at + 64 ? cd.slice(at, at + 64) : null;
}

function wordUint(w) { return BigInt('0x' + w); }
function wordAddr(w) { return '0x' + w.slice(24); }

function normAddr(a) {
  var h = hexBody(a);
  return h.length === 40 ? '0x' + h : null;
}

function addrSet(list, name) {
  var set = new Set();
  if (list == null) return set;
  if (!Array.isArray(list)) throw new Error('config.' + name + ' must be an array of addresses');
  list.forEach(function (a) {
    var n = normAddr(a);
    if (!n) throw new Error('config.' + name + ' has an invalid address: ' + String(a));
    set.add(n);
  });
  return set;
}

// ---- rule -----------------------------------------------------------------

var settings = null;

function loadSettings(config) {
  var c = config || {};
  return {
    allow: addrSet(c.operatorAllowlist, 'operatorAllowlist'),
    block: addrSet(c.blocklist, 'blocklist'),
    reportRevocations: c.reportRevocations === true
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
    var w0 = word(cd, 0);
    var w1 = word(cd, 1);
    if (cd.slice(0, 8) !== 'a22cb465' || w0 === null || w1 === null) return null;

    var operator = wordAddr(w0);
    var approved = wordUint(w1) !== 0n;
    var meta = { collection: normAddr(tx.to) || '', operator: operator };

    if (!approved) {
      if (!settings.reportRevocations) return null;
      return {
        code: 'NFT_APPROVAL_REVOKED',
        severity: 'info',
        message: 'setApprovalForAll revokes operator ' + operator,
        metadata: meta
      };
    }
    if (settings.block.has(operator)) {
      return {
        code: 'NFT_APPROVAL_FOR_ALL_BLOCKLISTED',
        severity: 'critical',
        message: 'setApprovalForAll hands the whole collection to blocklisted operator ' + operator,
        metadata: meta
      };
    }
    if (settings.allow.has(operator)) return null;
    return {
      code: 'NFT_APPROVAL_FOR_ALL',
      severity: 'high',
      message: 'setApprovalForAll lets operator ' + operator + ' move every token of this collection you own',
      metadata: meta
    };
  }
};
