// Nonces of accepted requests, remembered PER SIGNING KEY for the freshness
// window, with the response sent for each. An identical retransmission gets the
// cached response (client retries are idempotent); anything else reusing a
// nonce is a replay. Responses may be kept for less time than nonces
// (`responseMs`): after that, even a byte-identical copy is REPLAYED, never
// executed again.
//
// Why per key (issue 15, hole 2): one shared table with one eviction watermark
// let a flood of validly signed requests from throwaway keys evict everyone's
// nonces and push the watermark past honest traffic, which was then refused as
// stale. Here, like WireGuard's per-peer replay counter window, every key has
// its own small window and its own floor: when a key's window overflows, only
// that key's oldest nonces are evicted and only that key's floor rises. When
// the table as a whole is full, the LARGEST windows are trimmed first (water
// filling), so a key sending a few requests is never touched by keys sending
// many. State for keys that are not registered is capped per source address
// (and in total): those requests are the cheap ones for an attacker.
import { FRESHNESS_MS } from '../registry/protocol.ts';

interface Entry {
  digest: string;
  ts: number;
  /** The nonce is forgotten after this: the request is stale by then anyway. */
  expires: number;
  /** The cached response is dropped after this. */
  responseExpires: number;
  /** false while the request is being executed. */
  answered: boolean;
  response: Buffer | null; // null once dropped (or before the answer)
}

interface KeyWindow {
  entries: Map<string, Entry>;
  /** Requests of this key dated at or before this are refused as stale (their nonces may have been evicted). */
  floor: number;
  /** Set while the key is not registered: the source it is charged to. */
  unknownSource: string | undefined;
}

export type Lookup = { kind: 'new' } | { kind: 'retransmit'; response: Buffer | undefined } | { kind: 'replayed' };

/** Why add() refused: `stale` = not newer than the key's floor; `source` / `busy` = no room for another unregistered key. */
export type AddResult = 'ok' | 'stale' | 'source' | 'busy';

export interface ReplayCacheOptions {
  /** Nonces remembered in total, all keys together (default 50,000). */
  maxEntries?: number;
  /** Nonces remembered per key (default 256). */
  perKey?: number;
  /** Unregistered keys with state, per source (default 64). */
  unknownPerSource?: number;
  /** Unregistered keys with state, in total (default 10,000). */
  maxUnknownKeys?: number;
  /** How long a nonce is remembered after its timestamp (default: the freshness window). */
  windowMs?: number;
  /** How long the response to it is kept for retransmissions (default: windowMs). */
  responseMs?: number;
}

export const DEFAULT_REPLAY_ENTRIES = 50_000;
export const DEFAULT_REPLAY_PER_KEY = 256;
export const DEFAULT_UNKNOWN_KEYS_PER_SOURCE = 64;
export const DEFAULT_MAX_UNKNOWN_KEYS = 10_000;

/** Share of a window evicted at once when it overflows (amortises the sort). */
const EVICT_FRACTION = 0.1;
/**
 * A new window's floor is its first request's timestamp minus this: requests a
 * client sent together arrive in any order, but a request older than that
 * (e.g. one refused for lack of room, replayed later by an eavesdropper) is
 * refused once the key has state.
 */
const REORDER_MS = 2000;

export class ReplayCache {
  private readonly windows = new Map<string, KeyWindow>();
  private readonly unknownBySource = new Map<string, number>();
  private unknownKeys = 0;
  private total = 0;
  private readonly maxEntries: number;
  private readonly perKey: number;
  private readonly unknownPerSource: number;
  private readonly maxUnknownKeys: number;
  private readonly windowMs: number;
  private readonly responseMs: number;

  constructor(opts: ReplayCacheOptions = {}) {
    this.maxEntries = Math.max(1, opts.maxEntries ?? DEFAULT_REPLAY_ENTRIES);
    this.perKey = Math.max(1, Math.min(opts.perKey ?? DEFAULT_REPLAY_PER_KEY, this.maxEntries));
    this.unknownPerSource = Math.max(1, opts.unknownPerSource ?? DEFAULT_UNKNOWN_KEYS_PER_SOURCE);
    this.maxUnknownKeys = Math.max(1, opts.maxUnknownKeys ?? DEFAULT_MAX_UNKNOWN_KEYS);
    this.windowMs = opts.windowMs ?? FRESHNESS_MS;
    this.responseMs = Math.min(opts.responseMs ?? this.windowMs, this.windowMs);
  }

  /** `key` may be unverified here: only a byte-identical packet (same digest, same signature) matches a cached answer. */
  lookup(key: string, nonce: string, digest: string, now = Date.now()): Lookup {
    const e = this.windows.get(key)?.entries.get(nonce);
    if (!e || e.expires < now) return { kind: 'new' };
    if (e.digest !== digest) return { kind: 'replayed' };
    // In flight (the answer is on its way) or still cached: a genuine retransmission.
    if (!e.answered) return { kind: 'retransmit', response: undefined };
    if (e.response !== null && e.responseExpires >= now) return { kind: 'retransmit', response: e.response };
    return { kind: 'replayed' };
  }

