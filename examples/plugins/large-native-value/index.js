// large-native-value: flags transactions that move a large amount of the
// chain's native coin (ETH on mainnet) in tx.value.
//
// Finding: LARGE_NATIVE_VALUE (severity from config.severity, default
// "medium") when value >= config.thresholdWei (default 10 ETH =
// 10000000000000000000 wei). Metadata gives the value in wei and in ETH.
//
// tx.value is read as a JSON-RPC quantity: a hex string with or without 0x
// ("0x" alone is 0), or a JSON number. A value that is not a number at all is
// reported as VALUE_UNPARSEABLE (low) instead of throwing, since a scanner
// that skips odd input is a scanner that can be bypassed.
// ERC-20 amounts are out of scope (they need a token price/decimals table).

'use strict';

var SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];

// JSON-RPC quantity -> BigInt, or null when it is not one.
function quantity(v) {
  if (v === undefined || v === null) return 0n;
  // Integral doubles convert exactly; big JSON numbers were rounded before we saw them.
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? BigInt(v) : null;
  if (typeof v !== 'string') return null;
  var s = v.trim().toLowerCase();
  if (s.slice(0, 2) === '0x') s = s.slice(2);
  if (s === '') return 0n;
  return /^[0-9a-f]+$/.test(s) ? BigInt('0x' + s) : null;
}

function configUint(v, name) {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string' && /^(0x[0-9a-fA-F]+|[0-9]+)$/.test(v)) return BigInt(v);
  throw new Error('config.' + name + ' must be a non-negative integer or a decimal/0x string');
}

// wei -> "12.5" (ETH, trailing zeros trimmed).
function formatEth(wei) {
  var unit = 10n ** 18n;
  var frac = (wei % unit).toString().padStart(18, '0').replace(/0+$/, '');
  return (wei / unit).toString() + (frac ? '.' + frac : '');
}

var settings = null;

function loadSettings(config) {
  var c = config || {};
  var severity = c.severity === undefined ? 'medium' : c.severity;
  if (SEVERITIES.indexOf(severity) < 0) throw new Error('config.severity must be one of ' + SEVERITIES.join(', '));
  return {
    threshold: configUint(c.thresholdWei != null ? c.thresholdWei : '10000000000000000000', 'thresholdWei'),
    severity: severity
  };
}

module.exports = {
  init: function (ctx) {
    settings = loadSettings(ctx.config);
  },

  scanTransaction: function (tx, ctx) {
    if (!tx || typeof tx !== 'object') return null;
    if (!settings) settings = loadSettings(ctx.config);
    var value = quantity(tx.value);
    if (value === null) {
      return {
        code: 'VALUE_UNPARSEABLE',
        severity: 'low',
        message: 'tx.value is not a hex quantity: ' + JSON.stringify(tx.value).slice(0, 80),
        metadata: { value: String(tx.value).slice(0, 80) }
      };
    }
    if (value < settings.threshold) return null;
    return {
      code: 'LARGE_NATIVE_VALUE',
      severity: settings.severity,
      message: 'Transaction sends ' + formatEth(value) + ' ETH (threshold ' + formatEth(settings.threshold) + ')',
      metadata: { value_wei: value.toString(), value_eth: formatEth(value), to: String(tx.to == null ? '' : tx.to) }
    };
  }
};
