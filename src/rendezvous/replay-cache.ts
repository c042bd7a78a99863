// Nonces of accepted requests, remembered for the freshness window, with the
// response sent for each. An identical retransmission gets the cached response
// (client retries are idempotent); anything else reusing a nonce is a replay.
// Responses may be kept for less time than nonces (`responseMs`): after that,
// even a byte-identical copy is REPLAYED, never executed again.
// Bounded: when full, the entries with the OLDEST timestamps are evicted and the
// newest evicted timestamp becomes a watermark: requests not newer than it are
// refused as stale, so eviction never reopens a replay. Evicting by timestamp
// (not arrival order) means future-dated requests are evicted last, so they do
// not push the watermark past honest traffic. (Only a flood of more valid signed
// requests than maxEntries within one window can: memory stays bounded, and
// honest requests are refused as stale until the flood ages out.)
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

export type Lookup = { kind: 'new' } | { kind: 'retransmit'; response: Buffer | undefined } | { kind: 'replayed' };

export interface ReplayCacheOptions {
  maxEntries?: number;
  /** How long a nonce is remembered after its timestamp (default: the freshness window). */
  windowMs?: number;
  /** How long the response to it is kept for retransmissions (default: windowMs). */
  responseMs?: number;
}

/** Share of the entries evicted at once when full (amortises the sort). */
const EVICT_FRACTION = 0.1;

export class ReplayCache {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly windowMs: number;
  private readonly responseMs: number;
  private watermark = -Infinity;

  constructor(opts: ReplayCacheOptions = {}) {
    this.maxEntries = Math.max(1, opts.maxEntries ?? 50_000);
    this.windowMs = opts.windowMs ?? FRESHNESS_MS;
    this.responseMs = Math.min(opts.responseMs ?? this.windowMs, this.windowMs);
  }

  lookup(nonce: string, digest: string, now = Date.now()): Lookup {
    const e = this.entries.get(nonce);
    if (!e || e.expires < now) return { kind: 'new' };
    if (e.digest !== digest) return { kind: 'replayed' };
    // In flight (the answer is on its way) or still cached: a genuine retransmission.
    if (!e.answered) return { kind: 'retransmit', response: undefined };
    if (e.response !== null && e.responseExpires >= now) return { kind: 'retransmit', response: e.response };
    return { kind: 'replayed' };
  }

  /** False when the request is not newer than the eviction watermark (treat as stale). */
  add(nonce: string, digest: string, ts: number, now = Date.now()): boolean {
    if (ts <= this.watermark) return false;
    if (this.entries.size >= this.maxEntries) this.prune(now);
    if (this.entries.size >= this.maxEntries) this.evictOldest();
    if (ts <= this.watermark) return false;
    // Remembered until the request would be refused as stale anyway (+1 s slack).
    this.entries.set(nonce, { digest, ts, expires: Math.max(ts, now) + this.windowMs + 1000, responseExpires: Infinity, answered: false, response: null });
    return true;
  }

  setResponse(nonce: string, response: Buffer, now = Date.now()): void {
    const e = this.entries.get(nonce);
    if (!e) return;
    e.answered = true;
    e.response = response;
    e.responseExpires = now + this.responseMs;
  }

  prune(now = Date.now()): void {
    for (const [n, e] of this.entries) {
      if (e.expires < now) this.entries.delete(n);
      else if (e.responseExpires < now) e.response = null; // keep the nonce, free the bytes
    }
  }

  private evictOldest(): void {
    const all = [...this.entries].sort((x, y) => x[1].ts - y[1].ts);
    const n = Math.max(1, Math.ceil(all.length * EVICT_FRACTION));
    for (let i = 0; i < n; i++) {
      const [nonce, e] = all[i]!;
      this.entries.delete(nonce);
      this.watermark = Math.max(this.watermark, e.ts);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
