// slow: a test plugin for tests/server_test.py. It burns CPU for
// tx.sleep_ms (or config.ms) milliseconds per scan and config.init_ms in
// init(), so tests can keep requests in flight (drain, reload, overload)
// without timers, which plugins do not have. tx.flag yields one finding.
'use strict';

function spin(ms) {
  var end = Date.now() + ms;
  while (Date.now() < end) { /* busy: there is no sleep in a plugin */ }
}

module.exports = {
  init: function (ctx) {
    spin(ctx.config.init_ms || 0);
  },
  scanTransaction: function (tx, ctx) {
    spin(typeof tx.sleep_ms === 'number' ? tx.sleep_ms : (ctx.config.ms || 0));
    if (tx.flag) {
      return { code: 'SLOW_FLAG', severity: 'low', message: 'flagged by the slow test plugin' };
    }
    return null;
  }
};
