// Reconnect delays: exponential, capped, with jitter so that many daemons cut
// off by one rendezvous restart do not all come back in the same millisecond.
export interface BackoffOptions {
  minMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { minMs: 250, maxMs: 15_000 };

export class Backoff {
  private readonly opts: BackoffOptions;
  private base: number;
  constructor(opts: BackoffOptions = DEFAULT_BACKOFF) {
    this.opts = opts;
    this.base = opts.minMs;
  }

  /** The next delay: base * [0.5, 1.5), never above maxMs; then the base doubles. */
  next(random: () => number = Math.random): number {
    const delay = Math.min(this.opts.maxMs, Math.floor(this.base * (0.5 + random())));
    this.base = Math.min(this.base * 2, this.opts.maxMs);
    return delay;
  }

  reset(): void {
    this.base = this.opts.minMs;
  }
}
