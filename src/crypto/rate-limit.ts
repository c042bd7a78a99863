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
