// Per-peer session state: which session we send on, responder sessions waiting
// for their first packet, replaced sessions that still decrypt for a grace
// period, the plaintext queue while a handshake runs, and the peer's boot id.
// Sessions are found by the index we chose (Data packets) or by the one the
// peer chose (0x13 hints), never by where a packet came from.
import { PilotError } from '../util/errors.ts';
import { addressKey, type Address } from '../wire/address.ts';
import type { HandshakeResult } from './handshake.ts';
import { SecureSession, type SessionInit, type SessionRole } from './session.ts';
import type { SessionInfo, SessionStats } from './session-stats.ts';

/** Responder sessions waiting for their first packet (one per accepted message 1 retry). */
const MAX_UNCONFIRMED = 8;
const MAX_PREVIOUS = 3;

export interface PeerState {
  key: number;
  address: Address;
  publicKey: Buffer;
  /** The session we send on (confirmed). */
  current: ManagedSession | undefined;
  /** Responder sessions awaiting their first authenticated packet, oldest first. */
  unconfirmed: ManagedSession[];
  /** Replaced sessions, receive-only until their recvUntil. */
  previous: ManagedSession[];
  queue: Buffer[];
  /** Boot id of the last confirmed session: a change means the peer restarted. */
  bootId: Buffer | undefined;
  lastHintAt: number;
  rekeys: number;
}

export class ManagedSession extends SecureSession {
  readonly peer: PeerState;
  constructor(init: SessionInit, peer: PeerState) {
    super(init);
    this.peer = peer;
  }
}

export interface SessionTableOptions {
  /** A session is sent on this long after its handshake (1.5x the rekey time). */
  rejectAfterMs: number;
  /** How long a replaced session still decrypts (reordering, in-flight packets). */
  graceMs: number;
  /** An unconfirmed responder session is sent on only this young (the handshake timeout). */
  youngMs: number;
  /** Plaintexts queued per peer (oldest dropped beyond). */
  maxQueue: number;
  /** Another key took over the peer's address: whatever else is kept about the old key must go too. */
  onKeyChange(peerKey: number): void;
}

/** The counters this part owns. */
export type SessionTableStats = Pick<SessionStats, 'rekeys' | 'handshakesCompleted' | 'peerRestarts' | 'dropNoSession' | 'dropQueueOverflow'>;

export class SessionTable {
  private readonly opts: SessionTableOptions;
  private readonly stats: SessionTableStats;
  private readonly peers = new Map<number, PeerState>();
  /** Every live session by the index we chose (how Data packets find their session). */
  private readonly byIndex = new Map<number, ManagedSession>();
  /** Sessions by the index the peer chose (how a 0x13 hint finds its session). */
  private readonly byRemoteIndex = new Map<number, ManagedSession>();

  constructor(opts: SessionTableOptions, stats: SessionTableStats) {
    this.opts = opts;
    this.stats = stats;
  }

  get(peerKey: number): PeerState | undefined {
    return this.peers.get(peerKey);
  }

  /** The peer at `address`, created if new; a different key than before resets it (nothing of the old key may be used). */
  peerFor(address: Address, publicKey: Buffer): PeerState {
    if (!Buffer.isBuffer(publicKey) || publicKey.length !== 32) {
      throw new PilotError('BAD_ARGUMENT', 'peer publicKey must be a 32-byte Buffer');
    }
    const key = addressKey(address);
    let st = this.peers.get(key);
    if (st === undefined) {
      st = {
        key,
        address: { network: address.network, node: address.node },
        publicKey,
        current: undefined,
        unconfirmed: [],
        previous: [],
        queue: [],
        bootId: undefined,
        lastHintAt: -Infinity,
        rekeys: 0,
      };
      this.peers.set(key, st);
    } else if (st.publicKey !== publicKey && !st.publicKey.equals(publicKey)) {
      this.opts.onKeyChange(key);
      this.reset(st);
      st.publicKey = publicKey;
      st.bootId = undefined;
    }
    return st;
  }

