// approve(spender, amount) / increaseAllowance with an amount at or above
// config.unlimited. Module state (the parsed threshold) is rebuilt by init in
// every fresh realm: restart_every 3.
'use strict';
var SELECTORS = { '095ea7b3': 'approve', '39509351': 'increaseAllowance' };
var limit = null;

function body(v) {
  if (typeof v !== 'string') return '';
  var s = v.toLowerCase();
  return s.slice(0, 2) === '0x' ? s.slice(2) : s;
}

module.exports = {
  init: function (ctx) { limit = BigInt(ctx.config.unlimited); },
  scanTransaction: function (tx) {
    var cd = body(tx.input || tx.data);
    var method = SELECTORS[cd.slice(0, 8)];
    if (!method || cd.length < 8 + 128) return null;
    var amount = BigInt('0x' + cd.slice(72, 136));
    if (amount < limit) return null;
    return { code: 'UNLIMITED_APPROVAL', severity: 'high',
             message: method + ' of an effectively unlimited amount',
             metadata: { spender: '0x' + cd.slice(32, 72) } };
  }
};
