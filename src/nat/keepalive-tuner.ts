// How often to keep an idle direct path (and the rendezvous mapping) alive:
// learned per peer from the NAT mappings that lapsed on it (issue 19).
//
// Start at the safe default that holds the common 30 s UDP timeouts (and 10 s
// ones: a keepalive answered every 10 s keeps a "replied" conntrack entry
// alive); when a path that was idle for `idle` ms stops answering its
// keepalive, some NAT on it forgets mappings sooner: halve the interval (at
// most half the idle time that lapsed), down to a floor. Tailscale's
// magicsock sends its disco heartbeat every 3 s and WebRTC its consent checks
// every ~5 s (RFC 7675) for the same reason: they pick short fixed intervals,
// we learn one, so paths through ordinary NATs stay as quiet as today.
//
// It never lengthens an interval again: a probe toward a longer one costs a
// lapse (a moment on the relay) every time. Entries go with their peer
// (forget), so the table is bounded by the path manager's. A lapse is
// noticed only on an authenticated path that stopped answering; an on-path
// attacker that drops our packets can at worst bring us to the floor, one
// 66-byte probe per MIN_KEEPALIVE_MS per peer.

/** Probe an idle direct path this often until a lapse says otherwise (ms). */
export const DEFAULT_KEEPALIVE_MS = 10_000;
/** Never keepalive more often than this (ms). */
export const MIN_KEEPALIVE_MS = 2_000;

export class KeepaliveTuner {
  private readonly base: number;
  private readonly min: number;
  private readonly learned = new Map<number, number>();
  private rendezvousAt = -Infinity;

  constructor(opts: { baseMs?: number; minMs?: number } = {}) {
    this.base = opts.baseMs ?? DEFAULT_KEEPALIVE_MS;
    this.min = Math.min(opts.minMs ?? MIN_KEEPALIVE_MS, this.base);
  }

  /** Keepalive interval for the peer's direct path now (ms). */
  interval(peerKey: number): number {
    return this.learned.get(peerKey) ?? this.base;
  }

  /** The peer's direct path, idle for `idleMs`, stopped answering: returns the new (shorter) interval. */
  lapsed(peerKey: number, idleMs: number): number {
    const next = Math.max(this.min, Math.floor(Math.min(this.interval(peerKey), Math.max(idleMs, 0)) / 2));
    this.learned.set(peerKey, next);
    return next;
  }

  forget(peerKey: number): void {
    this.learned.delete(peerKey);
  }

  /** The shortest mapping lifetime learned on any path (base when none lapsed). */
  shortest(): number {
    let s = this.base;
    for (const v of this.learned.values()) s = Math.min(s, v);
    return s;
  }

  /**
   * Time for a keepalive to the rendezvous? Only once some path showed mappings
   * shorter than the default (the registry heartbeat holds ordinary ones): our
   * own router times out the rendezvous mapping just as fast, and the relay and
   * registry pushes come back through it.
   */
  rendezvousDue(now: number): boolean {
    const every = this.shortest();
    if (every >= this.base || now - this.rendezvousAt < every) return false;
    this.rendezvousAt = now;
    return true;
  }
}
