// A value transfer of more than 100 ether.
'use strict';
var LIMIT = 100n * 10n ** 18n;
module.exports = {
  scanTransaction: function (tx) {
    if (typeof tx.value !== 'string' || !/^0x[0-9a-fA-F]+$/.test(tx.value)) return null;
    return BigInt(tx.value) > LIMIT
      ? { code: 'LARGE_VALUE', severity: 'medium', message: 'more than 100 ether' } : null;
  }
};