  /** The live session we chose `index` for (Data packets). */
  session(index: number): ManagedSession | undefined {
    return this.byIndex.get(index);
  }

  /** The session we send on with the peer's `index` (0x13 hints). */
  sentWith(remoteIndex: number): ManagedSession | undefined {
    return this.byRemoteIndex.get(remoteIndex);
  }

  hasIndex(index: number): boolean {
    return this.byIndex.has(index);
  }

  /** A new session with the peer, not yet used for anything. */
  add(st: PeerState, localIndex: number, remoteIndex: number, role: SessionRole, keys: HandshakeResult, now: number): ManagedSession {
    const sendUntil = now + this.opts.rejectAfterMs;
    const s = new ManagedSession({ localIndex, remoteIndex, role, keys, created: now, sendUntil, recvUntil: sendUntil + this.opts.graceMs }, st);
    this.byIndex.set(localIndex, s);
    this.byRemoteIndex.set(remoteIndex, s);
    return s;
  }

  /** A responder session, sent on only until a confirmed one exists (oldest dropped beyond MAX_UNCONFIRMED). */
  addUnconfirmed(s: ManagedSession): void {
    const st = s.peer;
    st.unconfirmed.push(s);
    while (st.unconfirmed.length > MAX_UNCONFIRMED) this.forget(st.unconfirmed.shift()!);
  }

  /**
   * `s` is proven (message 2, or a packet authenticated on it): make it the one
   * we send on. Returns whether it revealed a restart of the peer.
   */
  confirm(s: ManagedSession, now: number): boolean {
    const st = s.peer;
    s.confirmed = true;
    const at = st.unconfirmed.indexOf(s);
    if (at >= 0) {
      // Older answers are handshakes the peer gave up on; newer ones may still be confirmed.
      for (let i = 0; i < at; i++) this.forget(st.unconfirmed[i]!);
      st.unconfirmed = st.unconfirmed.slice(at + 1);
    }
    const restarted = this.noteBootId(st, s);
    if (st.current !== undefined && st.current !== s) {
      this.retire(st, st.current, now);
      st.rekeys++;
      this.stats.rekeys++;
    }
    st.current = s;
    this.stats.handshakesCompleted++;
    return restarted;
  }

  /**
   * Record the boot id `s` carries. A different one than before means the peer
   * restarted: every session and queued plaintext of its previous life is
   * dropped. Returns whether it restarted (the caller announces it once its
   * own state is consistent).
   */
  noteBootId(st: PeerState, s: ManagedSession): boolean {
    const restarted = st.bootId !== undefined && !st.bootId.equals(s.remoteBootId);
    st.bootId = s.remoteBootId;
    if (!restarted) return false;
    const stale = (x: ManagedSession): boolean => x !== s && !x.remoteBootId.equals(s.remoteBootId);
    if (st.current !== undefined && stale(st.current)) {
      this.forget(st.current);
      st.current = undefined;
    }
    for (const x of st.previous) if (stale(x)) this.forget(x);
    st.previous = st.previous.filter((x) => !stale(x));
    for (const x of st.unconfirmed) if (stale(x)) this.forget(x);
    st.unconfirmed = st.unconfirmed.filter((x) => !stale(x));
    this.dropQueue(st);
    this.stats.peerRestarts++;
    return true;
  }

  /** The session to encrypt with now, if any. */
  sendSession(st: PeerState, now: number): ManagedSession | undefined {
    const c = st.current;
    if (c?.canSend(now)) return c;
    // No confirmed session (first contact, or we lost a simultaneous open): a
    // young responder session is the best there is, unless it reveals a restart;
    // then the queue waits for the confirmation, which resets everything anyway.
    for (let i = st.unconfirmed.length - 1; i >= 0; i--) {
      const u = st.unconfirmed[i]!;
      if (now - u.created < this.opts.youngMs && u.canSend(now) && (st.bootId === undefined || st.bootId.equals(u.remoteBootId))) return u;
    }
    return undefined;
  }

