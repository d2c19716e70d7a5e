// Type definitions for txscan plugins (see docs/plugins.md).
//
// A plugin's main file is CommonJS:
//
//   /** @type {import('../../types/txscan').Plugin<MyConfig>} */
//   module.exports = { init(ctx) {...}, scanTransaction(tx, ctx) {...} };
//
// or an ES module, or TypeScript:
//
//   import type { Plugin } from './txscan';
//   const plugin: Plugin<MyConfig> = { scanTransaction(tx, ctx) {...} };
//   export default plugin;
//
// Plugins run on ECMAScript plus the web globals that need no I/O
// (txscan-globals.d.ts declares them): compile with "lib": ["es2022"],
// "types": [] and txscan-globals.d.ts in "files", so that Node's APIs (and
// the DOM's, which txscan does not have) do not type-check.

/** A hex string as JSON-RPC uses it: "0x"-prefixed, but do not count on that. */
export type Hex = string;

/** A JSON-RPC quantity: normally a hex string ("0x1a"), sometimes a number. */
export type Quantity = Hex | number;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** The five severities, lowest first. A report's verdict is the highest one found. */
export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';

export interface AccessListEntry {
  address: Hex;
  storageKeys: Hex[];
}

/** EIP-7702 authorization tuple (type 0x4 transactions). */
export interface Authorization {
  chainId: Quantity;
  address: Hex;
  nonce: Quantity;
  yParity?: Quantity;
  v?: Quantity;
  r: Hex;
  s: Hex;
}

/**
 * One EVM transaction, parsed from the input JSON as is: txscan does not
 * normalise it. Every field may be missing or malformed; read defensively
 * (see docs/plugins.md, "The transaction object").
 */
export interface Transaction {
  /** Transaction hash; the report's "tx" field comes from hash, else id. */
  hash?: Hex;
  id?: string;
  from?: Hex;
  /** null, missing, "" or "0x" for a contract creation (some feeds use the zero address). */
  to?: Hex | null;
  /** Wei. Usually "0x..."; seen without the prefix, as "0x", or as a number. */
  value?: Quantity;
  /** Calldata as eth_getTransactionByHash names it. */
  input?: Hex;
  /** Calldata as eth_sendTransaction names it. Read input, then data. */
  data?: Hex;
  gas?: Quantity;
  gasLimit?: Quantity;
  gasPrice?: Quantity;
  maxFeePerGas?: Quantity;
  maxPriorityFeePerGas?: Quantity;
  maxFeePerBlobGas?: Quantity;
  nonce?: Quantity;
  chainId?: Quantity;
  /** "0x0" legacy, "0x1" EIP-2930, "0x2" EIP-1559, "0x3" blob, "0x4" EIP-7702. */
  type?: Quantity;
  accessList?: AccessListEntry[];
  authorizationList?: Authorization[];
  blockNumber?: Quantity | null;
  blockHash?: Hex | null;
  transactionIndex?: Quantity | null;
  /**
   * Set by `txscan follow` and `txscan scan --rpc` (docs/chains.md): the
   * receipt (null with --no-receipts or for a pending transaction). Other
   * sources carry it only if their producer added it.
   */
  receipt?: Receipt | null;
  /** Set by `txscan follow` and `txscan scan --rpc`: the block (null when pending). */
  block?: BlockRef | null;
  /** Anything else the producer sent. */
  [key: string]: unknown;
}

/** One event log of a receipt, as the node returned it (checked: hex of the right sizes). */
export interface Log {
  /** The contract that emitted it. */
  address: Hex;
  /** 0 to 4 32-byte words; topics[0] is the event signature's keccak256. */
  topics: Hex[];
  /** The non-indexed arguments, ABI-encoded. */
  data: Hex;
  logIndex?: Quantity;
}

/** A receipt as txscan follow / scan --rpc attach it (only these fields). */
export interface Receipt {
  /** "0x1" success, "0x0" reverted (missing before Byzantium). */
  status?: Quantity;
  gasUsed?: Quantity;
  cumulativeGasUsed?: Quantity;
  effectiveGasPrice?: Quantity;
  /** The deployed contract, or null. */
  contractAddress: Hex | null;
  logs: Log[];
}

/** The block a transaction was mined in, in the node's hex. */
export interface BlockRef {
  number: Quantity;
  hash: Hex;
  timestamp: Quantity;
}

export interface PluginInfo {
  readonly id: string;
  readonly version: string;
}

