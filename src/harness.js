/*
 * harness.js - the JavaScript that runs a plugin's scans. Loading the module
 * and init(ctx) happen in C (engine.c), so that a new engine compiles only
 * this: every function here is parsed and compiled again by each VM.
 *
 * It is called once the plugin is loaded and initialised, as
 * harness(drain, mark, fmt, parse, stringify, apply, P, then, mod, pctx):
 * the intrinsics were taken by C before any plugin code ran, so a plugin
 * that replaces JSON.stringify or Promise.prototype.then only breaks its own
 * results (which C validates anyway), and nothing here reads a global. A
 * scan is the method call mod.scanTransaction(tx, pctx), as the module
 * object has it then. It returns runBatch(texts), which scans several transactions in
 * one VM entry: mark(i, tag, text) hands scan i's answer to C at once (so a
 * scan that is terminated loses nothing that finished before it) and starts
 * scan i + 1's own deadline. The tag is 0 for a settled result (text is its
 * JSON), 1 for an error (text is the message and stack, from fmt), 2 for a
 * promise that did not settle. drain() runs every pending microtask right
 * there, inside the same VM entry, so the watchdog covers them too.
 */
(function (drain, mark, fmt, parse, stringify, apply, P, then, mod, pctx) {
'use strict';
let state = 0, rtag = 0, rtext = '', seq = 0;
function ser(v) {
  try { const s = stringify(v === undefined ? null : v); rtag = 0; rtext = s === undefined ? 'null' : s; }
  catch (e) { rtag = 1; rtext = 'result cannot be serialised as JSON: ' + fmt(e); }
}
// true when r is a thenable whose outcome the microtasks will deliver
function settle(r) {
  if (r !== null && (typeof r === 'object' || typeof r === 'function')) {
    let t;
    try { t = r.then; } catch (e) { rtag = 1; rtext = fmt(e); return false; }
    if (typeof t === 'function') {
      const my = seq; // a promise of an earlier scan settling now answers nothing
      const p = new P(function (res) { res(r); });
      apply(then, p, [function (v) { if (my === seq) { ser(v); state = 2; } },
                       function (e) { if (my === seq) { rtag = 1; rtext = fmt(e); state = 2; } }]);
      return true;
    }
  }
  ser(r);
  return false;
}
return function runBatch(texts) {
  const n = texts.length;
  for (let i = 0; i < n; i++) {
    let tx;
    try { tx = parse(texts[i]); } catch (e) { mark(i, 1, 'transaction is not valid JSON: ' + fmt(e)); continue; }
    state = 0; rtag = 1; rtext = ''; seq++;
    let pending = false;
    try { pending = settle(mod.scanTransaction(tx, pctx)); } catch (e) { rtag = 1; rtext = fmt(e); }
    drain();
    if (pending && state !== 2) { rtag = 2; rtext = ''; }
    state = 0; seq++;
    mark(i, rtag, rtext);
  }
};
})
