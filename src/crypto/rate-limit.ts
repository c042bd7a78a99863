// Answers to unauthenticated input (the 0x13 "unknown session" hint) must not
// become a reflector: at most one answer per source per interval, plus a global
// cap per second. The per-source table is bounded by clearing it when full.
export class HintLimiter {
  private readonly perSource = new Map<string, number>();
  private readonly intervalMs: number;
  private readonly globalPerSecond: number;
  private readonly maxSources: number;
  private windowStart = 0;
  private windowCount = 0;

  constructor(intervalMs: number, globalPerSecond: number, maxSources = 4096) {
    this.intervalMs = intervalMs;
    this.globalPerSecond = globalPerSecond;
    this.maxSources = maxSources;
  }

  allow(source: string, now: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    if (this.windowCount >= this.globalPerSecond) return false;
    const last = this.perSource.get(source);
    if (last !== undefined && now - last < this.intervalMs) return false;
    if (this.perSource.size >= this.maxSources) this.perSource.clear();
    this.perSource.set(source, now);
    this.windowCount++;
    return true;
  }
}

/** A stable map key for the daemon's opaque path description. */
export function pathKey(path: unknown): string {
  if (typeof path === 'string') return path;
  if (typeof path === 'number' || typeof path === 'bigint' || typeof path === 'boolean') return String(path);
  try {
    return JSON.stringify(path) ?? 'undefined';
  } catch {
    return 'unserialisable';
  }
}

/**
 * Token buckets keyed by source (an IP, or a relayed node's address), so one
 * source, or a few, cannot take a whole budget (WireGuard's ratelimiter does
 * the same per IP). Bounded: when full, the oldest entry goes (insertion order:
 * no reordering per packet, this runs for every packet of a flood), which only
 * hands that source a fresh bucket; entries that have refilled are swept (a
 * full bucket and no entry are the same thing).
 */
export class SourceBuckets {
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxSources: number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(perSecond: number, burst: number, maxSources = 8192) {
    this.perMs = perSecond / 1000;
    this.burst = Math.max(1, burst);
    this.maxSources = maxSources;
  }

  get size(): number {
    return this.buckets.size;
  }

  allow(source: string, now: number): boolean {
    let b = this.buckets.get(source);
    if (b === undefined) {
      if (this.buckets.size >= this.maxSources) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.burst, at: now };
      this.buckets.set(source, b);
    } else if (now > b.at) {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /** Drop the entries that have refilled by now. */
  sweep(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(k);
  }
}

/**
 * "Under load" after WireGuard: the responder demands cookies (mac2) while the
 * rate of message 1s is above a threshold, and for one second
 * after, so the mode does not flap at the edge of a flood.
 */
export class LoadMeter {
  private readonly threshold: number;
  private windowStart = -Infinity;
  private count = 0;
  private loadedUntil = -Infinity;

  constructor(perSecond: number) {
    this.threshold = perSecond;
  }

  /** Count one message 1; true while under load. */
  note(now: number, busy = false): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.count = 0;
    }
    if (++this.count > this.threshold || busy) this.loadedUntil = now + 1000;
    return now < this.loadedUntil;
  }
}
