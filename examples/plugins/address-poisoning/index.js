// address-poisoning: two signals of address-poisoning scams, where an
// attacker plants a look-alike address in the victim's history hoping it gets
// copied into the next transfer.
//
// (a) POISONED_ADDRESS (high): the recipient looks like, but is not, one of
//     config.knownCounterparties: it shares at least config.prefixChars
//     leading and config.suffixChars trailing hex digits (after 0x, case
//     ignored) with it. The recipient is tx.to for a plain native transfer
//     (no calldata), or the decoded recipient of
//       0xa9059cbb transfer(to, amount)
//       0x23b872dd transferFrom(from, to, amount)
//       0x42842e0e / 0xb88d4fde safeTransferFrom(from, to, tokenId[, data])
//       0xf242432a safeTransferFrom(from, to, id, amount, data)   (ERC-1155)
// (b) ZERO_VALUE_TRANSFER_FROM (medium): transferFrom(from, to, 0) where the
//     from argument is not tx.from. Moving zero tokens "from" a victim needs no
//     allowance on many tokens, and it writes a Transfer event into the
//     victim's history. Only the top-level call is visible here; campaigns that
//     go through an attacker contract need logs (Forta's bot counts zero-value
//     Transfer events), which raw transactions do not carry.

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

// Which argument word holds the recipient, per selector.
var RECIPIENT_ARG = {
  'a9059cbb': 0, // transfer
  '23b872dd': 1, // transferFrom
  '42842e0e': 1, // safeTransferFrom (ERC-721)
  'b88d4fde': 1, // safeTransferFrom with data (ERC-721)
  'f242432a': 1  // safeTransferFrom (ERC-1155)
};

var settings = null;

function loadSettings(config) {
  var c = config || {};
  var list = c.knownCounterparties || [];
  if (!Array.isArray(list)) throw new Error('config.knownCounterparties must be an array of addresses');
  var known = list.map(function (a) {
    var n = normAddr(a);
    if (!n) throw new Error('config.knownCounterparties has an invalid address: ' + String(a));
    return n;
  });
  var pre = c.prefixChars === undefined ? 4 : c.prefixChars;
  var suf = c.suffixChars === undefined ? 4 : c.suffixChars;
  if (!Number.isInteger(pre) || !Number.isInteger(suf) || pre < 1 || suf < 1 || pre + suf > 40) {
    throw new Error('config.prefixChars and config.suffixChars must be integers >= 1 with a sum <= 40');
  }
  return { known: known, pre: pre, suf: suf };
}

// The known counterparty that `addr` imitates, or null.
function lookalikeOf(addr, s) {
  if (s.known.indexOf(addr) >= 0) return null; // the real thing
  var h = addr.slice(2);
  for (var i = 0; i < s.known.length; i++) {
    var k = s.known[i].slice(2);
    if (h.slice(0, s.pre) === k.slice(0, s.pre) && h.slice(40 - s.suf) === k.slice(40 - s.suf)) {
      return s.known[i];
    }
  }
  return null;
}

function recipientOf(tx, cd) {
  if (cd === '') return normAddr(tx.to);
  var arg = RECIPIENT_ARG[cd.slice(0, 8)];
  var w = arg === undefined ? null : word(cd, arg);
  return w === null ? null : wordAddr(w);
}

module.exports = {
  init: function (ctx) {
    settings = loadSettings(ctx.config);
  },

  scanTransaction: function (tx, ctx) {
    if (!tx || typeof tx !== 'object') return null;
    if (!settings) settings = loadSettings(ctx.config);
    var cd = calldata(tx);
    var findings = [];

    var recipient = recipientOf(tx, cd);
    var original = recipient === null ? null : lookalikeOf(recipient, settings);
    if (original !== null) {
      findings.push({
        code: 'POISONED_ADDRESS',
        severity: 'high',
        message: 'Recipient ' + recipient + ' imitates known counterparty ' + original,
        metadata: { recipient: recipient, lookalike_of: original, token: cd === '' ? '' : (normAddr(tx.to) || '') }
      });
    }

    if (cd.slice(0, 8) === '23b872dd') {
      var w0 = word(cd, 0);
      var w2 = word(cd, 2);
      var sender = normAddr(tx.from);
      if (w0 !== null && w2 !== null && wordUint(w2) === 0n && wordAddr(w0) !== sender) {
        findings.push({
          code: 'ZERO_VALUE_TRANSFER_FROM',
          severity: 'medium',
          message: 'Zero-value transferFrom out of ' + wordAddr(w0) + ', sent by a third party ' + (sender || '(unknown)'),
          metadata: { victim: wordAddr(w0), to: recipient || '', token: normAddr(tx.to) || '', sender: sender || '' }
        });
      }
    }
    return findings;
  }
};
