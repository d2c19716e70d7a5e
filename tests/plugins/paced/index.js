// paced: a test plugin for tests/worker_test.py (TestPacedWindow). Each scan
// burns tx.ms milliseconds of CPU: well inside its 50 ms timeout, but slower
// than a worker reads entries, so that their queue builds up.
'use strict';

module.exports = {
  scanTransaction(tx) {
    const end = Date.now() + (Number(tx.ms) || 0);
    while (Date.now() < end) { /* busy: there is no sleep in a plugin */ }
    return null;
  },
};
