// Handshakes we start: one message 1 per retry interval, each with a fresh
// ephemeral key, timestamp and index, until a message 2 answers one of them or
// handshakeTimeoutMs passes. Earlier attempts stay valid (on a slow path their
// message 2 may still arrive). A cookie reply (the responder is under load,
// cookie.ts) is kept per peer and answered at once with a resend carrying mac2.
//
//   0x10 [type][u32 senderIndex][Noise IK msg1][mac1 16][mac2 16]
//   0x11 [type][u32 senderIndex][u32 receiverIndex][Noise IK msg2]
import { PacketType } from '../wire/packet-types.ts';
import { addressKey } from '../wire/address.ts';
import type { Identity } from './identity.ts';
import { IkInitiator, MSG1_BYTES, MSG2_BYTES, type HandshakeResult, type Hello } from './handshake.ts';
import { COOKIE_REPLY_BYTES, COOKIE_USE_MS, MAC_BYTES, openCookieReply, responderKeys, stampMacs, type ResponderKeys } from './cookie.ts';
import type { SessionStats } from './session-stats.ts';

export const INIT_HEADER = 5;
export const INIT_BYTES = INIT_HEADER + MSG1_BYTES + 2 * MAC_BYTES;
export const RESP_HEADER = 9;
/** Cookie-triggered resends of message 1 per handshake (each answers a cookie reply at once). */
const MAX_COOKIE_RESENDS = 2;

export interface InitiatorHost {
  identity: Identity;
  /** Our hello for the next message 1 (strictly increasing timestamps). */
  hello(): Hello;
  /** A fresh nonzero index not used by any session or attempt. */
  newIndex(): number;
  /** Hand a message 1 to the peer (the caller picks the path). */
  send(peerKey: number, packet: Buffer): void;
  /** The handshake gave up (no answer within timeoutMs, or an unusable key); nothing is pending any more. */
  failed(peerKey: number): void;
  /** Something threw inside a retry timer (a bug): counted by the caller, never rethrown there. */
  onError(err: unknown): void;
  now(): number;
}

export interface InitiatorOptions {
  retryMs: number;
  timeoutMs: number;
}

/** The counters this part owns. */
export type InitiatorStats = Pick<
  SessionStats,
  'handshakesInitiated' | 'handshakeRetries' | 'handshakesFailed' | 'dropMalformed' | 'dropStaleHandshake' | 'dropAuth' | 'cookieRepliesReceived'
>;

/** A message 2 that authenticated: the handshake with `peerKey` is complete (and no longer pending). */
export interface Answer {
  peerKey: number;
  localIndex: number;
  remoteIndex: number;
  result: HandshakeResult;
}

interface Pending {
  attempts: number;
  cookieResends: number;
  indexes: number[];
  timer: NodeJS.Timeout | undefined;
}

/** A peer we start handshakes with. */
interface Target {
  key: number;
  publicKey: Buffer;
  /** mac1/cookie keys derived from publicKey (cookie.ts). */
  macKeys: ResponderKeys;
  /** The last cookie the peer sent us, and when (mac2 of our message 1s while fresh). */
  cookie: Buffer | undefined;
  cookieAt: number;
  pending: Pending | undefined;
}

interface Attempt {
  target: Target;
  initiator: IkInitiator;
  /** mac1 of the message 1 sent: the associated data of a cookie reply to it. */
  mac1: Buffer;
  /** A cookie reply to this message 1 was already acted on. */
  cookied: boolean;
}

export class Initiator {
  private readonly host: InitiatorHost;
  private readonly opts: InitiatorOptions;
  private readonly stats: InitiatorStats;
  private readonly targets = new Map<number, Target>();
  /** Our message 1s in flight, by their index (one per retry). */
  private readonly attempts = new Map<number, Attempt>();
  private closed = false;

  constructor(host: InitiatorHost, opts: InitiatorOptions, stats: InitiatorStats) {
    this.host = host;
    this.opts = opts;
    this.stats = stats;
  }

  /** Start a handshake with the peer unless one is already running. */
  start(peerKey: number, publicKey: Buffer): void {
    if (this.closed) return;
    let t = this.targets.get(peerKey);
    if (t !== undefined && t.pending !== undefined) return;
    if (t === undefined || !t.publicKey.equals(publicKey)) {
      t = { key: peerKey, publicKey, macKeys: responderKeys(publicKey), cookie: undefined, cookieAt: -Infinity, pending: undefined };
      this.targets.set(peerKey, t);
    }
    t.pending = { attempts: 0, cookieResends: 0, indexes: [], timer: undefined };
    this.stats.handshakesInitiated++;
    this.sendInit(t, t.pending);
  }

  /** Is a handshake with the peer running? */
  pending(peerKey: number): boolean {
    return this.targets.get(peerKey)?.pending !== undefined;
  }

  /** Message 1s sent in the running handshake (0 when none runs). */
  attemptsOf(peerKey: number): number {
    return this.targets.get(peerKey)?.pending?.attempts ?? 0;
  }

