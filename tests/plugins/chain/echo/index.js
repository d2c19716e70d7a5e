// chain-echo (tests/follow_test.py): one info finding per transaction that
// says what the plugin saw of the receipt and the block, so the test can
// check the shape txscan follow / scan --rpc hand to plugins.
'use strict';
module.exports = {
  scanTransaction(tx) {
    const r = tx.receipt, b = tx.block;
    const logs = r && Array.isArray(r.logs) ? r.logs : null;
    return {
      code: 'SEEN',
      severity: 'info',
      message: 'seen',
      metadata: {
        hash: String(tx.hash),
        input: typeof tx.input,
        block: b ? b.number : null,
        blockHash: b ? b.hash : null,
        timestamp: b ? b.timestamp : null,
        receipt: r === null ? null : typeof r,
        status: r ? r.status : null,
        gasUsed: r ? r.gasUsed : null,
        contractAddress: r ? r.contractAddress : null,
        logs: logs ? logs.length : null,
        log0: logs && logs.length ? { address: logs[0].address, topics: logs[0].topics, data: logs[0].data } : null,
      },
    };
  },
};
