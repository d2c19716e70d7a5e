// tests/libs/ethers6: an ES module plugin importing ethers v6 from its own
// node_modules (ethers' browser build: its Node build imports http, ws and
// crypto). Decodes ERC-20 calls with ethers' Interface.
import { Interface, MaxUint256, formatUnits, getAddress, id } from 'ethers';

const erc20 = new Interface([
  'function approve(address spender, uint256 amount)',
  'function transfer(address to, uint256 amount)',
]);

export function scanTransaction(tx) {
  const data = typeof tx.input === 'string' && tx.input.length > 2 ? tx.input : tx.data;
  if (typeof data !== 'string') return null;
  let call;
  try {
    call = erc20.parseTransaction({ data });
  } catch {
    return null;
  }
  if (call && call.name === 'approve' && call.args.amount === MaxUint256)
    return {
      code: 'ETHERS6_UNLIMITED_APPROVAL', severity: 'high',
      message: `unlimited approval to ${getAddress(call.args.spender)}`,
      metadata: { selector: id('approve(address,uint256)').slice(0, 10) },
    };
  if (call && call.name === 'transfer')
    return { code: 'ETHERS6_TRANSFER', severity: 'info', message: `transfer of ${formatUnits(call.args.amount, 6)}` };
  return null;
}
