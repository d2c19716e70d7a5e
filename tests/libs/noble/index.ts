// tests/libs/noble: a TypeScript plugin importing @noble/hashes (keccak-256)
// from its own node_modules: selectors computed from their signatures.
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

const selector = (signature: string): string =>
  '0x' + bytesToHex(keccak_256(utf8ToBytes(signature))).slice(0, 8);

const KNOWN = new Map<string, string>([
  [selector('setApprovalForAll(address,bool)'), 'NOBLE_SET_APPROVAL_FOR_ALL'],
  [selector('permit(address,address,uint256,uint256,uint8,bytes32,bytes32)'), 'NOBLE_PERMIT'],
]);

export function scanTransaction(tx: { input?: string; data?: string }) {
  const data = (tx.input ?? tx.data ?? '').toLowerCase();
  const code = KNOWN.get(data.slice(0, 10));
  return code ? { code, severity: 'medium' as const, message: `${code} (${data.slice(0, 10)})` } : null;
}
