// A contract creation (no recipient).
'use strict';
module.exports = {
  scanTransaction: function (tx) {
    return tx.to === null || tx.to === undefined || tx.to === ''
      ? { code: 'CONTRACT_CREATION', severity: 'info', message: 'creates a contract' } : null;
  }
};