/**
 * The second argument of init and scanTransaction. config is the manifest's
 * "config" object ({} when absent). The same ctx object is passed to every
 * call on one engine; treat it as read-only.
 */
export interface Ctx<C = { [key: string]: JsonValue }> {
  readonly plugin: PluginInfo;
  readonly config: C;
}

export interface Finding {
  /** UPPER_SNAKE_CASE ([A-Z][A-Z0-9_]*, 1-128 characters), stable across versions: consumers key on it. */
  code: string;
  severity: Severity;
  /** One line for a human. */
  message: string;
  /** JSON-serialisable details (convert BigInt to string). Strings are the safest values. */
  metadata?: { [key: string]: JsonValue };
}

/** Nothing found: null, undefined or []. Otherwise one finding or a list. */
export type ScanResult = Finding | Finding[] | null | undefined | void;

export interface Plugin<C = { [key: string]: JsonValue }> {
  /** Runs once per engine, before its first scan; may be async. A throw fails the start. */
  init?(ctx: Ctx<C>): void | Promise<void>;
  /** Runs once per transaction; may be async. Its result must settle within timeout_ms. */
  scanTransaction(tx: Transaction, ctx: Ctx<C>): ScanResult | Promise<ScanResult>;
}

/** plugin.json. Unknown keys are an error. */
export interface Manifest<C = { [key: string]: JsonValue }> {
  /** [a-z0-9-], 1 to 64 characters. */
  id: string;
  version: string;
  /** One line saying what the plugin looks for, for people reading the manifest; txscan only checks that it is a string. */
  description?: string;
  /**
   * The file to load, relative to the plugin folder: CommonJS (.js, .cjs),
   * an ES module (.mjs, or .js when package.json says "type": "module") or
   * TypeScript (.ts, .mts, .cts); imports are bundled at load.
   */
  main: string;
  /** Per scan, microtasks included; 1 to 60000. Default 50. */
  timeout_ms?: number;
  /** A scan that pushes the heap past this is stopped (status "memory"); 1 to 16384. Default 64. */
  heap_limit_mb?: number;
  /** After a scan that leaves the heap past this, the engine is recycled; at most heap_limit_mb. Default 32. */
  heap_restart_mb?: number;
  /** Recycle the engine (a fresh realm) every N scans; 0 = never. Default 100000. */
  restart_every?: number;
  /** A VM serves at most this many realms, then a recycle builds a new VM; 1 to 1000000. Default 64. */
  realms_per_vm?: number;
  /** Parallel engines for this plugin (threads, or processes under process isolation); 1 to 64. Default 1. */
  instances?: number;
  /** Scans in a row ending in timeout or memory that open the circuit breaker; 0 = off. Default 5. */
  breaker_after?: number;
  /** The breaker's first cool-down (doubles to 60 s while trials fail); 1 to 3600000. Default 1000. */
  breaker_cooldown_ms?: number;
  /** Handed to the plugin as ctx.config. Default {}. */
  config?: C;
}

/** A line of a plugin's fixtures.jsonl. */
export interface Fixture {
  name: string;
  tx: Transaction;
  /** Expected finding codes, in the order the plugin returns them. */
  expect: string[];
}

/**
 * The console txscan provides (the Console standard): each line goes to the
 * host's log with the plugin id, rate-limited. Values print as Node prints
 * them (util.inspect): depth 2, cycles as [Circular], Errors with their stack.
 */
export interface TxscanConsole {
  debug(...args: unknown[]): void;
  log(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  /** Prints its arguments and the JavaScript stack, at level error. */
  trace(...args: unknown[]): void;
  dir(item?: unknown, options?: unknown): void;
  dirxml(...args: unknown[]): void;
  /** Rows of objects (or of values) as a box-drawn table; `columns` picks and orders the columns. */
  table(data: unknown, columns?: string[]): void;
  /** Prints "Assertion failed: ..." at level error when condition is falsy. */
  assert(condition?: unknown, ...args: unknown[]): void;
  count(label?: string): void;
  countReset(label?: string): void;
  time(label?: string): void;
  timeLog(label?: string, ...args: unknown[]): void;
  timeEnd(label?: string): void;
  /** Indents the lines that follow by two spaces, until groupEnd. */
  group(...label: unknown[]): void;
  groupCollapsed(...label: unknown[]): void;
  groupEnd(): void;
  /** Does nothing: txscan's console is a log. */
  clear(): void;
}