  /**
   * Remembers a verified request of `key`. `registered` says whether the key is
   * a registered node; if not, a new window is charged to `source`.
   */
  add(
    key: string,
    nonce: string,
    digest: string,
    ts: number,
    now = Date.now(),
    who: { registered: boolean; source: string } = { registered: true, source: '' },
  ): AddResult {
    let w = this.windows.get(key);
    if (w && ts <= w.floor) return 'stale';
    if (!w) {
      if (!who.registered) {
        const n = this.unknownBySource.get(who.source) ?? 0;
        if (n >= this.unknownPerSource) {
          this.pruneSource(who.source, now);
          if ((this.unknownBySource.get(who.source) ?? 0) >= this.unknownPerSource) return 'source';
        }
        if (this.unknownKeys >= this.maxUnknownKeys) {
          this.prune(now);
          if (this.unknownKeys >= this.maxUnknownKeys) return 'busy';
        }
      }
      w = { entries: new Map(), floor: ts - REORDER_MS, unknownSource: undefined };
      this.windows.set(key, w);
      if (!who.registered) this.chargeUnknown(w, who.source);
    } else if (who.registered && w.unknownSource !== undefined) {
      this.releaseUnknown(w); // it registered: no longer charged to its source
    }
    if (w.entries.size >= this.perKey) {
      this.pruneWindow(w, now);
      if (w.entries.size >= this.perKey) this.trim(w, Math.floor(this.perKey * (1 - EVICT_FRACTION)));
      if (ts <= w.floor) return 'stale';
    }
    if (this.total >= this.maxEntries) {
      this.prune(now);
      if (this.total >= this.maxEntries) this.trimLargest(Math.floor(this.maxEntries * (1 - EVICT_FRACTION)));
      if (ts <= w.floor) return 'stale';
    }
    // Remembered until the request would be refused as stale anyway (+1 s slack).
    w.entries.set(nonce, { digest, ts, expires: Math.max(ts, now) + this.windowMs + 1000, responseExpires: Infinity, answered: false, response: null });
    this.total++;
    return 'ok';
  }

  /** The key registered: its window is no longer charged to its source. */
  markRegistered(key: string): void {
    const w = this.windows.get(key);
    if (w) this.releaseUnknown(w);
  }

  setResponse(key: string, nonce: string, response: Buffer, now = Date.now()): void {
    const e = this.windows.get(key)?.entries.get(nonce);
    if (!e) return;
    e.answered = true;
    e.response = response;
    e.responseExpires = now + this.responseMs;
  }

  prune(now = Date.now()): void {
    for (const [k, w] of this.windows) {
      this.pruneWindow(w, now);
      // Empty and everything up to its floor is stale anyway: forgetting the key loses nothing.
      if (w.entries.size === 0 && w.floor + this.windowMs + 1000 < now) this.dropWindow(k, w);
    }
  }

  private pruneWindow(w: KeyWindow, now: number): void {
    for (const [n, e] of w.entries) {
      if (e.expires < now) {
        w.entries.delete(n);
        this.total--;
      } else if (e.responseExpires < now) e.response = null; // keep the nonce, free the bytes
    }
  }

  /** Prunes the windows charged to one source (cheap enough: at most unknownPerSource of them). */
  private pruneSource(source: string, now: number): void {
    for (const [k, w] of this.windows) {
      if (w.unknownSource !== source) continue;
      this.pruneWindow(w, now);
      if (w.entries.size === 0 && w.floor + this.windowMs + 1000 < now) this.dropWindow(k, w);
    }
  }

  private dropWindow(key: string, w: KeyWindow): void {
    this.total -= w.entries.size;
    this.releaseUnknown(w);
    this.windows.delete(key);
  }

  private chargeUnknown(w: KeyWindow, source: string): void {
    w.unknownSource = source;
    this.unknownBySource.set(source, (this.unknownBySource.get(source) ?? 0) + 1);
    this.unknownKeys++;
  }

  private releaseUnknown(w: KeyWindow): void {
    if (w.unknownSource === undefined) return;
    const n = (this.unknownBySource.get(w.unknownSource) ?? 1) - 1;
    if (n <= 0) this.unknownBySource.delete(w.unknownSource);
    else this.unknownBySource.set(w.unknownSource, n);
    this.unknownKeys--;
    w.unknownSource = undefined;
  }

  /** Evicts a window's oldest nonces down to `keep`, raising ITS floor only. */
  private trim(w: KeyWindow, keep: number): void {
    if (w.entries.size <= keep) return;
    const all = [...w.entries].sort((x, y) => x[1].ts - y[1].ts);
    for (let i = 0; i < all.length - keep; i++) {
      const [nonce, e] = all[i]!;
      w.entries.delete(nonce);
      this.total--;
      w.floor = Math.max(w.floor, e.ts);
    }
  }

  /**
   * Brings the total down to `target` by trimming the largest windows to a
   * common level (water filling): windows at or below the level keep everything.
   */
  private trimLargest(target: number): void {
    const sizes = [...this.windows.values()].map((w) => w.entries.size).sort((a, b) => b - a);
    // Find the level L with sum(min(size, L)) <= target.
    let level = sizes[0] ?? 0;
    let above = 0; // windows larger than `level`
    let sum = this.total;
    for (let i = 0; i < sizes.length && sum > target; i++) {
      const next = sizes[i + 1] ?? 0;
      above = i + 1;
      const drop = (level - next) * above;
      if (sum - drop <= target) {
        level -= Math.ceil((sum - target) / above);
        sum = target;
        break;
      }
      sum -= drop;
      level = next;
    }
    level = Math.max(0, level);
    for (const w of this.windows.values()) if (w.entries.size > level) this.trim(w, level);
  }

  /** Nonces remembered, all keys together. */
  get size(): number {
    return this.total;
  }

  /** Keys with state (of which `unknown` are not registered). */
  get keys(): { total: number; unknown: number } {
    return { total: this.windows.size, unknown: this.unknownKeys };
  }
}
