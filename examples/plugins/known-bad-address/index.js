// known-bad-address: flags any transaction that touches an address on a
// blocklist: as recipient (to), as sender (from), as an address argument
// anywhere in the calldata (spender, operator, recipient, nested calls), or as
// an EIP-7702 delegate in authorizationList.
//
// Finding: KNOWN_BAD_ADDRESS (critical), one per listed address, with the
// roles it appeared in ("to", "from", "calldata", "authorization").
//
// config.addresses: a list of "0x..." strings or {"address", "label"} objects.
// The calldata search looks for ABI-encoded addresses (12 zero bytes, then
// the 20 address bytes) at every byte offset, so it also sees addresses inside
// multicall payloads, tuples and arrays without decoding them.
//
// scanTransaction is async only to show that the host awaits promises; it
// does no I/O (plugins have none).

'use strict';

// ---- decoding helpers (each example plugin carries its own copy) ----------

function hexBody(v) {
  if (typeof v !== 'string') return '';
  var s = v.trim().toLowerCase();
  if (s.slice(0, 2) === '0x') s = s.slice(2);
  if (!/^[0-9a-f]*$/.test(s)) return '';
  return s.length % 2 ? '0' + s : s;
}

function calldata(tx) {
  var input = hexBody(tx.input);
  return input !== '' ? input : hexBody(tx.data);
}

function normAddr(a) {
  var h = hexBody(a);
  return h.length === 40 ? '0x' + h : null;
}

// ---- rule -----------------------------------------------------------------

var settings = null;

function loadSettings(config) {
  var list = (config || {}).addresses || [];
  if (!Array.isArray(list)) throw new Error('config.addresses must be an array');
  var labels = new Map();
  var maxLeadingZeros = 0;
  list.forEach(function (e) {
    var raw = typeof e === 'string' ? e : e && e.address;
    var a = normAddr(raw);
    if (!a) throw new Error('config.addresses has an invalid address: ' + JSON.stringify(e));
    if (a === '0x0000000000000000000000000000000000000000') {
      throw new Error('config.addresses must not list the zero address');
    }
    labels.set(a, typeof e === 'object' && typeof e.label === 'string' ? e.label : '');
    maxLeadingZeros = Math.max(maxLeadingZeros, /^0*/.exec(a.slice(2))[0].length);
  });
  return { labels: labels, maxLeadingZeros: maxLeadingZeros };
}

// Every listed address that appears ABI-encoded in cd. An encoded address is
// a run of at least 24 zero hex digits (plus the address's own leading zeros)
// followed by the rest of the address; so only the ends of zero runs need
// checking, for at most maxLeadingZeros+1 start positions each.
function addressesInCalldata(cd, s) {
  var found = [];
  var re = /0{24,}/g;
  var m;
  while ((m = re.exec(cd)) !== null) {
    var runStart = m.index;
    var runEnd = runStart + m[0].length;
    for (var k = 0; k <= s.maxLeadingZeros; k++) {
      var at = runEnd - k;
      if (at - runStart < 24 || at % 2 !== 0 || at + 40 > cd.length) continue;
      var a = '0x' + cd.slice(at, at + 40);
      if (s.labels.has(a) && found.indexOf(a) < 0) found.push(a);
    }
  }
  return found;
}

module.exports = {
  init: function (ctx) {
    settings = loadSettings(ctx.config);
  },

  scanTransaction: async function (tx, ctx) {
    if (!tx || typeof tx !== 'object') return null;
    if (!settings) settings = loadSettings(ctx.config);
    var s = settings;
    if (s.labels.size === 0) return null;

    var roles = new Map(); // address -> [role], in first-seen order
    function note(addr, role) {
      if (addr === null || !s.labels.has(addr)) return;
      if (!roles.has(addr)) roles.set(addr, []);
      if (roles.get(addr).indexOf(role) < 0) roles.get(addr).push(role);
    }

    note(normAddr(tx.to), 'to');
    note(normAddr(tx.from), 'from');
    addressesInCalldata(calldata(tx), s).forEach(function (a) { note(a, 'calldata'); });
    if (Array.isArray(tx.authorizationList)) {
      tx.authorizationList.forEach(function (auth) {
        if (auth && typeof auth === 'object') note(normAddr(auth.address), 'authorization');
      });
    }

    var findings = [];
    roles.forEach(function (r, addr) {
      var label = s.labels.get(addr);
      findings.push({
        code: 'KNOWN_BAD_ADDRESS',
        severity: 'critical',
        message: 'Transaction involves blocklisted address ' + addr +
          (label ? ' (' + label + ')' : '') + ' as ' + r.join(', '),
        metadata: { address: addr, label: label, roles: r.join(',') }
      });
    });
    return findings;
  }
};