  /** Keep a copy of a plaintext until a session exists (oldest dropped beyond maxQueue). */
  enqueue(st: PeerState, copy: Buffer): void {
    if (st.queue.length >= this.opts.maxQueue) {
      st.queue.shift();
      this.stats.dropQueueOverflow++;
    }
    st.queue.push(copy);
  }

  /** The queued plaintexts, oldest first; the queue is empty after. */
  takeQueue(st: PeerState): Buffer[] {
    const q = st.queue;
    st.queue = [];
    return q;
  }

  /** Drop the queued plaintexts (counted as dropNoSession). */
  dropQueue(st: PeerState): void {
    this.stats.dropNoSession += st.queue.length;
    st.queue = [];
  }

  /** Drop every session and queued plaintext of the peer (it stays known). */
  reset(st: PeerState): void {
    if (st.current !== undefined) this.forget(st.current);
    for (const s of st.unconfirmed) this.forget(s);
    for (const s of st.previous) this.forget(s);
    st.current = undefined;
    st.unconfirmed = [];
    st.previous = [];
    this.dropQueue(st);
  }

  /** Reset the peer and forget it. */
  remove(peerKey: number): void {
    const st = this.peers.get(peerKey);
    if (st === undefined) return;
    this.reset(st);
    this.peers.delete(peerKey);
  }

  /** Every peer with state here (a snapshot: callers may remove while iterating). */
  keys(): number[] {
    return [...this.peers.keys()];
  }

  /** Reset and forget every peer. */
  clear(): void {
    for (const st of this.peers.values()) this.reset(st);
    this.peers.clear();
    this.byIndex.clear();
    this.byRemoteIndex.clear();
  }

  /** Free sessions past their receive deadline (the data path also checks lazily). */
  sweep(now: number): void {
    const live = (s: ManagedSession): boolean => {
      if (s.recvUntil > now) return true;
      this.forget(s);
      return false;
    };
    for (const st of this.peers.values()) {
      st.previous = st.previous.filter(live);
      st.unconfirmed = st.unconfirmed.filter(live);
      if (st.current !== undefined && !live(st.current)) st.current = undefined;
    }
  }

  /** Snapshot of the peer; whether a handshake runs is known to whoever runs it. */
  info(st: PeerState, now: number, handshaking: boolean, handshakeAttempts: number): SessionInfo {
    const s = st.current;
    return {
      established: s?.canSend(now) === true,
      role: s?.role ?? null,
      establishedAt: s ? s.created : null,
      ageMs: s ? now - s.created : null,
      localIndex: s?.localIndex ?? null,
      remoteIndex: s?.remoteIndex ?? null,
      sendCounter: s?.sendCounter ?? 0,
      bytesSent: s?.bytesSent ?? 0,
      highestReceived: s?.window.highest ?? -1,
      handshaking,
      handshakeAttempts,
      queued: st.queue.length,
      rekeys: st.rekeys,
      previousSessions: st.previous.length,
      unconfirmedSessions: st.unconfirmed.length,
      remoteBootId: st.bootId?.toString('hex') ?? null,
    };
  }

  /** A replaced session: receive-only for graceMs at most. */
  private retire(st: PeerState, s: ManagedSession, now: number): void {
    s.recvUntil = Math.min(s.recvUntil, now + this.opts.graceMs);
    if (this.byRemoteIndex.get(s.remoteIndex) === s) this.byRemoteIndex.delete(s.remoteIndex); // no longer sent on
    st.previous.push(s);
    while (st.previous.length > MAX_PREVIOUS) this.forget(st.previous.shift()!);
  }

  private forget(s: ManagedSession): void {
    if (this.byIndex.get(s.localIndex) === s) this.byIndex.delete(s.localIndex);
    if (this.byRemoteIndex.get(s.remoteIndex) === s) this.byRemoteIndex.delete(s.remoteIndex);
    s.wipe();
  }
}
