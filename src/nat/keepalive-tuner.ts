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
  /** Per peer: when its last keepalive reached us, and the shortest cadence of them that showed a learned interval. */
  private readonly peerSeen = new Map<number, { at: number; hint: number }>();
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

  /**
   * The peer's keepalive reached us on the direct path (we answered it, so ours can wait:
   * one side keeps a path alive, and a lapse is seen by the side whose lone probe is lost).
   * A cadence of at most half the default means the peer learned a short lifetime: the
   * NATs on the path, maybe ours, forget fast, so our rendezvous mapping needs it too.
   * Not taken for the path itself: two sides taking each other's cadence would ratchet down.
   */
  peerKept(peerKey: number, now: number): void {
    const seen = this.peerSeen.get(peerKey);
    const gap = seen === undefined ? Infinity : now - seen.at;
    let hint = seen?.hint ?? Infinity;
    if (gap >= this.min && gap <= this.base / 2) hint = Math.min(hint, Math.ceil(gap));
    this.peerSeen.set(peerKey, { at: now, hint });
  }

  forget(peerKey: number): void {
    this.learned.delete(peerKey);
    this.peerSeen.delete(peerKey);
  }

  /** The shortest mapping lifetime learned on any path, or hinted by a peer's keepalives (base when none). */
  shortest(): number {
    let s = this.base;
    for (const v of this.learned.values()) s = Math.min(s, v);
    for (const v of this.peerSeen.values()) s = Math.min(s, v.hint);
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
