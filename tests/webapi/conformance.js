// Conformance checks of txscan's web globals against what each standard
// says (WHATWG Encoding, HTML's forgiving-base64 and structured clone,
// DOM events and abort signals, Web Crypto). scanTransaction({t}) runs
// group t and returns the failed checks (an empty array when all pass);
// tests/test_webapi.c runs every group.
const fails = [];
function eq(what, got, want) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) fails.push(`${what}: got ${g}, want ${w}`);
}
function throws(what, f, name) {
  try { f(); fails.push(`${what}: did not throw`); }
  catch (e) { if (e.name !== name) fails.push(`${what}: threw ${e.name} (${e.message}), want ${name}`); }
}
const bytes = (a) => new Uint8Array(a);
const codes = (s) => Array.from(s, (c) => c.codePointAt(0).toString(16));
const dec = (a, opt) => new TextDecoder('utf-8', opt).decode(bytes(a));

const groups = {
  utf8_decode() {
    eq('ascii', dec([0x68, 0x69]), 'hi');
    eq('2/3/4-byte', codes(dec([0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80])), ['e9', '20ac', '1f600']);
    // invalid sequences: one U+FFFD per maximal subpart (Encoding §8.1.1)
    eq('lone continuation', codes(dec([0x80])), ['fffd']);
    eq('overlong C0 80', codes(dec([0xC0, 0x80])), ['fffd', 'fffd']);
    eq('overlong E0 80 80', codes(dec([0xE0, 0x80, 0x80])), ['fffd', 'fffd', 'fffd']);
    eq('surrogate ED A0 80', codes(dec([0xED, 0xA0, 0x80])), ['fffd', 'fffd', 'fffd']);
    eq('above U+10FFFF', codes(dec([0xF4, 0x90, 0x80, 0x80])), ['fffd', 'fffd', 'fffd', 'fffd']);
    eq('F5 and FF', codes(dec([0xF5, 0xFF])), ['fffd', 'fffd']);
    eq('truncated 3-byte then ascii', codes(dec([0xE2, 0x82, 0x41])), ['fffd', '41']);
    eq('truncated at end', codes(dec([0xF0, 0x9F, 0x98])), ['fffd']);
    throws('fatal', () => dec([0xFF], { fatal: true }), 'TypeError');
    throws('fatal truncated', () => dec([0xE2, 0x82], { fatal: true }), 'TypeError');
    eq('fatal valid', dec([0x61], { fatal: true }), 'a');
    // BOM
    eq('BOM stripped', codes(dec([0xEF, 0xBB, 0xBF, 0x61])), ['61']);
    eq('ignoreBOM keeps it', codes(dec([0xEF, 0xBB, 0xBF, 0x61], { ignoreBOM: true })), ['feff', '61']);
    eq('only the first BOM', codes(dec([0xEF, 0xBB, 0xBF, 0xEF, 0xBB, 0xBF])), ['feff']);
    // stream
    const d = new TextDecoder();
    let s = d.decode(bytes([0xEF, 0xBB]), { stream: true });
    s += d.decode(bytes([0xBF, 0xE2, 0x82]), { stream: true });
    s += d.decode(bytes([0xAC]), { stream: true });
    s += d.decode();
    eq('stream split BOM and euro', codes(s), ['20ac']);
    eq('stream end flushes', codes(new TextDecoder().decode(bytes([0xE2]), { stream: true }) + ''), []);
    const d2 = new TextDecoder();
    d2.decode(bytes([0xE2]), { stream: true });
    eq('flush of pending', codes(d2.decode()), ['fffd']);
    eq('decoder reusable', d2.decode(bytes([0x61])), 'a');
    // inputs and labels
    eq('ArrayBuffer', new TextDecoder().decode(bytes([0x61, 0x62]).buffer), 'ab');
    eq('DataView', new TextDecoder().decode(new DataView(bytes([0x61, 0x62, 0x63]).buffer, 1)), 'bc');
    eq('no input', new TextDecoder().decode(), '');
    eq('labels', [new TextDecoder('UTF8').encoding, new TextDecoder(' unicode-1-1-utf-8 ').encoding], ['utf-8', 'utf-8']);
    throws('unsupported label', () => new TextDecoder('latin1'), 'RangeError');
    eq('attributes', [new TextDecoder('utf-8', { fatal: true }).fatal, new TextDecoder().ignoreBOM], [true, false]);
  },
  utf8_encode() {
    const e = new TextEncoder();
    eq('encoding', e.encoding, 'utf-8');
    eq('euro', Array.from(e.encode('€')), [0xE2, 0x82, 0xAC]);
    eq('pair', Array.from(e.encode('\u{1F600}')), [0xF0, 0x9F, 0x98, 0x80]);
    eq('lone surrogates', Array.from(e.encode('\uD800a\uDC00')), [0xEF, 0xBF, 0xBD, 0x61, 0xEF, 0xBF, 0xBD]);
    eq('no argument', e.encode().length, 0);
    eq('is Uint8Array', e.encode('a') instanceof Uint8Array, true);
    const buf = new Uint8Array(4);
    eq('encodeInto partial', e.encodeInto('a€b', buf), { read: 2, written: 4 });
    eq('encodeInto no split', e.encodeInto('€', new Uint8Array(2)), { read: 0, written: 0 });
    eq('round trip', new TextDecoder().decode(e.encode('héllo \u{1F600}')), 'héllo \u{1F600}');
  },
  base64() {
    eq('btoa', [btoa(''), btoa('f'), btoa('fo'), btoa('foo'), btoa('\xff\xfe')], ['', 'Zg==', 'Zm8=', 'Zm9v', '//4=']);
    throws('btoa above latin1', () => btoa('€'), 'InvalidCharacterError');
    eq('atob', [atob('Zg=='), atob('Zm8='), atob('Zm9v'), atob('')], ['f', 'fo', 'foo', '']);
    eq('atob no padding', [atob('Zg'), atob('Zm8')], ['f', 'fo']);
    eq('atob whitespace', atob(' Zm\t9v\n\f\r'), 'foo');
    eq('atob binary', codes(atob('//4=')), ['ff', 'fe']);
    throws('atob length 4n+1', () => atob('Zm9vY'), 'InvalidCharacterError');
    throws('atob bad char', () => atob('Zm9v!'), 'InvalidCharacterError');
    throws('atob padding in the middle', () => atob('Zg==Zg=='), 'InvalidCharacterError');
    throws('atob three =', () => atob('Z==='), 'InvalidCharacterError');
    throws('atob url-safe', () => atob('-_8='), 'InvalidCharacterError');
    throws('atob non-ASCII space', () => atob('Zm9v\u00a0'), 'InvalidCharacterError');
    eq('atob coerces', atob(null), '\x9e\xe9e');
    try { atob('*'); } catch (e) { eq('DOMException', [e instanceof DOMException, e instanceof Error, e.code], [true, true, 5]); }
  },
  clone() {
    const sc = structuredClone;
    eq('primitives', [sc(1), sc('s'), sc(null), sc(undefined), sc(true), sc(-0) === 0 && 1 / sc(-0)], [1, 's', null, undefined, true, -Infinity]);
    eq('bigint', sc(12345678901234567890n) === 12345678901234567890n, true);
    const d = new Date(86400000);
    eq('Date', [sc(d) instanceof Date, sc(d).getTime(), sc(d) !== d], [true, 86400000, true]);
    const r = sc(/a+b/gi);
    eq('RegExp', [r instanceof RegExp, r.source, r.flags], [true, 'a+b', 'gi']);
    const m = sc(new Map([['k', { v: 1 }], [1, 2]]));
    eq('Map', [m instanceof Map, m.get('k').v, m.get(1), m.size], [true, 1, 2, 2]);
    const s = sc(new Set([1, 'a']));
    eq('Set', [s instanceof Set, s.has(1), s.has('a')], [true, true, true]);
    const u8 = sc(new Uint8Array([1, 2, 3]).subarray(1));
    eq('typed array view', [u8 instanceof Uint8Array, Array.from(u8), u8.byteOffset, u8.buffer.byteLength], [true, [2, 3], 1, 3]);
    eq('BigInt64Array', sc(new BigInt64Array([5n]))[0] === 5n, true);
    const f64 = sc(new Float64Array([1.5]));
    eq('Float64Array', [f64 instanceof Float64Array, f64[0]], [true, 1.5]);
    const ab = new ArrayBuffer(2);
    eq('ArrayBuffer', [sc(ab) instanceof ArrayBuffer, sc(ab) !== ab, sc(ab).byteLength], [true, true, 2]);
    const dv = sc(new DataView(new ArrayBuffer(4), 1, 2));
    eq('DataView', [dv instanceof DataView, dv.byteOffset, dv.byteLength], [true, 1, 2]);
    const shared = new Uint8Array(4);
    const two = sc({ a: new Uint8Array(shared.buffer, 0, 2), b: new Uint8Array(shared.buffer, 2, 2) });
    eq('one buffer shared by two views', two.a.buffer === two.b.buffer, true);
    const err = sc(new RangeError('r'));
    eq('Error', [err instanceof RangeError, err.message, typeof err.stack], [true, 'r', 'string']);
    const cyc = { n: 1 }; cyc.self = cyc; cyc.list = [cyc];
    const c2 = sc(cyc);
    eq('cycles', [c2.self === c2, c2.list[0] === c2, c2 !== cyc], [true, true, true]);
    eq('wrappers', [sc(Object(1n)) instanceof BigInt, typeof sc(new String('x')), sc(new Number(3)).valueOf()], [true, 'object', 3]);
    class K { constructor() { this.x = 1; } m() {} }
    const k = sc(new K());
    eq('class instance to plain object', [Object.getPrototypeOf(k) === Object.prototype, k.x], [true, 1]);
    eq('array holes and props', sc([1, , 3]).length, 3);
    throws('function', () => sc(() => 1), 'DataCloneError');
    throws('nested function', () => sc({ f() {} }), 'DataCloneError');
    throws('symbol', () => sc(Symbol('s')), 'DataCloneError');
    throws('Promise', () => sc(Promise.resolve()), 'DataCloneError');
    throws('WeakMap', () => sc(new WeakMap()), 'DataCloneError');
    try { sc(() => 1); } catch (e) { eq('DataCloneError code', [e instanceof DOMException, e.code], [true, 25]); }
    const t = new ArrayBuffer(8);
    const moved = sc(t, { transfer: [t] });
    eq('transfer detaches', [moved.byteLength, t.byteLength], [8, 0]);
    // a view whose buffer is transferred keeps its place and bytes (the buffer
    // was moved first, and the views came back empty)
    const tb = new Uint8Array([9, 1, 2, 3, 4, 0]).buffer;
    const views = sc({ u8: new Uint8Array(tb, 1, 4), dv: new DataView(tb, 2, 3) }, { transfer: [tb] });
    eq('views over a transferred buffer', [Array.from(views.u8), views.dv.byteOffset, views.dv.byteLength,
      views.dv.getUint8(0), views.u8.buffer === views.dv.buffer, tb.byteLength], [[1, 2, 3, 4], 2, 3, 2, true, 0]);
    const notMet = new ArrayBuffer(4);
    sc(1, { transfer: [notMet] });
    eq('a transferred buffer the value does not hold is detached too', notMet.byteLength, 0);
    const self = new Error('e'); self.cause = self;
    const sc2 = sc(self);
    eq('an Error whose cause is itself', sc2.cause === sc2, true);
    throws('no argument', () => sc(), 'TypeError');
  },
  events() {
    const t = new EventTarget();
    const seen = [];
    const h = (e) => seen.push(['h', e.type, e.target === t, e.currentTarget === t, e.eventPhase]);
    t.addEventListener('x', h);
    t.addEventListener('x', h); // a duplicate is ignored
    t.addEventListener('x', { handleEvent(e) { seen.push(['obj', e.type]); } });
    t.addEventListener('x', () => seen.push(['once']), { once: true });
    const ev = new Event('x', { cancelable: true });
    eq('dispatch returns', t.dispatchEvent(ev), true);
    t.dispatchEvent(new Event('x'));
    eq('listeners', seen, [['h', 'x', true, true, 2], ['obj', 'x'], ['once'], ['h', 'x', true, true, 2], ['obj', 'x']]);
    eq('after dispatch', [ev.eventPhase, ev.currentTarget, ev.target === t], [0, null, true]);
    t.removeEventListener('x', h);
    const c = new EventTarget();
    c.addEventListener('y', (e) => e.preventDefault());
    eq('preventDefault', c.dispatchEvent(new Event('y', { cancelable: true })), false);
    eq('not cancelable', c.dispatchEvent(new Event('y')), true);
    const p = new EventTarget();
    p.addEventListener('z', (e) => e.preventDefault(), { passive: true });
    eq('passive', p.dispatchEvent(new Event('z', { cancelable: true })), true);
    const s = new EventTarget(), order = [];
    s.addEventListener('w', (e) => { order.push(1); e.stopImmediatePropagation(); });
    s.addEventListener('w', () => order.push(2));
    s.dispatchEvent(new Event('w'));
    eq('stopImmediatePropagation', order, [1]);
    throws('not an Event', () => s.dispatchEvent({ type: 'w' }), 'TypeError');
    throws('Event needs a type', () => new Event(), 'TypeError');
    class Custom extends Event { constructor() { super('custom'); this.detail = 7; } }
    let got = 0;
    s.addEventListener('custom', (e) => { got = e.detail; });
    s.dispatchEvent(new Custom());
    eq('subclass', got, 7);
    eq('constants', [Event.AT_TARGET, Event.BUBBLING_PHASE], [2, 3]);
  },
  abort() {
    const ac = new AbortController();
    const log = [];
    ac.signal.addEventListener('abort', (e) => log.push(e.type));
    ac.signal.onabort = () => log.push('onabort');
    eq('before', [ac.signal.aborted, ac.signal.reason], [false, undefined]);
    ac.abort();
    ac.abort(); // a second abort does nothing
    eq('events', log, ['abort', 'onabort']);
    eq('reason', [ac.signal.aborted, ac.signal.reason instanceof DOMException, ac.signal.reason.name], [true, true, 'AbortError']);
    throws('throwIfAborted', () => ac.signal.throwIfAborted(), 'AbortError');
    const a2 = new AbortController();
    a2.abort(new RangeError('why'));
    eq('custom reason', a2.signal.reason.message, 'why');
    eq('AbortSignal.abort', [AbortSignal.abort().aborted, AbortSignal.abort(5).reason], [true, 5]);
    const any = AbortSignal.any([new AbortController().signal, a2.signal]);
    eq('AbortSignal.any', [any.aborted, any.reason.message], [true, 'why']);
    throws('no constructor', () => new AbortSignal(), 'TypeError');
    eq('is an EventTarget', ac.signal instanceof EventTarget, true);
    const a3 = new AbortController(), t = new EventTarget();
    let n = 0;
    t.addEventListener('q', () => n++, { signal: a3.signal });
    t.dispatchEvent(new Event('q'));
    a3.abort();
    t.dispatchEvent(new Event('q'));
    eq('listener removed by its signal', n, 1);
  },
  async crypto() {
    const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
    const abc = new TextEncoder().encode('abc');
    eq('SHA-1', hex(await crypto.subtle.digest('SHA-1', abc)), 'a9993e364706816aba3e25717850c26c9cd0d89d');
    eq('SHA-256', hex(await crypto.subtle.digest({ name: 'sha-256' }, abc)), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    eq('SHA-384', hex(await crypto.subtle.digest('SHA-384', abc.buffer)), 'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7');
    eq('SHA-512 of nothing', hex(await crypto.subtle.digest('SHA-512', new Uint8Array(0))).slice(0, 16), 'cf83e1357eefb8bd');
    eq('digest is an ArrayBuffer', (await crypto.subtle.digest('SHA-1', abc)) instanceof ArrayBuffer, true);
    try { await crypto.subtle.digest('MD5', abc); fails.push('MD5 resolved'); }
    catch (e) { eq('MD5 rejects', e.name, 'NotSupportedError'); }
    const r = crypto.getRandomValues(new Uint32Array(8));
    eq('getRandomValues returns its argument', r instanceof Uint32Array && r.length, 8);
    eq('getRandomValues fills', r.some((x) => x !== 0), true);
    throws('getRandomValues float', () => crypto.getRandomValues(new Float64Array(1)), 'TypeMismatchError');
    throws('getRandomValues quota', () => crypto.getRandomValues(new Uint8Array(65537)), 'QuotaExceededError');
    const u = crypto.randomUUID();
    eq('randomUUID', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(u), true);
    eq('randomUUID differs', u !== crypto.randomUUID(), true);
  },
  // A view's bytes are its own, whatever its properties say: a DataView
  // that redefined byteOffset and byteLength (or whose prototype's getters
  // were replaced) made the host read past its buffer (a crash, or the
  // host's memory in the digest); a view past a shrunk buffer is empty.
  // (TextDecoder takes its bytes in JavaScript, in the plugin's realm: a
  // view that lies there fools only its own plugin, through checked views.)
  async views() {
    const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
    const sha = async (v) => hex(await crypto.subtle.digest('SHA-256', v));
    const zeros16 = await sha(new Uint8Array(16));
    const dv = new DataView(new ArrayBuffer(16));
    Object.defineProperty(dv, 'byteOffset', { value: 2 ** 40 });
    Object.defineProperty(dv, 'byteLength', { value: 4096 });
    eq('digest of a DataView that lies', await sha(dv), zeros16);
    const buf = new Uint8Array([0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68]).buffer;
    const mid = new DataView(buf, 2, 3);
    const cde = await sha(new TextEncoder().encode('cde'));
    Object.defineProperty(mid, 'buffer', { value: new ArrayBuffer(1 << 20) });
    eq('digest of a DataView whose buffer lies', await sha(mid), cde);
    const proto = Object.getOwnPropertyDescriptor(DataView.prototype, 'byteLength');
    Object.defineProperty(DataView.prototype, 'byteLength', { get() { return 1 << 30; }, configurable: true });
    eq('digest with DataView.prototype.byteLength replaced', await sha(new DataView(buf, 2, 3)), cde);
    Object.defineProperty(DataView.prototype, 'byteLength', proto);
    try { await crypto.subtle.digest('SHA-256', Object.create(DataView.prototype)); fails.push('a fake DataView was digested'); }
    catch (e) { eq('a fake DataView', e.name, 'TypeError'); }
    const rb = new ArrayBuffer(16, { maxByteLength: 32 });
    const tail = new DataView(rb, 8, 8);
    rb.resize(4);
    eq('a view past its shrunk buffer is empty', await sha(tail), await sha(new Uint8Array(0)));
  },
  // Strings the codecs copy out of the VM are bounded: by what the
  // destination takes (encodeInto), by the longest name (digest), by the
  // plugin's heap limit (atob, btoa, encode: 64 MB here). A rope of 2^26
  // characters costs the heap little, and each of these took the host
  // gigabytes for 2^29.
  async big_strings() {
    let big = 'A'.repeat(1 << 14);
    for (let i = 0; i < 12; i++) big = big + big;
    eq('length', big.length, 1 << 26);
    eq('encodeInto takes what fits', new TextEncoder().encodeInto(big, new Uint8Array(16)), { read: 16, written: 16 });
    throws('atob', () => atob(big), 'RangeError');
    throws('btoa', () => btoa(big), 'RangeError');
    throws('encode', () => new TextEncoder().encode(big), 'RangeError');
    try { await crypto.subtle.digest({ name: big }, new Uint8Array(1)); fails.push('digest resolved'); }
    catch (e) { eq('digest of a long name', e.name, 'NotSupportedError'); }
    throws('atob(undefined) is atob("undefined")', () => atob(undefined), 'InvalidCharacterError');
    eq('btoa(12)', btoa(12), 'MTI=');
  },
  // A delay whose valueOf sets a timer itself: the timer table grows for
  // both (the outer call took a slot checked before the valueOf ran, and
  // wrote past the table: a crash); a valueOf that throws throws.
  timer_reentry() {
    const f = () => {};
    const ids = [];
    for (let i = 0; i < 300; i++)
      ids.push(setTimeout(f, { valueOf() { ids.push(setTimeout(f, 1e9)); return 1e9; } }));
    eq('ids', new Set(ids).size, 600);
    ids.forEach((id) => clearTimeout(id));
    throws('a delay that throws', () => setTimeout(f, { valueOf() { throw new RangeError('no'); } }), 'RangeError');
  },
  async timers() {
    const order = [];
    setTimeout(() => order.push('t250'), 250); // after the 2 ms interval's three runs, even on a slow build
    const cancelled = setTimeout(() => order.push('cancelled'), 1);
    setTimeout((a, b) => order.push('t0' + a + b), 0, 'x', 'y');
    setTimeout(() => order.push('t0b'), 0);
    queueMicrotask(() => order.push('micro'));
    Promise.resolve().then(() => order.push('promise'));
    clearTimeout(cancelled);
    let n = 0;
    const iv = setInterval(() => { order.push('i' + ++n); if (n === 3) clearInterval(iv); }, 2);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 300));
    const waited = performance.now() - t0;
    eq('order', order, ['micro', 'promise', 't0xy', 't0b', 'i1', 'i2', 'i3', 't250']);
    eq('waited', waited >= 299 && waited < 1500, true);
    eq('ids are numbers', typeof setTimeout(() => {}, 0), 'number');
    throws('string callback', () => setTimeout('1+1', 0), 'TypeError');
    const sig = AbortSignal.timeout(1);
    await new Promise((r) => setTimeout(r, 5));
    eq('AbortSignal.timeout', [sig.aborted, sig.reason.name], [true, 'TimeoutError']);
    eq('performance', [typeof performance.timeOrigin, performance.timeOrigin > 1.6e12], ['number', true]);
  },
  globals() {
    const names = ['TextEncoder', 'TextDecoder', 'atob', 'btoa', 'structuredClone', 'queueMicrotask',
      'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'crypto', 'performance',
      'DOMException', 'Event', 'EventTarget', 'AbortController', 'AbortSignal'];
    eq('present', names.filter((k) => !(k in globalThis)), []);
    eq('not enumerable', Object.keys(globalThis).filter((k) => names.includes(k)), []);
    eq('refused', [typeof fetch, typeof process, typeof require, typeof WebAssembly, typeof XMLHttpRequest], ['undefined', 'undefined', 'undefined', 'undefined', 'undefined']);
    throws('eval', () => eval('1'), 'EvalError');
    throws('Function', () => Function('return 1'), 'EvalError');
  },
  polyfill() {
    // a library's polyfill assigns before reading: its value wins
    globalThis.TextEncoder = function Mine() {};
    eq('assigned', TextEncoder.name, 'Mine');
    globalThis.atob = globalThis.atob || null;
    eq('read then assign', typeof atob, 'function');
    delete globalThis.btoa;
    eq('deletable', typeof btoa, 'undefined');
  },
};

module.exports = {
  async scanTransaction(tx) {
    fails.length = 0;
    await groups[tx.t]();
    return fails;
  },
};
