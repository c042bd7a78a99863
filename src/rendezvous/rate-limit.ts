// Token buckets: one per source IP for registry requests, one per node for relay bytes.
export interface Rate {
  perSec: number;
  burst: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly rate: Rate;
  constructor(rate: Rate, now = Date.now()) {
    this.rate = rate;
    this.tokens = rate.burst;
    this.last = now;
  }
  take(cost = 1, now = Date.now()): boolean {
    this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.last) / 1000) * this.rate.perSec);
    this.last = now;
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }
  /** How long until `cost` tokens are available (0 = now). */
  waitMs(cost = 1, now = Date.now()): number {
    const tokens = Math.min(this.rate.burst, this.tokens + ((now - this.last) / 1000) * this.rate.perSec);
    return tokens >= cost ? 0 : ((cost - tokens) / this.rate.perSec) * 1000;
  }
  /** True when the bucket has refilled completely (forgetting it loses nothing). */
  idle(now = Date.now()): boolean {
    return this.tokens + ((now - this.last) / 1000) * this.rate.perSec >= this.rate.burst;
  }
}

/** Buckets keyed by a string, bounded in number: full buckets are forgotten on prune. */
export class KeyedLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly rate: Rate;
  private readonly maxKeys: number;
  constructor(rate: Rate, maxKeys = 100_000) {
    this.rate = rate;
    this.maxKeys = maxKeys;
  }
  take(key: string, cost = 1, now = Date.now()): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.prune(now);
      // Still full of busy keys: refuse newcomers rather than grow without bound.
      if (this.buckets.size >= this.maxKeys) return false;
      b = new TokenBucket(this.rate, now);
      this.buckets.set(key, b);
    }
    return b.take(cost, now);
  }
  /** How long until `key` may take `cost` (0 = now). */
  waitMs(key: string, cost = 1, now = Date.now()): number {
    return this.buckets.get(key)?.waitMs(cost, now) ?? 0;
  }
  prune(now = Date.now()): void {
    for (const [k, b] of this.buckets) if (b.idle(now)) this.buckets.delete(k);
  }
  get size(): number {
    return this.buckets.size;
  }
}

/**
 * The party behind a source endpoint ("ip:port" / "[ipv6]:port"), for per-source
 * limits: the IPv4 address, or the /64 of an IPv6 address (one subscriber
 * usually gets a whole /64, so per-address limits would be free to evade there).
 */
export function sourceKey(observed: string): string {
  const v6 = /^\[([0-9a-fA-F:.]+)\]:\d+$/.exec(observed);
  if (!v6) return observed.slice(0, observed.lastIndexOf(':'));
  const ip = v6[1]!;
  // Expand "::" to count groups, keep the first four.
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
