// When and by which path our CANDIDATES go to a peer (issue 19, roaming back to direct).
//
// A host that moves to a new NAT must tell its peers where it is now, and the
// peers must answer with theirs, or nobody probes the right endpoints: the
// mover's probes die at the peer's port-restricted router, the peer keeps
// probing the mover's old mapping. Measured before this class: candidates sent
// on the (dead) direct path right after a move were lost, and the fall back to
// the relay restarted punching without sending them again (direct again in 5
// of 10 moves). So, as ICE restarts and Tailscale's disco do after a link change:
//   - candidates go on every path we have: the relay (slow but it works while
//     the rendezvous knows where we are) and the direct path if there is one;
//   - they are sent again, asking for the peer's in return, whenever the path
//     state changes: a direct path dies, our addresses change (new interface,
//     new reflexive address), or the peer's candidates change;
//   - sends are coalesced to one per peer per tick, and replies are rate
//     limited, so two copies of one request (relay + direct) get one answer.
// Only trusted peers get any of this (the PathManager asks mayPunch first).
import type { Path } from './path.ts';

/** At most one reply to a peer's "send me yours" per this many ms (both copies of one request arrive). */
export const REPLY_GAP_MS = 250;

interface SyncState {
  /** A send is due at the next tick; `reply`: ask the peer for its candidates back. */
  due: boolean;
  reply: boolean;
  lastReplyAt: number;
}

export class CandidateSync {
  private readonly peers = new Map<number, SyncState>();

  private state(key: number): SyncState {
    let st = this.peers.get(key);
    if (!st) {
      st = { due: false, reply: false, lastReplyAt: -Infinity };
      this.peers.set(key, st);
    }
    return st;
  }

  /** Our candidates should go to the peer at the next tick (`reply`: and we want its back). */
  schedule(key: number, reply: boolean): void {
    const st = this.state(key);
    st.due = true;
    st.reply ||= reply;
  }

  /** The peer asked for ours: schedule a reply unless we answered one a moment ago. */
  answer(key: number, now: number): void {
    const st = this.state(key);
    if (now - st.lastReplyAt < REPLY_GAP_MS) return;
    st.lastReplyAt = now;
    this.schedule(key, false);
  }

  /** What is due for this peer now (and clears it): undefined = nothing. */
  take(key: number): { reply: boolean } | undefined {
    const st = this.peers.get(key);
    if (!st?.due) return undefined;
    const out = { reply: st.reply };
    st.due = false;
    st.reply = false;
    return out;
  }

  forget(key: number): void {
    this.peers.delete(key);
  }

  /** The relay always (it works wherever the rendezvous knows us), and the direct path when there is one. */
  static paths(current: Path | undefined): Path[] {
    return current?.kind === 'direct' ? [{ kind: 'relay' }, current] : [{ kind: 'relay' }];
  }
}

/** Two candidate lists name the same endpoints (order aside). */
export function sameEndpoints(a: readonly { host: string; port: number }[], b: readonly { host: string; port: number }[]): boolean {
  const key = (l: readonly { host: string; port: number }[]): string =>
    l
      .map((e) => `${e.host}:${e.port}`)
      .sort()
      .join(',');
  return key(a) === key(b);
}
