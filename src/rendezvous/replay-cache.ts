// Nonces of accepted requests, kept for the freshness window, with the response
// sent for each. An identical retransmission gets the cached response (client
// retries are idempotent); anything else reusing a nonce is a replay.
// Bounded: when full, the oldest entry is evicted and its timestamp becomes a
// watermark: requests not newer than it are refused as stale, so eviction never
// reopens a replay.
import { FRESHNESS_MS } from '../registry/protocol.ts';

interface Entry {
  digest: string;
  ts: number;
  expires: number;
  response: Buffer | undefined; // undefined while the request is being executed
}

export type Lookup = { kind: 'new' } | { kind: 'retransmit'; response: Buffer | undefined } | { kind: 'replayed' };

export class ReplayCache {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly windowMs: number;
  private watermark = -Infinity;

  constructor(maxEntries = 50_000, windowMs = FRESHNESS_MS) {
    this.maxEntries = maxEntries;
    this.windowMs = windowMs;
  }

  lookup(nonce: string, digest: string, now = Date.now()): Lookup {
    const e = this.entries.get(nonce);
    if (!e || e.expires < now) return { kind: 'new' };
    return e.digest === digest ? { kind: 'retransmit', response: e.response } : { kind: 'replayed' };
  }

  /** False when the request is not newer than the eviction watermark (treat as stale). */
  add(nonce: string, digest: string, ts: number, now = Date.now()): boolean {
    if (ts <= this.watermark) return false;
    if (this.entries.size >= this.maxEntries) this.prune(now);
    while (this.entries.size >= this.maxEntries) {
      const [oldest, e] = this.entries.entries().next().value as [string, Entry];
      this.entries.delete(oldest);
      this.watermark = Math.max(this.watermark, e.ts);
      if (ts <= this.watermark) return false;
    }
    this.entries.set(nonce, { digest, ts, expires: Math.max(ts, now) + this.windowMs + 1000, response: undefined });
    return true;
  }

  setResponse(nonce: string, response: Buffer): void {
    const e = this.entries.get(nonce);
    if (e) e.response = response;
  }

  prune(now = Date.now()): void {
    for (const [n, e] of this.entries) if (e.expires < now) this.entries.delete(n);
  }

  get size(): number {
    return this.entries.size;
  }
}
