// Bytes we may spend probing addresses that have not (yet) answered us:
// punching rounds and birthday probes. One token bucket per peer and one for
// the whole daemon, so neither one peer's candidate list nor many peers at
// once can turn the daemon into a packet cannon (RFC 9000 §8 bounds what an
// unvalidated address gets in the same spirit). Probes on a path that already
// authenticated (keepalives, liveness checks, probe replies) are not counted.

/** Bytes on the wire of one probe: session header 13 + inner 9 + tag 16, plus IPv4 + UDP headers. */
export const PROBE_WIRE_BYTES = 13 + 9 + 16 + 28;
/** Refill window of both buckets: the full budget comes back over this time. */
export const PROBE_WINDOW_MS = 30_000;
/** Per peer: one birthday attempt (1536 probes) plus its punching rounds fits. */
export const DEFAULT_PROBE_BUDGET_PEER = 128 * 1024;
/** Whole daemon. */
export const DEFAULT_PROBE_BUDGET_TOTAL = 1024 * 1024;

class Bucket {
  private tokens: number;
  private last: number;
  private readonly size: number;
  constructor(size: number, now: number) {
    this.size = size;
    this.tokens = size;
    this.last = now;
  }
  refill(now: number): number {
    this.tokens = Math.min(this.size, this.tokens + ((now - this.last) * this.size) / PROBE_WINDOW_MS);
    this.last = now;
    return this.tokens;
  }
  spend(n: number): void {
    this.tokens -= n;
  }
}

export class ProbeBudget {
  private readonly peerSize: number;
  private readonly total: Bucket;
  private readonly peers = new Map<number, Bucket>();
  /** Probes not sent for want of budget. */
  denied = 0;

  constructor(opts: { peerBytes?: number; totalBytes?: number; now: number }) {
    this.peerSize = opts.peerBytes ?? DEFAULT_PROBE_BUDGET_PEER;
    this.total = new Bucket(opts.totalBytes ?? DEFAULT_PROBE_BUDGET_TOTAL, opts.now);
  }

  /** Take one probe's bytes for `peerKey`; false = over budget, do not send. */
  take(peerKey: number, now: number): boolean {
    let b = this.peers.get(peerKey);
    if (b === undefined) this.peers.set(peerKey, (b = new Bucket(this.peerSize, now)));
    if (b.refill(now) < PROBE_WIRE_BYTES || this.total.refill(now) < PROBE_WIRE_BYTES) {
      this.denied++;
      return false;
    }
    b.spend(PROBE_WIRE_BYTES);
    this.total.spend(PROBE_WIRE_BYTES);
    return true;
  }

  /** The peer is gone. Its bucket goes too (the path manager forgets only peers the daemon dropped). */
  forget(peerKey: number): void {
    this.peers.delete(peerKey);
  }
}
