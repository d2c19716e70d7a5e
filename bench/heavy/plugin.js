// heavy-decoder: the benchmark's "heavy" plugin. Same kind of rule as
// examples/plugins/unlimited-approval, but it decodes calldata with a real
// ~750 KB bundled library (ethers v5's UMD build) the way a plugin author who
// bundles a dependency would. build.sh prepends the library as `ethers`; the
// library itself is fetched by npm and never committed.
//
// Findings: UNLIMITED_APPROVAL (high) for approve/increaseAllowance at or
// above 2^64-1 raw units (MetaMask test-dapp's "malicious approval");
// APPROVAL_FOR_ALL (medium) for setApprovalForAll(true); PERMIT (low) for an
// EIP-2612 permit.

var ABI = [
  'function approve(address spender, uint256 amount)',
  'function increaseAllowance(address spender, uint256 addedValue)',
  'function transfer(address to, uint256 amount)',
  'function transferFrom(address from, address to, uint256 amount)',
  'function setApprovalForAll(address operator, bool approved)',
  'function safeTransferFrom(address from, address to, uint256 tokenId)',
  'function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)',
  'function multicall(bytes[] data)'
];

var iface = null;
var threshold = null;

function setup() {
  iface = new ethers.utils.Interface(ABI);
  threshold = ethers.BigNumber.from(2).pow(64).sub(1);
}

module.exports = {
  init: function () {
    setup();
  },

  scanTransaction: function (tx) {
    if (!tx || typeof tx !== 'object') return null;
    if (!iface) setup();
    var data = typeof tx.input === 'string' && tx.input.length > 2 ? tx.input : tx.data;
    if (typeof data !== 'string' || data.length < 10) return null;
    if (data.slice(0, 2) !== '0x') data = '0x' + data;
    var parsed;
    try {
      parsed = iface.parseTransaction({ data: data, value: /^0x[0-9a-fA-F]+$/.test(tx.value || '') ? tx.value : 0 });
    } catch (e) {
      return null; // not one of ours, or malformed calldata
    }
    var token = null;
    try { token = ethers.utils.getAddress(tx.to); } catch (e) { token = null; }
    var name = parsed.name;
    var args = parsed.args;
    if (name === 'approve' || name === 'increaseAllowance') {
      var amount = args[1];
      if (amount.gte(threshold)) {
        return [{
          code: 'UNLIMITED_APPROVAL',
          severity: 'high',
          message: name + ' of ' + amount.toString() + ' to ' + args[0],
          metadata: { token: token, spender: args[0], amount: amount.toString(), selector: parsed.sighash }
        }];
      }
    } else if (name === 'setApprovalForAll' && args[1] === true) {
      return { code: 'APPROVAL_FOR_ALL', severity: 'medium', message: 'setApprovalForAll to ' + args[0],
               metadata: { collection: token, operator: args[0] } };
    } else if (name === 'permit') {
      return { code: 'PERMIT', severity: 'low', message: 'EIP-2612 permit for ' + args[1],
               metadata: { token: token, owner: args[0], spender: args[1], value: args[2].toString(),
                           deadline: args[3].toString() } };
    }
    return null;
  }
};
