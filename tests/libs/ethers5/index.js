// tests/libs/ethers5: CommonJS requiring ethers v5's UMD bundle (the
// version Forta's SDK uses), which needs atob/btoa at load. Decodes
// ERC-20 approve calls; base64 round trip through ethers' own helpers.
'use strict';
const { ethers } = require('ethers/dist/ethers.umd.min.js');

const erc20 = new ethers.utils.Interface(['function approve(address spender, uint256 amount)']);

module.exports = {
  scanTransaction(tx) {
    const data = typeof tx.input === 'string' && tx.input.length > 2 ? tx.input : tx.data;
    if (typeof data !== 'string' || !data.startsWith('0x095ea7b3')) return null;
    const { spender, amount } = erc20.decodeFunctionData('approve', data);
    const b64 = ethers.utils.base64.encode(ethers.utils.toUtf8Bytes(spender));
    if (ethers.utils.toUtf8String(ethers.utils.base64.decode(b64)) !== spender)
      throw new Error('base64 round trip failed');
    if (!amount.eq(ethers.constants.MaxUint256)) return null;
    return {
      code: 'ETHERS5_UNLIMITED_APPROVAL', severity: 'high',
      message: `unlimited approval to ${ethers.utils.getAddress(spender)}`,
      metadata: { hash: ethers.utils.keccak256(data) },
    };
  },
};
