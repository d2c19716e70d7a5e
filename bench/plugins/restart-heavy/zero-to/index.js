// A transaction sent to the zero address.
'use strict';
module.exports = {
  scanTransaction: function (tx) {
    return typeof tx.to === 'string' && /^0x0{40}$/.test(tx.to)
      ? { code: 'TO_ZERO_ADDRESS', severity: 'high', message: 'sent to the zero address' } : null;
  }
};
