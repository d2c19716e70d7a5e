// Test plugin for tests/worker_test.py: reports FLAGGED when tx.flag is set.
// tx.spin = N burns N loop iterations first, so a test can make scans take
// long enough for a worker to hold entries in flight when it is killed.
'use strict';

module.exports = {
  scanTransaction(tx) {
    let acc = 0;
    const spin = Number(tx.spin) || 0;
    for (let i = 0; i < spin; i++) acc = (acc + i) | 0;
    if (!tx.flag) return null;
    return {
      code: 'FLAGGED',
      severity: 'high',
      message: 'transaction carries the test flag',
      metadata: { hash: String(tx.hash), acc },
    };
  },
};
