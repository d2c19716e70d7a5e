/*
 * harness.js - the JavaScript that wraps every plugin, evaluated before the
 * plugin's own code so it captures pristine intrinsics (a plugin that replaces
 * JSON.stringify or Promise.prototype.then only breaks its own results, which
 * the C side validates anyway).
 *
 * It is called as harness(drain, mark, globalThis) and returns {load, init,
 * runBatch}. The globals a plugin sees (console, self, what is removed or
 * pinned) are set up in C before this runs (engine.c, install_globals):
 * JavaScript here is parsed and compiled again by every new engine.
 * init's answer is one string whose first character is a tag: 'R' + JSON (settled result), 'E' + text (error), 'P' (a promise that
 * did not settle); a scan's answer is the same tag as a number (0, 1, 2)
 * and the text, apart. drain() runs every pending microtask right
 * there, inside the same VM entry, so the watchdog covers them too.
 * runBatch(texts) scans several transactions in one VM entry: mark(i, tag,
 * text) hands scan i's answer to C at once (so a scan that is terminated
 * loses nothing that finished before it) and starts scan i + 1's own deadline.
 */
(function (drain, mark, g) {
'use strict';
const parse = JSON.parse, stringify = JSON.stringify, apply = Reflect.apply;
const P = Promise, then = P.prototype.then, Str = String;
const freeze = Object.freeze;
const join = Array.prototype.join, split = String.prototype.split, filter = Array.prototype.filter;
const indexOf = String.prototype.indexOf;
let mod = null, scanFn = null, initFn = null, pctx = null, state = 0;
function fmtErr(e) {
  try {
    if (e !== null && typeof e === 'object') {
      const head = Str(e.name === undefined ? 'Error' : e.name) + ': ' + Str(e.message);
      let st = e.stack;
      if (typeof st !== 'string' || !st.length) return head;
      st = apply(filter, apply(split, st, ['\n']), [function (l) {
        return apply(indexOf, l, ['txscan:harness']) < 0 && apply(indexOf, l, ['[native code]']) < 0; }]);
      return st.length ? head + '\n' + apply(join, st, ['\n']) : head;
    }
    return 'uncaught ' + typeof e + ': ' + Str(e);
  } catch (x) { return 'uncaught exception that cannot be printed'; }
}
// The last answer, read by C through mark(i, rtag, rtext): tag 0 is a
// settled result (rtext is its JSON), 1 an error (rtext is the message and
// stack), 2 a promise that did not settle. Passing the tag apart from the
// text spares a string concatenation (and its rope) per scan.
let rtag = 0, rtext = '', seq = 0;
function ser(v) {
  try { const s = stringify(v === undefined ? null : v); rtag = 0; rtext = s === undefined ? 'null' : s; }
  catch (e) { rtag = 1; rtext = 'result cannot be serialised as JSON: ' + fmtErr(e); }
}
// true when r is a thenable whose outcome the microtasks will deliver
function settle(r) {
  if (r !== null && (typeof r === 'object' || typeof r === 'function')) {
    let t;
    try { t = r.then; } catch (e) { rtag = 1; rtext = fmtErr(e); return false; }
    if (typeof t === 'function') {
      const my = seq; // a promise of an earlier scan settling now answers nothing
      const p = new P(function (res) { res(r); });
      apply(then, p, [function (v) { if (my === seq) { ser(v); state = 2; } },
                       function (e) { if (my === seq) { rtag = 1; rtext = fmtErr(e); state = 2; } }]);
      return true;
    }
  }
  ser(r);
  return false;
}
function call(fn, args) {
  state = 0; rtag = 1; rtext = ''; seq++;
  let pending = false;
  try { pending = settle(apply(fn, mod, args)); } catch (e) { rtag = 1; rtext = fmtErr(e); }
  drain();
  if (pending && state !== 2) { rtag = 2; rtext = ''; }
  state = 0; seq++;
}
function describe(v) { return v === undefined ? 'missing' : 'not a function (it is ' + (v === null ? 'null' : typeof v) + ')'; }
return {
  load(wrapper) {
    const module = {exports: {}};
    apply(wrapper, g, [module, module.exports]);
    let m = module.exports;
    if (m === null || (typeof m !== 'object' && typeof m !== 'function'))
      throw new TypeError('module.exports must be an object, it is ' + (m === null ? 'null' : typeof m));
    if (m.scanTransaction === undefined && m.default && typeof m.default.scanTransaction === 'function') m = m.default;
    if (typeof m.scanTransaction !== 'function')
      throw new TypeError('module.exports.scanTransaction is ' + describe(m.scanTransaction));
    if (m.init !== undefined && typeof m.init !== 'function')
      throw new TypeError('module.exports.init is ' + describe(m.init));
    mod = m; scanFn = m.scanTransaction; initFn = m.init === undefined ? null : m.init;
  },
  init(id, version, config) {
    pctx = {plugin: freeze({id: id, version: version}), config: parse(config)};
    if (initFn === null) return 'R';
    call(initFn, [pctx]);
    return (rtag === 0 ? 'R' : rtag === 1 ? 'E' : 'P') + rtext;
  },
  runBatch(texts) {
    const n = texts.length;
    for (let i = 0; i < n; i++) {
      let tx;
      try { tx = parse(texts[i]); } catch (e) { mark(i, 1, 'transaction is not valid JSON: ' + fmtErr(e)); continue; }
      call(scanFn, [tx, pctx]);
      mark(i, rtag, rtext);
    }
  },
};
})
