// transfer-from-third-party: an ERC-20 transferFrom(from, to, amount) whose
// `from` is not the transaction's sender. A wallet user signing this moves
// tokens out of another account, under an allowance that account gave the
// sender; a drainer contract does it in bulk to victims' allowances. (A
// transferFrom from one's own address is how some contracts pull tokens
// from their caller, and is not reported.)
//
// An example of a plugin in TypeScript with a package from npm: viem
// decodes the calldata and checksums the addresses. txscan bundles it at
// load with esbuild (docs/plugins.md); `npm ci` in this folder fetches viem
// (make run does it).
//
// Findings:
//   TRANSFER_FROM_THIRD_PARTY (medium)   transferFrom whose from != tx.from
//   TRANSFER_FROM_UNDECODABLE (low)      the transferFrom selector with
//       calldata that does not decode

import { decodeFunctionData, getAddress, isAddress, parseAbi, type Hex } from 'viem';
import type { Plugin, Finding, Transaction } from '../../../types/txscan';

const abi = parseAbi(['function transferFrom(address from, address to, uint256 amount)']);
const SELECTOR = '0x23b872dd';

function calldata(tx: Transaction): string {
  const d = typeof tx.input === 'string' && tx.input.length > 2 ? tx.input : tx.data;
  return typeof d === 'string' ? d.toLowerCase() : '';
}

function scanTransaction(tx: Transaction): Finding | null {
  const data = calldata(tx);
  if (!data.startsWith(SELECTOR) || typeof tx.from !== 'string' || !isAddress(tx.from, { strict: false }))
    return null;
  let from: Hex, to: Hex, amount: bigint;
  try {
    ({ args: [from, to, amount] } = decodeFunctionData({ abi, data: data as Hex }));
  } catch (e) {
    return {
      code: 'TRANSFER_FROM_UNDECODABLE',
      severity: 'low',
      message: `transferFrom calldata does not decode: ${(e as Error).message.split('\n')[0]}`,
      metadata: { token: String(tx.to ?? ''), bytes: String((data.length - 2) / 2) },
    };
  }
  const sender = getAddress(tx.from);
  if (getAddress(from) === sender)
    return null;
  return {
    code: 'TRANSFER_FROM_THIRD_PARTY',
    severity: 'medium',
    message: `transferFrom moves ${amount} units of ${String(tx.to)} out of ${from}, not the sender ${sender}`,
    metadata: { token: String(tx.to ?? ''), from, to, amount: amount.toString(), sender },
  };
}

// The first decode of an engine runs viem's code cold (tens of ms, most of
// a scan's budget): run one in init, which has a budget of its own, so that
// every scan finds it warm. Each recycled engine runs init again.
function init(): void {
  const word = (hex: string) => hex.replace(/^0x/, '').padStart(64, '0');
  const a = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', b = '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc';
  scanTransaction({ from: b, input: SELECTOR + word(a) + word(b) + word('0x1') });
}

const plugin: Plugin = { init, scanTransaction };
export default plugin;
