// approval-event: flags unlimited ERC-20 allowances and ERC-721/1155
// operator approvals from the receipt's logs, not from the calldata.
//
// Needs transactions with receipts: `txscan follow` and `txscan scan --rpc`
// attach tx.receipt (docs/chains.md). Logs catch approvals made anywhere in
// the transaction: through a multicall, a router, a smart-contract wallet or
// a permit, which a calldata rule (unlimited-approval) does not see.
//
// Events recognised (emitted by any contract):
//   Approval(address indexed owner, address indexed spender, uint256 value)
//     topic0 0x8c5be1e5...b925, 3 topics, 32 bytes of data (ERC-20; the
//     ERC-721 form has 4 topics and is skipped)
//   ApprovalForAll(address indexed owner, address indexed operator, bool approved)
//     topic0 0x17307eab...6c31, 3 topics
//
// Findings:
//   UNLIMITED_APPROVAL_EVENT (high)   value == 2^256-1, or at or above
//       config.unlimitedThreshold (default 2^255)
//   APPROVAL_FOR_ALL_EVENT (high)     approved == true
// A transaction without a receipt (or a failed one: status 0x0) yields nothing.

'use strict';

var APPROVAL = '0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925';
var APPROVAL_FOR_ALL = '0x17307eab39ab6107e8899845ad3d59bd9653f200f220920489ca2b5937696c31';
var MAX_UINT256 = (1n << 256n) - 1n;
var MAX_LOGS = 2000; // an attacker can make a receipt long: bound the loop

var threshold = 1n << 255n;

function hexBody(v) {
  if (typeof v !== 'string') return '';
  var s = v.trim().toLowerCase();
  if (s.slice(0, 2) === '0x') s = s.slice(2);
  if (!/^[0-9a-f]*$/.test(s)) return '';
  return s.length % 2 ? '0' + s : s;
}

// The address in a 32-byte topic, or null.
function topicAddr(t) {
  var h = hexBody(t);
  return h.length === 64 ? '0x' + h.slice(24) : null;
}

function finding(code, log, owner, other, extra) {
  var m = { token: String(log.address).toLowerCase(), owner: owner };
  for (var k in extra) m[k] = extra[k];
  return {
    code: code,
    severity: 'high',
    message: code === 'UNLIMITED_APPROVAL_EVENT'
      ? 'unlimited ERC-20 allowance to ' + other + ' on ' + m.token
      : 'operator ' + other + ' approved for every token of ' + m.token,
    metadata: m,
  };
}

function scanLog(log) {
  if (!log || !Array.isArray(log.topics) || log.topics.length !== 3) return null;
  var t0 = String(log.topics[0]).toLowerCase();
  var owner = topicAddr(log.topics[1]), other = topicAddr(log.topics[2]);
  var data = hexBody(log.data);
  if (!owner || !other || data.length !== 64) return null;
  var v = BigInt('0x' + data);
  if (t0 === APPROVAL && (v === MAX_UINT256 || v >= threshold))
    return finding('UNLIMITED_APPROVAL_EVENT', log, owner, other,
                   { spender: other, amount: v.toString() });
  if (t0 === APPROVAL_FOR_ALL && v === 1n)
    return finding('APPROVAL_FOR_ALL_EVENT', log, owner, other, { operator: other });
  return null;
}

module.exports = {
  init(ctx) {
    if (ctx.config && ctx.config.unlimitedThreshold !== undefined)
      threshold = BigInt(ctx.config.unlimitedThreshold); // a bad value fails the start
  },
  scanTransaction(tx) {
    var r = tx.receipt;
    if (!r || !Array.isArray(r.logs) || hexBody(r.status) === '00') return null;
    var out = [];
    for (var i = 0; i < r.logs.length && i < MAX_LOGS; i++) {
      var f = scanLog(r.logs[i]);
      if (f) out.push(f);
    }
    return out;
  },
};