  /** Is `index` the index of one of our message 1s in flight? */
  has(index: number): boolean {
    return this.attempts.has(index);
  }

  /** Stop the running handshake, if any (its message 2s are then stale). */
  cancel(peerKey: number): void {
    const t = this.targets.get(peerKey);
    const p = t?.pending;
    if (t === undefined || p === undefined) return;
    clearTimeout(p.timer);
    for (const i of p.indexes) this.attempts.delete(i);
    t.pending = undefined;
  }

  /** Forget the peer (its key changed, or it was closed): handshake and cookie. */
  forget(peerKey: number): void {
    this.cancel(peerKey);
    this.targets.delete(peerKey);
  }

  /** A message 2 (0x11): the completed handshake it answers, or undefined (dropped and counted). */
  answer(pkt: Buffer): Answer | undefined {
    if (pkt.length !== RESP_HEADER + MSG2_BYTES) {
      this.stats.dropMalformed++;
      return undefined;
    }
    const remoteIndex = pkt.readUInt32BE(1);
    const localIndex = pkt.readUInt32BE(5);
    const a = this.attempts.get(localIndex);
    if (a === undefined) {
      this.stats.dropStaleHandshake++;
      return undefined;
    }
    const t = a.target;
    const result = a.initiator.finish(pkt.subarray(RESP_HEADER));
    if (result === null || addressKey(result.address) !== t.key || !result.remoteStatic.equals(t.publicKey)) {
      this.attempts.delete(localIndex); // its Noise state is spent
      this.stats.dropAuth++;
      return undefined;
    }
    this.cancel(t.key);
    return { peerKey: t.key, localIndex, remoteIndex, result };
  }

  /**
   * A cookie reply to one of our message 1s: keep the cookie, and resend at once
   * with mac2 (WireGuard waits for its retransmit timer; answering now makes first
   * contact under load cost one round trip, not a retry interval). Only a party
   * that saw our message 1 can write one (its mac1 is the associated data), and
   * each message 1 is resent once at most, a few times per handshake.
   */
  onCookieReply(pkt: Buffer): void {
    if (pkt.length !== COOKIE_REPLY_BYTES) {
      this.stats.dropMalformed++;
      return;
    }
    const a = this.attempts.get(pkt.readUInt32BE(1));
    if (a === undefined) {
      this.stats.dropStaleHandshake++;
      return;
    }
    const t = a.target;
    const cookie = openCookieReply(pkt, t.macKeys, a.mac1);
    if (cookie === null) {
      this.stats.dropAuth++;
      return;
    }
    this.stats.cookieRepliesReceived++;
    t.cookie = cookie;
    t.cookieAt = this.host.now();
    const p = t.pending;
    if (p === undefined || a.cookied || p.cookieResends >= MAX_COOKIE_RESENDS) return;
    a.cookied = true;
    p.cookieResends++;
    this.sendInit(t, p, true);
  }

  /** Stop every handshake for good. */
  destroy(): void {
    this.closed = true;
    for (const key of this.targets.keys()) this.cancel(key);
    this.targets.clear();
    this.attempts.clear();
  }

  /**
   * One message 1 per retry, each with a fresh ephemeral key, timestamp and index.
   * `extra`: an immediate resend answering a cookie reply (not counted as a retry).
   */
  private sendInit(t: Target, p: Pending, extra = false): void {
    if (t.pending !== p || this.closed) return;
    if (!extra && p.attempts > 0 && p.attempts * this.opts.retryMs >= this.opts.timeoutMs) return this.fail(t);
    let init: IkInitiator;
    try {
      init = new IkInitiator(this.host.identity, t.publicKey, this.host.hello());
    } catch {
      return this.fail(t); // not a usable Ed25519 key
    }
    if (!extra) p.attempts++;
    if (p.attempts > 1 || extra) this.stats.handshakeRetries++;
    const index = this.host.newIndex();
    const pkt = Buffer.allocUnsafe(INIT_BYTES);
    pkt[0] = PacketType.HandshakeInit;
    pkt.writeUInt32BE(index, 1);
    init.message1.copy(pkt, INIT_HEADER);
    const fresh = t.cookie !== undefined && this.host.now() - t.cookieAt < COOKIE_USE_MS;
    const mac1 = stampMacs(pkt, t.macKeys, fresh ? t.cookie : undefined);
    // Earlier attempts stay valid: on a slow path their message 2 may still arrive.
    this.attempts.set(index, { target: t, initiator: init, mac1, cookied: false });
    p.indexes.push(index);
    clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      try {
        this.sendInit(t, p);
      } catch (err) {
        this.host.onError(err);
      }
    }, this.opts.retryMs);
    p.timer.unref();
    this.host.send(t.key, pkt); // last: a synchronous link may complete the handshake inside
  }

  private fail(t: Target): void {
    this.cancel(t.key);
    this.stats.handshakesFailed++;
    this.host.failed(t.key);
  }
}
