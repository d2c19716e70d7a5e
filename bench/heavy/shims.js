// Browser globals the ethers v5 browser bundle expects and a bare ECMAScript
// engine lacks (txscan plugins get no atob/btoa). Local to the wrapper.
var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
function atob(s) {
  s = String(s).replace(/[\s=]+/g, '');
  var out = '', bits = 0, acc = 0;
  for (var i = 0; i < s.length; i++) {
    var v = B64.indexOf(s.charAt(i));
    if (v < 0) throw new Error('atob: invalid character');
    acc = (acc << 6) | v; bits += 6;
    if (bits >= 8) { bits -= 8; out += String.fromCharCode((acc >> bits) & 255); }
  }
  return out;
}
function btoa(s) {
  s = String(s);
  var out = '';
  for (var i = 0; i < s.length; i += 3) {
    var a = s.charCodeAt(i), b = s.charCodeAt(i + 1), c = s.charCodeAt(i + 2);
    var n = (a << 16) | ((b || 0) << 8) | (c || 0);
    out += B64.charAt(n >> 18) + B64.charAt((n >> 12) & 63) +
      (i + 1 < s.length ? B64.charAt((n >> 6) & 63) : '=') + (i + 2 < s.length ? B64.charAt(n & 63) : '=');
  }
  return out;
}
