// Bounds the daemon's peer table against throwaway identities (issue 15, hole 7):
// every handshake to a public daemon used to leave a peer (session, connection,
// path state) that was never forgotten. Untrusted peers are forgotten once idle,
// and at most `maxUntrusted` are kept: a newcomer evicts the least recently
// active untrusted peer. A trusted peer is never evicted for an untrusted one
// (WireGuard keeps only configured peers; Tailscale's magicsock drops idle
// endpoints the same way).

export interface LimitedPeer {
  readonly key: number;
  /** Last time the peer sent us something or was (re)resolved (ms). */
  readonly lastActive: number;
}

export interface PeerLimitOptions {
  /** Untrusted peers idle this long are forgotten (ms). */
  idleMs?: number;
  /** Untrusted peers kept at once. */
  maxUntrusted?: number;
}

export const DEFAULT_UNTRUSTED_IDLE_MS = 60_000;
export const DEFAULT_MAX_UNTRUSTED_PEERS = 1024;

export class PeerLimit {
  readonly idleMs: number;
  readonly maxUntrusted: number;

  constructor(opts: PeerLimitOptions = {}) {
    this.idleMs = opts.idleMs ?? DEFAULT_UNTRUSTED_IDLE_MS;
    this.maxUntrusted = opts.maxUntrusted ?? DEFAULT_MAX_UNTRUSTED_PEERS;
  }

  /** How often the daemon should call idle(): a fraction of the timeout, within [250 ms, 5 s]. */
  get sweepEveryMs(): number {
    return Math.min(5_000, Math.max(250, Math.floor(this.idleMs / 4)));
  }

  /** Untrusted peers to forget now because they have been idle too long. */
  idle(untrusted: Iterable<LimitedPeer>, now: number): number[] {
    const out: number[] = [];
    for (const p of untrusted) if (now - p.lastActive >= this.idleMs) out.push(p.key);
    return out;
  }

  /**
   * Before one more untrusted peer is added: the least recently active
   * untrusted peers to evict so that it fits (empty while there is room).
   */
  makeRoom(untrusted: Iterable<LimitedPeer>): number[] {
    const list = [...untrusted];
    const excess = list.length + 1 - this.maxUntrusted;
    if (excess <= 0) return [];
    if (excess === 1) {
      // The usual case at the cap: one linear pass, no sort per newcomer.
      let oldest = list[0]!;
      for (const p of list) if (p.lastActive < oldest.lastActive) oldest = p;
      return [oldest.key];
    }
    list.sort((a, b) => a.lastActive - b.lastActive);
    return list.slice(0, excess).map((p) => p.key);
  }
}
