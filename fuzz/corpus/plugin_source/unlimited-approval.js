// unlimited-approval: flags ERC-20 allowances that let a spender take
// (effectively) every token the sender holds.
//
// Calls recognised (top-level calldata only; calls nested in multicall or a
// router's execute() are not unpacked):
//   0x095ea7b3 approve(address spender, uint256 amount)
//   0x39509351 increaseAllowance(address spender, uint256 addedValue)
//   0xd73dd623 increaseApproval(address spender, uint256 addedValue)
//
// Findings:
//   UNLIMITED_APPROVAL (high)             amount == 2^256-1, or amount at or
//       above the "effectively unlimited" threshold: config.unlimitedThreshold
//       raw units for any token, or config.unlimitedTokenUnits whole tokens for
//       a token whose decimals are listed in config.tokenDecimals. MetaMask's
//       test-dapp "malicious approval" uses 2^64-1 on USDC (6 decimals), which a
//       max-only rule misses.
//   APPROVAL_TO_BLOCKLISTED_SPENDER (critical)   any non-zero approval to a
//       spender in config.blocklist.
// An approval of 0 is a revocation and is never reported.
//
// ERC-721 uses the same approve(address,uint256) selector with a token id in
// place of the amount; contracts listed in config.nftContracts skip the amount
// checks (ENS names, for example, have 256-bit token ids).

'use strict';

// ---- decoding helpers (each example plugin carries its own copy) ----------

var MAX_UINT256 = (1n << 256n) - 1n;

// Lower-case hex digits without "0x"; odd length gets a leading 0 (the way
// wallets read "0x1" as 0x01); '' when the value is not a hex string.
function hexBody(v) {
  if (typeof v !== 'string') return '';
  var s = v.trim().toLowerCase();
  if (s.slice(0, 2) === '0x') s = s.slice(2);
  if (!/^[0-9a-f]*$/.test(s)) return '';
  return s.length % 2 ? '0' + s : s;
}

// Calldata from either field name: "input" (eth_getTransactionByHash) or
// "data" (eth_sendTransaction).
function calldata(tx) {
  var input = hexBody(tx.input);
  return input !== '' ? input : hexBody(tx.data);
}

// The i-th 32-byte argument word after the selector, or null if truncated.
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

// A config number: JSON number, decimal string, or 0x-hex string.
function configUint(v, name) {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string' && /^(0x[0-9a-fA-F]+|[0-9]+)$/.test(v)) return BigInt(v);
  throw new Error('config.' + name + ' must be a non-negative integer or a decimal/0x string');
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

var METHODS = {
  '095ea7b3': 'approve',
  '39509351': 'increaseAllowance',
  'd73dd623': 'increaseApproval'
};

// Parsed config, built once per engine by init() (and lazily, in case a
// host calls scanTransaction first).
var settings = null;

function loadSettings(config) {
  var c = config || {};
  var decimals = new Map();
  var td = c.tokenDecimals || {};
  Object.keys(td).forEach(function (k) {
    var a = normAddr(k);
    var d = td[k];
    if (!a || !Number.isInteger(d) || d < 0 || d > 77) {
      throw new Error('config.tokenDecimals: bad entry ' + k);
    }
    decimals.set(a, BigInt(d));
  });
  return {
    rawThreshold: configUint(c.unlimitedThreshold != null ? c.unlimitedThreshold : MAX_UINT256.toString(), 'unlimitedThreshold'),
    tokenUnits: c.unlimitedTokenUnits != null ? configUint(c.unlimitedTokenUnits, 'unlimitedTokenUnits') : null,
    decimals: decimals,
    blocklist: addrSet(c.blocklist, 'blocklist'),
    nftContracts: addrSet(c.nftContracts, 'nftContracts')
  };
}

// Which "unlimited" test the amount passes, or null.
function unlimitedKind(s, token, amount) {
  if (amount === MAX_UINT256) return 'max_uint256';
  if (amount >= s.rawThreshold) return 'above_raw_threshold';
  var d = token ? s.decimals.get(token) : undefined;
  if (d !== undefined && s.tokenUnits !== null && amount >= s.tokenUnits * 10n ** d) {
    return 'above_token_threshold';
  }
  return null;
}

module.exports = {
  init: function (ctx) {
    settings = loadSettings(ctx.config);
  },

  scanTransaction: function (tx, ctx) {
    if (!tx || typeof tx !== 'object') return null;
    if (!settings) settings = loadSettings(ctx.config);
    var cd = calldata(tx);
    var method = METHODS[cd.slice(0, 8)];
    var w0 = word(cd, 0);
    var w1 = word(cd, 1);
    if (!method || w0 === null || w1 === null) return null;

    var spender = wordAddr(w0);
    var amount = wordUint(w1);
    if (amount === 0n) return null; // revocation
    var token = normAddr(tx.to);
    var meta = {
      token: token || '',
      spender: spender,
      amount: amount.toString(),
      method: method
    };
    var findings = [];

    if (settings.blocklist.has(spender)) {
      findings.push({
        code: 'APPROVAL_TO_BLOCKLISTED_SPENDER',
        severity: 'critical',
        message: method + ' grants an allowance to blocklisted spender ' + spender,
        metadata: meta
      });
    }

    var isNft = token !== null && settings.nftContracts.has(token);
    var kind = isNft ? null : unlimitedKind(settings, token, amount);
    if (kind) {
      findings.push({
        code: 'UNLIMITED_APPROVAL',
        severity: 'high',
        message: (kind === 'max_uint256' ? 'Unlimited' : 'Effectively unlimited') +
          ' token allowance (' + method + ') for spender ' + spender,
        metadata: Object.assign({ kind: kind }, meta)
      });
    }
    return findings;
  }
};
