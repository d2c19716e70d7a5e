// The globals a txscan plugin has beyond ECMAScript (docs/plugins.md,
// "Globals"), for TypeScript projects compiled with "lib": ["es2022"] and
// "types": [] (no DOM, no Node): add this file to "files" or "include".
// With "lib": ["dom"] instead, leave it out (the DOM declares all of these,
// and more that txscan does not have).

declare var console: import('./txscan').TxscanConsole;

type BufferSource = ArrayBufferView | ArrayBuffer;

interface TextDecodeOptions { stream?: boolean }
interface TextDecoderOptions { fatal?: boolean; ignoreBOM?: boolean }
interface TextEncoderEncodeIntoResult { read: number; written: number }

/** UTF-8 only. */
declare class TextEncoder {
  readonly encoding: 'utf-8';
  encode(input?: string): Uint8Array;
  encodeInto(source: string, destination: Uint8Array): TextEncoderEncodeIntoResult;
}
/** UTF-8 only (its labels: "utf-8", "utf8", "unicode-1-1-utf-8", ...); others throw RangeError. */
declare class TextDecoder {
  constructor(label?: string, options?: TextDecoderOptions);
  readonly encoding: 'utf-8';
  readonly fatal: boolean;
  readonly ignoreBOM: boolean;
  decode(input?: BufferSource, options?: TextDecodeOptions): string;
}

/** Forgiving-base64; throws DOMException InvalidCharacterError. */
declare function atob(data: string): string;
declare function btoa(data: string): string;

interface StructuredSerializeOptions { transfer?: ArrayBuffer[] }
/** Map, Set, Date, RegExp, BigInt, ArrayBuffer and views, Errors, cycles; DataCloneError for functions. */
declare function structuredClone<T = any>(value: T, options?: StructuredSerializeOptions): T;
declare function queueMicrotask(callback: () => void): void;

/**
 * Timers run inside the execution that set them and count against its
 * timeout_ms; a timer still pending when the call settles never runs.
 */
declare function setTimeout<A extends any[]>(handler: (...args: A) => void, timeout?: number, ...args: A): number;
declare function clearTimeout(id: number | undefined): void;
declare function setInterval<A extends any[]>(handler: (...args: A) => void, timeout?: number, ...args: A): number;
declare function clearInterval(id: number | undefined): void;

interface Algorithm { name: string }
type AlgorithmIdentifier = Algorithm | string;
interface SubtleCrypto {
  /** SHA-1, SHA-256, SHA-384, SHA-512. */
  digest(algorithm: AlgorithmIdentifier, data: BufferSource): Promise<ArrayBuffer>;
}
interface Crypto {
  readonly subtle: SubtleCrypto;
  getRandomValues<T extends ArrayBufferView | null>(array: T): T;
  randomUUID(): `${string}-${string}-${string}-${string}-${string}`;
}
declare var crypto: Crypto;

interface Performance {
  readonly timeOrigin: number;
  now(): number;
}
declare var performance: Performance;

declare class DOMException extends Error {
  constructor(message?: string, name?: string);
  readonly code: number;
}

interface EventInit { bubbles?: boolean; cancelable?: boolean; composed?: boolean }
declare class Event {
  constructor(type: string, eventInitDict?: EventInit);
  readonly type: string;
  readonly bubbles: boolean;
  readonly cancelable: boolean;
  readonly composed: boolean;
  readonly defaultPrevented: boolean;
  readonly target: EventTarget | null;
  readonly currentTarget: EventTarget | null;
  readonly eventPhase: number;
  readonly timeStamp: number;
  readonly isTrusted: boolean;
  cancelBubble: boolean;
  readonly returnValue: boolean;
  composedPath(): EventTarget[];
  preventDefault(): void;
  stopPropagation(): void;
  stopImmediatePropagation(): void;
  static readonly NONE: 0;
  static readonly CAPTURING_PHASE: 1;
  static readonly AT_TARGET: 2;
  static readonly BUBBLING_PHASE: 3;
}
interface EventListener { (evt: Event): void }
interface EventListenerObject { handleEvent(object: Event): void }
type EventListenerOrEventListenerObject = EventListener | EventListenerObject;
interface AddEventListenerOptions { capture?: boolean; once?: boolean; passive?: boolean; signal?: AbortSignal }
declare class EventTarget {
  addEventListener(type: string, callback: EventListenerOrEventListenerObject | null, options?: AddEventListenerOptions | boolean): void;
  removeEventListener(type: string, callback: EventListenerOrEventListenerObject | null, options?: { capture?: boolean } | boolean): void;
  dispatchEvent(event: Event): boolean;
}

declare class AbortSignal extends EventTarget {
  private constructor();
  readonly aborted: boolean;
  readonly reason: any;
  onabort: ((this: AbortSignal, ev: Event) => any) | null;
  throwIfAborted(): void;
  static abort(reason?: any): AbortSignal;
  /** Aborts with a TimeoutError after ms, if the execution is still running then. */
  static timeout(milliseconds: number): AbortSignal;
  static any(signals: AbortSignal[]): AbortSignal;
}
declare class AbortController {
  readonly signal: AbortSignal;
  abort(reason?: any): void;
}
