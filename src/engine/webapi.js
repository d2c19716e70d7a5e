// webapi.js - the part of txscan's web globals whose shape is JavaScript's
// own: DOMException, Event, EventTarget, AbortController, AbortSignal,
// structuredClone's walk, and the TextEncoder/TextDecoder classes around
// the C codecs (n.encode, n.encodeInto, n.decode; n.now and n.setTimeout
// are performance.now and setTimeout, which the plugin may not have). Compiled only by an
// engine whose plugin reads one of these names (src/engine/webapi.c); the
// build embeds this file in the library.
(function (n) {
'use strict';
const { defineProperty, keys, getPrototypeOf } = Object;
const report = globalThis.console.error;

const codes = { IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4,
  InvalidCharacterError: 5, NoModificationAllowedError: 7, NotFoundError: 8,
  NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12, InvalidModificationError: 13,
  NamespaceError: 14, InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18,
  NetworkError: 19, AbortError: 20, URLMismatchError: 21, QuotaExceededError: 22,
  TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25 };

class DOMException extends Error {
  constructor(message = '', name = 'Error') {
    super(String(message));
    defineProperty(this, 'name', { value: String(name), writable: true, configurable: true });
  }
  get code() { return codes[this.name] || 0; }
}
for (const [k, v] of Object.entries(codes))
  defineProperty(DOMException, k.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()
    .replace(/_ERROR$/, '_ERR'), { value: v, enumerable: true });

// ---- Event and EventTarget -------------------------------------------------
let dispatching, setPhase;
class Event {
  #type; #bubbles; #cancelable; #composed; #ts;
  #canceled = false; #stop = false; #stopNow = false; #passive = false;
  #target = null; #current = null; #phase = 0; #active = false;
  constructor(type, init) {
    if (arguments.length === 0) throw new TypeError("Event: 1 argument required");
    this.#type = String(type);
    this.#bubbles = !!(init && init.bubbles);
    this.#cancelable = !!(init && init.cancelable);
    this.#composed = !!(init && init.composed);
    this.#ts = n.now();
  }
  get type() { return this.#type; }
  get bubbles() { return this.#bubbles; }
  get cancelable() { return this.#cancelable; }
  get composed() { return this.#composed; }
  get defaultPrevented() { return this.#canceled; }
  get returnValue() { return !this.#canceled; }
  get target() { return this.#target; }
  get srcElement() { return this.#target; }
  get currentTarget() { return this.#current; }
  get eventPhase() { return this.#phase; }
  get timeStamp() { return this.#ts; }
  get isTrusted() { return false; }
  get cancelBubble() { return this.#stop; }
  set cancelBubble(v) { if (v) this.#stop = true; }
  preventDefault() { if (this.#cancelable && !this.#passive) this.#canceled = true; }
  stopPropagation() { this.#stop = true; }
  stopImmediatePropagation() { this.#stop = this.#stopNow = true; }
  composedPath() { return this.#current ? [this.#current] : []; }
  static {
    dispatching = (ev) => ev.#active;
    // phase 2: at target (begin), 0: done; passive per listener; returns stopNow
    setPhase = (ev, target, phase, passive) => {
      ev.#passive = !!passive;
      if (phase === 2) { ev.#active = true; ev.#target = target; ev.#current = target; }
      if (phase === 0) { ev.#active = false; ev.#current = null; ev.#stop = ev.#stopNow = false; }
      ev.#phase = phase;
      return ev.#stopNow;
    };
  }
}
for (const [i, k] of ['NONE', 'CAPTURING_PHASE', 'AT_TARGET', 'BUBBLING_PHASE'].entries()) {
  defineProperty(Event, k, { value: i, enumerable: true });
  defineProperty(Event.prototype, k, { value: i, enumerable: true });
}

function flag(options, name) {
  return typeof options === 'object' && options !== null && !!options[name];
}

class EventTarget {
  #listeners = new Map();
  addEventListener(type, callback, options) {
    if (callback == null) return;
    const capture = typeof options === 'boolean' ? options : flag(options, 'capture');
    const signal = typeof options === 'object' && options !== null ? options.signal : undefined;
    if (signal !== undefined && !(signal instanceof AbortSignal))
      throw new TypeError("addEventListener: options.signal is not an AbortSignal");
    if (signal && signal.aborted) return;
    type = String(type);
    let list = this.#listeners.get(type);
    if (!list) this.#listeners.set(type, list = []);
    if (list.some((l) => l.callback === callback && l.capture === capture)) return;
    list.push({ callback, capture, once: flag(options, 'once'), passive: flag(options, 'passive'),
      removed: false });
    if (signal) signal.addEventListener('abort', () => this.removeEventListener(type, callback, capture));
  }
  removeEventListener(type, callback, options) {
    const capture = typeof options === 'boolean' ? options : flag(options, 'capture');
    const list = this.#listeners.get(String(type));
    if (!list) return;
    const i = list.findIndex((l) => l.callback === callback && l.capture === capture);
    if (i >= 0) { list[i].removed = true; list.splice(i, 1); }
  }
  dispatchEvent(event) {
    if (!(event instanceof Event)) throw new TypeError("dispatchEvent: the argument is not an Event");
    if (dispatching(event)) throw new DOMException('The event is already being dispatched.', 'InvalidStateError');
    setPhase(event, this, 2);
    const list = this.#listeners.get(event.type);
    try {
      for (const l of list ? list.slice() : []) {
        if (l.removed) continue;
        if (l.once) this.removeEventListener(event.type, l.callback, l.capture);
        setPhase(event, this, 2, l.passive);
        try {
          if (typeof l.callback === 'function') l.callback.call(this, event);
          else if (l.callback && typeof l.callback.handleEvent === 'function') l.callback.handleEvent(event);
        } catch (err) {
          report(err);
        }
        if (setPhase(event, this, 2, false)) break;
      }
    } finally {
      setPhase(event, this, 0);
    }
    return !event.defaultPrevented;
  }
}

// ---- AbortController and AbortSignal ------------------------------------------
const token = Symbol('txscan');
let abort;
class AbortSignal extends EventTarget {
  #aborted = false; #reason = undefined; #onabort = null;
  constructor(key) {
    if (key !== token) throw new TypeError('Illegal constructor');
    super();
  }
  get aborted() { return this.#aborted; }
  get reason() { return this.#reason; }
  get onabort() { return this.#onabort; }
  set onabort(f) {
    if (this.#onabort) this.removeEventListener('abort', this.#onabort);
    this.#onabort = typeof f === 'function' ? f : null;
    if (this.#onabort) this.addEventListener('abort', this.#onabort);
  }
  throwIfAborted() { if (this.#aborted) throw this.#reason; }
  static abort(reason) { const s = new AbortSignal(token); abort(s, reason); return s; }
  static timeout(ms) {
    const s = new AbortSignal(token);
    n.setTimeout(() => abort(s, new DOMException('The operation timed out.', 'TimeoutError')), ms);
    return s;
  }
  static any(signals) {
    const s = new AbortSignal(token);
    for (const x of signals) if (x.aborted) { abort(s, x.reason); return s; }
    for (const x of signals) x.addEventListener('abort', () => abort(s, x.reason));
    return s;
  }
  static {
    abort = (s, reason) => {
      if (s.#aborted) return;
      s.#aborted = true;
      s.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      s.dispatchEvent(new Event('abort'));
    };
  }
}

class AbortController {
  #signal = new AbortSignal(token);
  get signal() { return this.#signal; }
  abort(reason) { abort(this.#signal, reason); }
}

// ---- TextEncoder and TextDecoder (UTF-8 only) -----------------------------------
class TextEncoder {
  get encoding() { return 'utf-8'; }
  encode(input = '') { return n.encode(String(input)); }
  encodeInto(source, destination) {
    const r = n.encodeInto(String(source), destination);
    return { read: r[0], written: r[1] };
  }
}

const labels = ['unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'utf-8', 'utf8',
  'x-unicode20utf8'];
function view(input) {
  if (input === undefined) return new Uint8Array(0);
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new TypeError("TextDecoder.decode: the input is not an ArrayBuffer or a view on one");
}
class TextDecoder {
  #fatal; #ignoreBOM; #pending = null; #started = false;
  constructor(label = 'utf-8', options = undefined) {
    const l = String(label).trim().toLowerCase();
    if (!labels.includes(l))
      throw new RangeError(`TextDecoder: the encoding "${label}" is not supported (txscan decodes UTF-8 only)`);
    this.#fatal = flag(options, 'fatal');
    this.#ignoreBOM = flag(options, 'ignoreBOM');
  }
  get encoding() { return 'utf-8'; }
  get fatal() { return this.#fatal; }
  get ignoreBOM() { return this.#ignoreBOM; }
  decode(input = undefined, options = undefined) {
    const stream = flag(options, 'stream');
    let bytes = view(input);
    if (this.#pending) {
      const all = new Uint8Array(this.#pending.length + bytes.length);
      all.set(this.#pending);
      all.set(bytes, this.#pending.length);
      bytes = all;
    }
    let r;
    try {
      r = n.decode(bytes, this.#fatal, !stream);
    } catch (err) {
      this.#pending = null;
      this.#started = false;
      throw err;
    }
    let s = r[0];
    this.#pending = r[1] ? bytes.slice(bytes.length - r[1]) : null;
    if (!this.#started && s.length) {
      this.#started = true;
      if (!this.#ignoreBOM && s.charCodeAt(0) === 0xFEFF) s = s.slice(1);
    }
    if (!stream) { this.#pending = null; this.#started = false; }
    return s;
  }
}

// ---- structuredClone (HTML's StructuredSerialize, in one realm) ------------------
const typed = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array,
  Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array];
const errors = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
const getTime = Date.prototype.getTime;
const mapEntries = Map.prototype.entries, setValues = Set.prototype.values;
const refused = [Promise, WeakMap, WeakSet, WeakRef, EventTarget, Event];

function structuredClone(value, options = undefined) {
  if (arguments.length === 0) throw new TypeError('structuredClone: 1 argument required');
  const memo = new Map();
  // A transferred buffer is copied when the walk meets it, and every one is
  // detached at the end: detached during the walk, the views on it read as
  // detached (a typed array as empty, a DataView throws) and were cloned
  // empty. (Its bytes are copied rather than moved: nothing a plugin can
  // tell apart.)
  const pending = {};
  const transfer = options && options.transfer;
  if (transfer) {
    for (const b of transfer) {
      if (!(b instanceof ArrayBuffer)) throw new DOMException('Value not transferable', 'DataCloneError');
      if (memo.has(b)) throw new DOMException('ArrayBuffer transferred twice', 'DataCloneError');
      memo.set(b, pending);
    }
  }
  const fail = (v) => {
    throw new DOMException(`${typeof v === 'function' ? 'function ' + (v.name || '(anonymous)')
      : typeof v === 'symbol' ? v.toString() : Object.prototype.toString.call(v)} could not be cloned.`,
    'DataCloneError');
  };
  const props = (from, to) => {
    for (const k of keys(from)) to[k] = clone(from[k]);
    return to;
  };
  function clone(v) {
    const t = typeof v;
    if (t === 'function' || t === 'symbol') fail(v);
    if (t !== 'object' || v === null) return v;
    if (memo.has(v)) {
      if (memo.get(v) === pending) memo.set(v, v.slice(0));
      return memo.get(v);
    }
    let out;
    if (Array.isArray(v)) {
      out = new Array(v.length);
      memo.set(v, out);
      return props(v, out);
    }
    if (v instanceof Date) { try { out = new Date(getTime.call(v)); } catch { fail(v); } }
    else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
    else if (v instanceof Boolean) out = new Boolean(Boolean.prototype.valueOf.call(v));
    else if (v instanceof Number) out = new Number(Number.prototype.valueOf.call(v));
    else if (v instanceof String) out = new String(String.prototype.valueOf.call(v));
    else if (v instanceof BigInt) out = Object(BigInt.prototype.valueOf.call(v));
    else if (v instanceof ArrayBuffer) out = v.slice(0);
    else if (ArrayBuffer.isView(v)) {
      const buf = clone(v.buffer);
      if (v instanceof DataView) out = new DataView(buf, v.byteOffset, v.byteLength);
      else {
        const C = typed.find((c) => v instanceof c);
        out = new C(buf, v.byteOffset, v.length);
      }
    } else if (v instanceof Map) {
      out = new Map();
      memo.set(v, out);
      for (const [k, x] of mapEntries.call(v)) out.set(clone(k), clone(x));
      return out;
    } else if (v instanceof Set) {
      out = new Set();
      memo.set(v, out);
      for (const x of setValues.call(v)) out.add(clone(x));
      return out;
    } else if (v instanceof Error) {
      const name = Object.hasOwn(errors, v.name) ? v.name : 'Error';
      out = new errors[name](v.message === undefined ? undefined : String(v.message));
      memo.set(v, out); /* before its cause, which may be itself */
      if (typeof v.stack === 'string') defineProperty(out, 'stack', { value: v.stack, writable: true, configurable: true });
      if ('cause' in v) defineProperty(out, 'cause', { value: clone(v.cause), writable: true, configurable: true });
    } else if (refused.some((c) => v instanceof c)) {
      fail(v);
    } else {
      out = {};
      memo.set(v, out);
      return props(v, out);
    }
    memo.set(v, out);
    return out;
  }
  const out = clone(value);
  if (transfer) /* every one is detached, also those the walk did not meet */
    for (const b of transfer) b.transfer();
  return out;
}

return { DOMException, Event, EventTarget, AbortController, AbortSignal, TextEncoder,
  TextDecoder, structuredClone };
})
