// All secure sessions of one node. Peers are identified by addressKey; a
// session by the random 32-bit index its receiver picked, never by the source
// IP:port, so sessions survive path changes (direct, relay, roaming).
//
// Packet formats (src/wire/packet-types.ts):
//   0x10 [type][u32 senderIndex][Noise IK msg1][mac1 16][mac2 16]   (macs: cookie.ts)
//   0x11 [type][u32 senderIndex][u32 receiverIndex][Noise IK msg2]
//   0x12 [type][u32 receiverIndex][u64 counter][ciphertext + tag]   (header = AEAD associated data)
//   0x13 [type][u32 index]   unauthenticated hint: "no session for that index"
//   0x14 [type][u32 receiverIndex][nonce 24][sealed cookie 32]   cookie reply (cookie.ts)
//
// Handshake flood defence (WireGuard §5.4): a message 1 must carry mac1 (keyed
// by our public key) before anything else is done with it; under load it must
// also carry mac2 (a cookie proving its sender receives at its source), else it
// only gets a cookie reply; past that, a per-source token bucket and then the
// global per-second budget decide whether the Noise DH work is done.
//
// Rules that make this converge (see also session.ts):
//  - Key confirmation: the initiator sends on a new session at once (it saw
//    message 2); the responder keeps sending on its old session until a packet
//    authenticates on the new one. An initiator with nothing queued sends an
//    empty Data packet (keepalive) for that. Empty plaintext is never a 'message'.
//  - Simultaneous initiation: the side with the larger static key keeps its own
//    handshake and ignores the other's message 1; the other side answers it and
//    abandons its own. A message 1 written before its sender answered ours is
//    refused by the timestamp rule (timestamps from message 2 count too), so the
//    two crossing handshakes cannot both complete.
//  - Rekey: new handshake before rekeyAfterMs/rekeyAfterBytes; the old session
//    stays receive-only for graceMs; nothing is sent after rejectAfter (1.5x).
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import { PacketType } from '../wire/packet-types.ts';
import { addressKey, type Address } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import type { Identity } from './identity.ts';
import { IkInitiator, IkResponder, MSG1_BYTES, MSG2_BYTES, type HandshakeResult, type Hello } from './handshake.ts';
import { TAG_BYTES } from './aead.ts';
import { DATA_HEADER_BYTES, REKEY_AFTER_MESSAGES, SecureSession, type SessionInit, type SessionRole } from './session.ts';
import { HintLimiter, LoadMeter, SourceBuckets, pathKey } from './rate-limit.ts';
import { CookieChecker, COOKIE_REPLY_BYTES, COOKIE_USE_MS, MAC_BYTES, openCookieReply, responderKeys, stampMacs, type ResponderKeys } from './cookie.ts';

const INIT_HEADER = 5;
const INIT_BYTES = INIT_HEADER + MSG1_BYTES + 2 * MAC_BYTES;
const RESP_HEADER = 9;
const DATA_MIN = DATA_HEADER_BYTES + TAG_BYTES;
const DEFAULT_GRACE_MS = 30_000;
const DEFAULT_MAX_QUEUE = 256;
/** Responder sessions waiting for their first packet (one per accepted message 1 retry). */
const MAX_UNCONFIRMED = 8;
const MAX_PREVIOUS = 3;
const HINT_INTERVAL_MS = 1000;
const HINT_GLOBAL_PER_SECOND = 100;
/** Message 1s waiting on an async verifyPeer: beyond this they are dropped. */
const MAX_VERIFYING = 256;
/** Static keys whose newest hello timestamp is remembered (about 100 bytes each). */
const MAX_HELLO_KEYS = 65_536;
/**
 * Reading a message 1 costs two X25519 operations before we know anything about
 * the sender (~0.2 ms): cap how many we read per second so a flood of junk
 * handshakes cannot eat the CPU the data path needs. Real peers need ~1 per rekey.
 */
const DEFAULT_MAX_INITS_PER_SECOND = 500;
/** Above this rate of message 1s we are under load: cookies required. */
const DEFAULT_UNDER_LOAD_INITS_PER_SECOND = 100;
/** Message 1s one source may have read per second, and its burst (WireGuard: 20/s, burst 5, per IP). */
const DEFAULT_SOURCE_INITS_PER_SECOND = 20;
const SOURCE_BURST = 5;
/** Cookie-triggered resends of message 1 per handshake (each answers a cookie reply at once). */
const MAX_COOKIE_RESENDS = 2;
const SWEEP_MS = 5000;
const EMPTY = Buffer.alloc(0);

export interface SessionManagerOptions {
  identity: Identity;
  localAddress: Address;
  bootId: Buffer; // 8 bytes, new on every start
  /**
   * Deliver a packet to the peer. Takes ownership of `packet`. `via` is the path
   * given to sendVia() (path probes); otherwise undefined and the daemon picks the path.
   */
  send(peerKey: number, packet: Buffer, via?: unknown): void;
  /** Answer on the path a packet came from: used only for the 0x13 hint to unknown senders. */
  sendRaw?(packet: Buffer, path: unknown): void;
  /**
   * Is `publicKey` really the key bound to `address` (registry), and may it talk to us (trust)?
   * Without it, a message 1 is accepted unless we already know a different key for that address.
   */
  verifyPeer?(address: Address, publicKey: Buffer): boolean | Promise<boolean>;
  rekeyAfterMs?: number;
  rekeyAfterBytes?: number;
  handshakeRetryMs?: number;
  handshakeTimeoutMs?: number;
  /** How long a replaced session still decrypts (reordering, in-flight packets). */
  graceMs?: number;
  /** Plaintexts queued per peer while a handshake runs (oldest dropped beyond). */
  maxQueue?: number;
  /** Message 1s read per second at most (the rest are dropped as dropBusy). */
  maxInitsPerSecond?: number;
  /** Static keys whose newest hello timestamp is remembered (replay protection of message 1; default 65536). */
  maxHelloKeys?: number;
  /** Rate of message 1s (of the right size) above which a cookie (mac2) is required. */
  underLoadInitsPerSecond?: number;
  /** Message 1s read per second per source (burst: a quarter of it, at least 5); cookie replies per source are capped the same way. */
  sourceInitsPerSecond?: number;
  /**
   * Who sent a packet, as far as the underlay can tell: `bucket` is what the
   * per-source limits count by (an IP, or a relayed node's address), `cookie`
   * what a cookie is bound to (IP:port, or that node's address). Default: pathKey(path) for both.
   */
  sourceOf?(path: unknown): { bucket: string; cookie: string };
  now?: () => number;
}

export interface PeerRef {
  address: Address;
  publicKey: Buffer;
}

/** Payload of the 'session' event. */
export interface SessionEventInfo {
  address: Address;
  publicKey: Buffer;
  bootId: Buffer;
  path: unknown;
}

export interface SessionInfo {
  established: boolean;
  role: SessionRole | null;
  /** When the current session was established (opts.now() clock). */
  establishedAt: number | null;
  ageMs: number | null;
  localIndex: number | null;
  remoteIndex: number | null;
  sendCounter: number;
  bytesSent: number;
  highestReceived: number;
  handshaking: boolean;
  handshakeAttempts: number;
  queued: number;
  rekeys: number;
  previousSessions: number;
  unconfirmedSessions: number;
  remoteBootId: string | null;
}

export interface SessionStats {
  dropMalformed: number;
  dropAuth: number;
  dropReplay: number;
  dropExpired: number;
  dropUnknownIndex: number;
  dropStaleHandshake: number;
  dropRejectedPeer: number;
  dropTieBreak: number;
  dropBusy: number;
  /** Message 1 with a wrong mac1 (not written for our key: junk). */
  dropMac1: number;
  /** Message 1 over its source's share (sourceInitsPerSecond). */
  dropSourceLimited: number;
  cookieRepliesSent: number;
  /** Under load, a message 1 without a valid cookie whose source was already sent its share of cookie replies. */
  cookieRepliesLimited: number;
  cookieRepliesReceived: number;
  dropQueueOverflow: number;
  dropNoSession: number;
  handshakesInitiated: number;
  handshakeRetries: number;
  handshakesResponded: number;
  handshakesCompleted: number;
  handshakesFailed: number;
  rekeys: number;
  peerRestarts: number;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  keepalivesIn: number;
  keepalivesOut: number;
  hintsSent: number;
  hintsReceived: number;
  hintRehandshakes: number;
  sendErrors: number;
  listenerErrors: number;
  internalErrors: number;
}

interface Pending {
  attempts: number;
  cookieResends: number;
  indexes: number[];
  timer: NodeJS.Timeout | undefined;
}

interface PeerState {
  key: number;
  address: Address;
  publicKey: Buffer;
  /** The session we send on (confirmed). */
  current: ManagedSession | undefined;
  /** Responder sessions awaiting their first authenticated packet, oldest first. */
  unconfirmed: ManagedSession[];
  /** Replaced sessions, receive-only until their recvUntil. */
  previous: ManagedSession[];
  pending: Pending | undefined;
  queue: Buffer[];
  /** Boot id of the last confirmed session: a change means the peer restarted. */
  bootId: Buffer | undefined;
  lastHintAt: number;
  rekeys: number;
  /** mac1/cookie keys derived from publicKey (cookie.ts). */
  macKeys: ResponderKeys;
  /** The last cookie the peer sent us, and when (mac2 of our message 1s while fresh). */
  cookie: Buffer | undefined;
  cookieAt: number;
}

class ManagedSession extends SecureSession {
  readonly peer: PeerState;
  constructor(init: SessionInit, peer: PeerState) {
    super(init);
    this.peer = peer;
  }
}

interface Attempt {
  peer: PeerState;
  initiator: IkInitiator;
  /** mac1 of the message 1 sent: the associated data of a cookie reply to it. */
  mac1: Buffer;
  /** A cookie reply to this message 1 was already acted on. */
  cookied: boolean;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

function newStats(): SessionStats {
  return {
    dropMalformed: 0,
    dropAuth: 0,
    dropReplay: 0,
    dropExpired: 0,
    dropUnknownIndex: 0,
    dropStaleHandshake: 0,
    dropRejectedPeer: 0,
    dropTieBreak: 0,
    dropBusy: 0,
    dropMac1: 0,
    dropSourceLimited: 0,
    cookieRepliesSent: 0,
    cookieRepliesLimited: 0,
    cookieRepliesReceived: 0,
    dropQueueOverflow: 0,
    dropNoSession: 0,
    handshakesInitiated: 0,
    handshakeRetries: 0,
    handshakesResponded: 0,
    handshakesCompleted: 0,
    handshakesFailed: 0,
    rekeys: 0,
    peerRestarts: 0,
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    keepalivesIn: 0,
    keepalivesOut: 0,
    hintsSent: 0,
    hintsReceived: 0,
    hintRehandshakes: 0,
    sendErrors: 0,
    listenerErrors: 0,
    internalErrors: 0,
  };
}

/**
 * Events:
 *  'message'          (peerKey, plaintext: Buffer, path)  authenticated data only; plaintext is a view into the packet
 *  'session'          (peerKey, SessionEventInfo)         initiator: message 2 authenticated; responder: message 1
 *                                                         accepted (before message 2 is sent, so the daemon knows the peer)
 *  'peer-restarted'   (peerKey)                           the peer's bootId changed: reset state kept above
 *                                                         (always before that session's 'session' and 'message's)
 *  'path'             (peerKey, path)                     an authenticated packet arrived on `path`
 *  'handshake-failed' (peerKey)                           no answer within handshakeTimeoutMs; queue dropped
 */
export class SessionManager extends EventEmitter {
  readonly stats: SessionStats = newStats();
  /** The last error thrown by a listener or by a bug in here (kept for debugging; never rethrown). */
  lastError: unknown = undefined;

  private readonly opts: SessionManagerOptions;
  private readonly rekeyAfterMs: number;
  private readonly rejectAfterMs: number;
  /** Responder-side sessions rekey a little later, so usually only the initiator does. */
  private readonly responderRekeyAfterMs: number;
  private readonly rekeyAfterBytes: number;
  private readonly retryMs: number;
  private readonly timeoutMs: number;
  private readonly graceMs: number;
  private readonly maxQueue: number;
  private readonly maxInitsPerSecond: number;
  private initWindowStart = -Infinity;
  private initWindowCount = 0;
  private readonly cookies: CookieChecker;
  private readonly load: LoadMeter;
  private readonly sourceInits: SourceBuckets;
  private readonly sourceCookies: SourceBuckets;
  private readonly sourceOf: (path: unknown) => { bucket: string; cookie: string };
  private readonly now: () => number;
  private readonly localKey: number;

  private readonly peers = new Map<number, PeerState>();
  /** Every live session by the index we chose (how Data packets find their session). */
  private readonly byIndex = new Map<number, ManagedSession>();
  /** Sessions by the index the peer chose (how a 0x13 hint finds its session). */
  private readonly byRemoteIndex = new Map<number, ManagedSession>();
  /** Our handshakes in flight, by the index in their message 1 (one per retry). */
  private readonly attempts = new Map<number, Attempt>();
  /**
   * Newest hello timestamp seen from each static key (message 1 replay protection),
   * least recently updated first. Bounded: past MAX_HELLO_KEYS the key not heard from
   * for longest is forgotten. A replay of such a key's old message 1 finds no session
   * to disturb (we have not talked to it for a long time), costs a message 2 smaller
   * than what was sent and one rate-limited registry check, and nothing more.
   */
  private readonly lastHelloTs = new Map<string, number>();
  private readonly hintLimiter = new HintLimiter(HINT_INTERVAL_MS, HINT_GLOBAL_PER_SECOND);
  private readonly indexScratch = Buffer.alloc(4);
  private readonly sweepTimer: NodeJS.Timeout;
  private verifying = 0;
  private lastOwnTs = 0;
  private destroyed = false;

  constructor(opts: SessionManagerOptions) {
    super();
    if (!Buffer.isBuffer(opts.bootId) || opts.bootId.length !== 8) {
      throw new PilotError('BAD_ARGUMENT', 'bootId must be an 8-byte Buffer');
    }
    this.opts = opts;
    this.rekeyAfterMs = positive(opts.rekeyAfterMs, 120_000, 'rekeyAfterMs');
    this.rejectAfterMs = this.rekeyAfterMs * 1.5;
    this.responderRekeyAfterMs = this.rekeyAfterMs + Math.min(10_000, this.rekeyAfterMs / 10);
    this.rekeyAfterBytes = positive(opts.rekeyAfterBytes, 2 ** 30, 'rekeyAfterBytes');
    this.retryMs = positive(opts.handshakeRetryMs, 1000, 'handshakeRetryMs');
    this.timeoutMs = positive(opts.handshakeTimeoutMs, 10_000, 'handshakeTimeoutMs');
    this.graceMs = positive(opts.graceMs, DEFAULT_GRACE_MS, 'graceMs');
    this.maxQueue = positive(opts.maxQueue, DEFAULT_MAX_QUEUE, 'maxQueue');
    this.maxInitsPerSecond = positive(opts.maxInitsPerSecond, DEFAULT_MAX_INITS_PER_SECOND, 'maxInitsPerSecond');
    this.now = opts.now ?? Date.now;
    this.cookies = new CookieChecker(opts.identity.publicKey, this.now);
    this.load = new LoadMeter(positive(opts.underLoadInitsPerSecond, DEFAULT_UNDER_LOAD_INITS_PER_SECOND, 'underLoadInitsPerSecond'));
    const perSource = positive(opts.sourceInitsPerSecond, DEFAULT_SOURCE_INITS_PER_SECOND, 'sourceInitsPerSecond');
    const burst = Math.max(SOURCE_BURST, Math.ceil(perSource / 4)); // a quarter second's worth, 5 at the default
    this.sourceInits = new SourceBuckets(perSource, burst);
    this.sourceCookies = new SourceBuckets(perSource, burst);
    this.sourceOf =
      opts.sourceOf ??
      ((path: unknown) => {
        const k = pathKey(path);
        return { bucket: k, cookie: k };
      });
    this.localKey = addressKey(opts.localAddress);
    this.sweepTimer = setInterval(() => this.safely(() => this.sweep()), SWEEP_MS);
    this.sweepTimer.unref();
  }

  // ---------------- sending ----------------

  /**
   * Encrypt `plaintext` for the peer and hand it to opts.send. Without a usable
   * session it is copied into a bounded queue and a handshake starts.
   * An empty plaintext is a keepalive (refreshes the peer's 'path', no 'message').
   */
  sendTo(peer: PeerRef, plaintext: Buffer): void {
    if (this.destroyed) return;
    const st = this.peerFor(peer.address, peer.publicKey);
    const now = this.now();
    const s = this.sendSession(st, now);
    if (s !== undefined) {
      this.maybeRekey(st, s, now);
      this.transmit(s, s.seal(plaintext), plaintext.length);
      return;
    }
    this.enqueue(st, Buffer.from(plaintext));
    this.initiate(st);
  }

  /**
   * Zero-copy variant: `packet` is [DATA_HEADER_BYTES of room][plaintext][TAG_BYTES of room];
   * it is encrypted in place and handed to opts.send (which then owns it).
   */
  sendToInPlace(peer: PeerRef, packet: Buffer): void {
    if (this.destroyed) return;
    if (packet.length < DATA_MIN) throw new PilotError('BAD_ARGUMENT', `packet must have ${DATA_MIN} bytes of header and tag room`);
    const st = this.peerFor(peer.address, peer.publicKey);
    const now = this.now();
    const s = this.sendSession(st, now);
    if (s !== undefined) {
      this.maybeRekey(st, s, now);
      const len = s.sealInPlace(packet);
      this.transmit(s, packet, len);
      return;
    }
    this.enqueue(st, Buffer.from(packet.subarray(DATA_HEADER_BYTES, packet.length - TAG_BYTES)));
    this.initiate(st);
  }

  /**
   * Encrypt with the current session and send on a path of the caller's choice
   * (connectivity checks). Returns false, sending nothing, when there is no usable
   * session: probes are never queued and never start a handshake.
   */
  sendVia(peer: PeerRef, plaintext: Buffer, via: unknown): boolean {
    if (this.destroyed) return false;
    const st = this.peerFor(peer.address, peer.publicKey);
    const s = this.sendSession(st, this.now());
    if (s === undefined) return false;
    this.stats.packetsOut++;
    this.stats.bytesOut += plaintext.length;
    try {
      this.opts.send(st.key, s.seal(plaintext), via);
    } catch (err) {
      this.stats.sendErrors++;
      this.lastError = err;
    }
    return true;
  }

  /** The session to encrypt with now, if any. */
  private sendSession(st: PeerState, now: number): ManagedSession | undefined {
    const c = st.current;
    if (c?.canSend(now)) return c;
    // No confirmed session (first contact, or we lost a simultaneous open): a
    // young responder session is the best there is, unless it reveals a restart;
    // then the queue waits for the confirmation, which resets everything anyway.
    for (let i = st.unconfirmed.length - 1; i >= 0; i--) {
      const u = st.unconfirmed[i]!;
      if (now - u.created < this.timeoutMs && u.canSend(now) && (st.bootId === undefined || st.bootId.equals(u.remoteBootId))) return u;
    }
    return undefined;
  }

  private maybeRekey(st: PeerState, s: ManagedSession, now: number): void {
    if (st.pending !== undefined || !s.confirmed) return;
    const age = now - s.created;
    const due =
      age >= (s.role === 'initiator' ? this.rekeyAfterMs : this.responderRekeyAfterMs) ||
      s.bytesSent >= this.rekeyAfterBytes ||
      s.sendCounter >= REKEY_AFTER_MESSAGES;
    if (!due) return;
    // The peer just started a fresh handshake itself: let that one finish instead of racing it.
    const u = st.unconfirmed[st.unconfirmed.length - 1];
    if (u !== undefined && now - u.created < this.timeoutMs) return;
    this.initiate(st);
  }

  private transmit(s: ManagedSession, packet: Buffer, plainLen: number): void {
    this.stats.packetsOut++;
    this.stats.bytesOut += plainLen;
    if (plainLen === 0) this.stats.keepalivesOut++;
    this.out(s.peer.key, packet);
  }

  private out(peerKey: number, packet: Buffer): void {
    try {
      this.opts.send(peerKey, packet);
    } catch (err) {
      this.stats.sendErrors++;
      this.lastError = err;
    }
  }

  private enqueue(st: PeerState, copy: Buffer): void {
    if (st.queue.length >= this.maxQueue) {
      st.queue.shift();
      this.stats.dropQueueOverflow++;
    }
    st.queue.push(copy);
  }

  private flush(st: PeerState, now: number): void {
    if (st.queue.length === 0) return;
    const s = this.sendSession(st, now);
    if (s === undefined) return;
    const q = st.queue;
    st.queue = [];
    for (const m of q) this.transmit(s, s.seal(m), m.length);
  }

  // ---------------- handshakes we start ----------------

  private initiate(st: PeerState): void {
    if (st.pending !== undefined || this.destroyed) return;
    st.pending = { attempts: 0, cookieResends: 0, indexes: [], timer: undefined };
    this.stats.handshakesInitiated++;
    this.sendInit(st, st.pending);
  }

  /**
   * One message 1 per retry, each with a fresh ephemeral key, timestamp and index.
   * `extra`: an immediate resend answering a cookie reply (not counted as a retry).
   */
  private sendInit(st: PeerState, p: Pending, extra = false): void {
    if (st.pending !== p || this.destroyed) return;
    if (!extra && p.attempts > 0 && p.attempts * this.retryMs >= this.timeoutMs) return this.failHandshake(st);
    let init: IkInitiator;
    try {
      init = new IkInitiator(this.opts.identity, st.publicKey, this.hello());
    } catch {
      return this.failHandshake(st); // not a usable Ed25519 key
    }
    if (!extra) p.attempts++;
    if (p.attempts > 1 || extra) this.stats.handshakeRetries++;
    const index = this.newIndex();
    const pkt = Buffer.allocUnsafe(INIT_BYTES);
    pkt[0] = PacketType.HandshakeInit;
    pkt.writeUInt32BE(index, 1);
    init.message1.copy(pkt, INIT_HEADER);
    const fresh = st.cookie !== undefined && this.now() - st.cookieAt < COOKIE_USE_MS;
    const mac1 = stampMacs(pkt, st.macKeys, fresh ? st.cookie : undefined);
    // Earlier attempts stay valid: on a slow path their message 2 may still arrive.
    this.attempts.set(index, { peer: st, initiator: init, mac1, cookied: false });
    p.indexes.push(index);
    clearTimeout(p.timer);
    p.timer = setTimeout(() => this.safely(() => this.sendInit(st, p)), this.retryMs);
    p.timer.unref();
    this.out(st.key, pkt); // last: a synchronous link may complete the handshake inside
  }

  private failHandshake(st: PeerState): void {
    this.clearPending(st);
    this.stats.handshakesFailed++;
    this.stats.dropNoSession += st.queue.length;
    st.queue = [];
    this.safeEmit('handshake-failed', st.key);
  }

  private clearPending(st: PeerState): void {
    const p = st.pending;
    if (p === undefined) return;
    clearTimeout(p.timer);
    for (const i of p.indexes) this.attempts.delete(i);
    st.pending = undefined;
  }

  /** Strictly increasing, so two handshakes in one millisecond are not taken for replays. */
  private hello(): Hello {
    this.lastOwnTs = Math.max(this.now(), this.lastOwnTs + 1);
    return { address: this.opts.localAddress, bootId: this.opts.bootId, timestamp: this.lastOwnTs };
  }

  private newIndex(): number {
    for (;;) {
      crypto.randomFillSync(this.indexScratch);
      const i = this.indexScratch.readUInt32BE(0);
      if (i !== 0 && !this.byIndex.has(i) && !this.attempts.has(i)) return i;
    }
  }

  // ---------------- receiving ----------------

  /**
   * Handle a 0x10-0x13 packet. Takes ownership of `packet` (Data is decrypted
   * in place; the 'message' plaintext is a view into it). Never throws: every
   * bad packet is dropped and counted in `stats`.
   */
  handlePacket(packet: Buffer, path: unknown): void {
    if (this.destroyed) return;
    try {
      if (!Buffer.isBuffer(packet) || packet.length === 0) {
        this.stats.dropMalformed++;
        return;
      }
      switch (packet[0]) {
        case PacketType.Data:
          return this.onData(packet, path);
        case PacketType.HandshakeInit:
          return this.onInit(packet, path);
        case PacketType.HandshakeResp:
          return this.onResp(packet, path);
        case PacketType.SessionUnknown:
          return this.onHint(packet);
        case PacketType.HandshakeCookie:
          return this.onCookieReply(packet);
        default:
          this.stats.dropMalformed++;
      }
    } catch (err) {
      this.stats.internalErrors++;
      this.lastError = err;
    }
  }

  private onData(pkt: Buffer, path: unknown): void {
    if (pkt.length < DATA_MIN) {
      this.stats.dropMalformed++;
      return;
    }
    const index = pkt.readUInt32BE(1);
    const s = this.byIndex.get(index);
    if (s === undefined) {
      this.stats.dropUnknownIndex++;
      // Data that overtook message 2 of our own handshake is not worth a hint.
      if (!this.attempts.has(index)) this.sendHint(index, path);
      return;
    }
    const now = this.now();
    if (now > s.recvUntil) {
      this.stats.dropExpired++;
      return;
    }
    const plain = s.open(pkt);
    if (plain === 'replay') {
      this.stats.dropReplay++;
      return;
    }
    if (plain === 'auth') {
      this.stats.dropAuth++;
      return;
    }
    const st = s.peer;
    this.stats.packetsIn++;
    this.stats.bytesIn += plain.length;
    if (!s.confirmed) this.confirm(s, path, now);
    this.safeEmit('path', st.key, path);
    if (this.destroyed || this.byIndex.get(index) !== s) return; // a listener tore the peer down
    this.flush(st, now);
    if (plain.length === 0) this.stats.keepalivesIn++;
    else this.safeEmit('message', st.key, plain, path);
  }

  private onInit(pkt: Buffer, path: unknown): void {
    if (pkt.length !== INIT_BYTES) {
      this.stats.dropMalformed++;
      return;
    }
    // Cheapest checks first: under load, a message 1 without a cookie can only
    // earn a cookie reply, so its source's share of those is checked before any
    // hashing (a flood then costs a map lookup per packet); then mac1 (one hash),
    // the cookie (mac2), the per-source share, and only then the global budget and the DH work.
    const now = this.now();
    const loaded = this.load.note(now, this.verifying >= MAX_VERIFYING / 2);
    const src = this.sourceOf(path);
    if (loaded && !hasMac2(pkt)) {
      if (!this.sourceCookies.allow(src.bucket, now)) {
        this.stats.cookieRepliesLimited++;
        return;
      }
      if (!this.cookies.mac1Ok(pkt)) {
        this.stats.dropMac1++;
        return;
      }
      return this.sendCookie(pkt, src, path);
    }
    if (!this.cookies.mac1Ok(pkt)) {
      this.stats.dropMac1++;
      return;
    }
    if (loaded && !this.cookies.mac2Ok(pkt, src.cookie)) {
      if (this.sourceCookies.allow(src.bucket, now)) this.sendCookie(pkt, src, path);
      else this.stats.cookieRepliesLimited++;
      return;
    }
    if (!this.sourceInits.allow(src.bucket, now)) {
      this.stats.dropSourceLimited++;
      return;
    }
    if (this.verifying >= MAX_VERIFYING || !this.initBudget()) {
      this.stats.dropBusy++;
      return;
    }
    const remoteIndex = pkt.readUInt32BE(1);
    const r = IkResponder.read(this.opts.identity, pkt.subarray(INIT_HEADER, INIT_HEADER + MSG1_BYTES));
    if (r === null) {
      this.stats.dropAuth++;
      return;
    }
    const hello = r.remote;
    if (addressKey(hello.address) === this.localKey || r.remoteStatic.equals(this.opts.identity.publicKey)) {
      this.stats.dropRejectedPeer++;
      return;
    }
    const keyId = r.remoteStatic.toString('base64');
    if (hello.timestamp <= (this.lastHelloTs.get(keyId) ?? -1)) {
      this.stats.dropStaleHandshake++;
      return;
    }
    let verdict: unknown;
    try {
      verdict = this.opts.verifyPeer ? this.opts.verifyPeer(hello.address, r.remoteStatic) : this.unverifiedBindingOk(hello.address, r.remoteStatic);
    } catch {
      verdict = false;
    }
    if (!isThenable(verdict)) return this.accept(r, remoteIndex, keyId, verdict === true, path);
    this.verifying++;
    Promise.resolve(verdict)
      .then(
        (ok) => ok === true,
        () => false,
      )
      .then((ok) => {
        this.verifying--;
        this.safely(() => this.accept(r, remoteIndex, keyId, ok, path));
      });
  }

  /** Under load: prove your source first. The reply is smaller than `pkt` (no amplification). */
  private sendCookie(pkt: Buffer, src: { bucket: string; cookie: string }, path: unknown): void {
    const sendRaw = this.opts.sendRaw;
    if (sendRaw === undefined) return;
    this.stats.cookieRepliesSent++;
    try {
      sendRaw(this.cookies.reply(pkt, src.cookie), path);
    } catch (err) {
      this.stats.sendErrors++;
      this.lastError = err;
    }
  }

  /**
   * A cookie reply to one of our message 1s: keep the cookie, and resend at once
   * with mac2 (WireGuard waits for its retransmit timer; answering now makes first
   * contact under load cost one round trip, not a retry interval). Only a party
   * that saw our message 1 can write one (its mac1 is the associated data), and
   * each message 1 is resent once at most, a few times per handshake.
   */
  private onCookieReply(pkt: Buffer): void {
    if (pkt.length !== COOKIE_REPLY_BYTES) {
      this.stats.dropMalformed++;
      return;
    }
    const a = this.attempts.get(pkt.readUInt32BE(1));
    if (a === undefined) {
      this.stats.dropStaleHandshake++;
      return;
    }
    const st = a.peer;
    const cookie = openCookieReply(pkt, st.macKeys, a.mac1);
    if (cookie === null) {
      this.stats.dropAuth++;
      return;
    }
    this.stats.cookieRepliesReceived++;
    st.cookie = cookie;
    st.cookieAt = this.now();
    const p = st.pending;
    if (p === undefined || a.cookied || p.cookieResends >= MAX_COOKIE_RESENDS) return;
    a.cookied = true;
    p.cookieResends++;
    this.sendInit(st, p, true);
  }

  /** One more message 1 within this second's budget? */
  private initBudget(): boolean {
    const now = this.now();
    if (now - this.initWindowStart >= 1000) {
      this.initWindowStart = now;
      this.initWindowCount = 0;
    }
    return this.initWindowCount++ < this.maxInitsPerSecond;
  }

  /** Without verifyPeer: never let an unknown key take over an address we know. */
  private unverifiedBindingOk(address: Address, publicKey: Buffer): boolean {
    const st = this.peers.get(addressKey(address));
    return st === undefined || st.publicKey.equals(publicKey);
  }

  private noteHello(keyId: string, timestamp: number): void {
    this.lastHelloTs.delete(keyId); // re-inserted last: Map order is recency
    this.lastHelloTs.set(keyId, timestamp);
    if (this.lastHelloTs.size > (this.opts.maxHelloKeys ?? MAX_HELLO_KEYS)) this.lastHelloTs.delete(this.lastHelloTs.keys().next().value!);
  }

  /** Static keys whose newest hello timestamp is remembered now (bounded by maxHelloKeys). */
  get rememberedHelloKeys(): number {
    return this.lastHelloTs.size;
  }

  /** Message 1 passed Noise and the timestamp check; `ok` is the verifyPeer verdict. */
  private accept(r: IkResponder, remoteIndex: number, keyId: string, ok: boolean, path: unknown): void {
    if (this.destroyed) return;
    if (!ok) {
      this.stats.dropRejectedPeer++;
      return;
    }
    const hello = r.remote;
    // Checked again: another message 1 may have been accepted while verifyPeer ran.
    if (hello.timestamp <= (this.lastHelloTs.get(keyId) ?? -1)) {
      this.stats.dropStaleHandshake++;
      return;
    }
    this.noteHello(keyId, hello.timestamp);
    const st = this.peerFor(hello.address, r.remoteStatic);
    if (st.pending !== undefined && Buffer.compare(this.opts.identity.publicKey, r.remoteStatic) > 0) {
      // Both sides initiated: ours wins, the peer will answer it. The message was
      // fresh and authentic (only the key holder can write a newer one), so the
      // peer is reachable on this path.
      this.safeEmit('path', st.key, path);
      this.stats.dropTieBreak++;
      return;
    }
    const reply = r.reply(this.hello());
    if (reply === null) {
      this.stats.dropAuth++;
      return;
    }
    this.clearPending(st); // if we lost a simultaneous open, theirs replaces ours
    const now = this.now();
    const localIndex = this.newIndex();
    const s = this.newSession(st, localIndex, remoteIndex, 'responder', reply.result, now);
    st.unconfirmed.push(s);
    while (st.unconfirmed.length > MAX_UNCONFIRMED) this.forget(st.unconfirmed.shift()!);
    this.stats.handshakesResponded++;
    // The daemon routes our answer by what it knows of the peer, so it hears
    // 'peer-restarted' (if so), 'session' and 'path' before message 2 leaves.
    const restarted = this.noteBootId(st, s);
    if (restarted) this.safeEmit('peer-restarted', st.key);
    this.emitSession(st, s, path);
    this.safeEmit('path', st.key, path);
    if (this.destroyed || this.byIndex.get(localIndex) !== s) return; // a listener tore the peer down
    const pkt = Buffer.allocUnsafe(RESP_HEADER + reply.message2.length);
    pkt[0] = PacketType.HandshakeResp;
    pkt.writeUInt32BE(localIndex, 1);
    pkt.writeUInt32BE(remoteIndex, 5);
    reply.message2.copy(pkt, RESP_HEADER);
    this.out(st.key, pkt);
    this.flush(st, now); // first contact / lost tie-break: the queue may leave on this session now
  }

  private onResp(pkt: Buffer, path: unknown): void {
    if (pkt.length !== RESP_HEADER + MSG2_BYTES) {
      this.stats.dropMalformed++;
      return;
    }
    const remoteIndex = pkt.readUInt32BE(1);
    const localIndex = pkt.readUInt32BE(5);
    const a = this.attempts.get(localIndex);
    if (a === undefined) {
      this.stats.dropStaleHandshake++;
      return;
    }
    const st = a.peer;
    const res = a.initiator.finish(pkt.subarray(RESP_HEADER));
    if (res === null || addressKey(res.address) !== st.key || !res.remoteStatic.equals(st.publicKey)) {
      this.attempts.delete(localIndex); // its Noise state is spent
      this.stats.dropAuth++;
      return;
    }
    const keyId = res.remoteStatic.toString('base64');
    // The peer's own clock: any message 1 it wrote before this answer is now stale.
    if (res.timestamp > (this.lastHelloTs.get(keyId) ?? -1)) this.noteHello(keyId, res.timestamp);
    this.clearPending(st);
    const now = this.now();
    const s = this.newSession(st, localIndex, remoteIndex, 'initiator', res, now);
    this.confirm(s, path, now);
    this.safeEmit('path', st.key, path);
    if (this.destroyed || st.current !== s) return; // a listener tore the peer down
    this.flush(st, now);
    // Key confirmation for the responder, which keeps its old session until then.
    if (s.sendCounter === 0) this.transmit(s, s.seal(EMPTY), 0);
  }

  private newSession(st: PeerState, localIndex: number, remoteIndex: number, role: SessionRole, keys: HandshakeResult, now: number): ManagedSession {
    const s = new ManagedSession(
      { localIndex, remoteIndex, role, keys, created: now, sendUntil: now + this.rejectAfterMs, recvUntil: now + this.rejectAfterMs + this.graceMs },
      st,
    );
    this.byIndex.set(localIndex, s);
    this.byRemoteIndex.set(remoteIndex, s);
    return s;
  }

  /** `s` is proven (message 2, or a packet authenticated on it): make it the one we send on. */
  private confirm(s: ManagedSession, path: unknown, now: number): void {
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
    if (restarted) this.safeEmit('peer-restarted', st.key);
    // A responder session was announced when message 1 was accepted.
    if (restarted || s.role === 'initiator') this.emitSession(st, s, path);
  }

  /**
   * Record the boot id `s` carries. A different one than before means the peer
   * restarted: every session and queued plaintext of its previous life is
   * dropped. Returns whether it restarted (the caller emits 'peer-restarted'
   * once its own state is consistent).
   */
  private noteBootId(st: PeerState, s: ManagedSession): boolean {
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
    this.stats.dropNoSession += st.queue.length;
    st.queue = [];
    this.stats.peerRestarts++;
    return true;
  }

  private emitSession(st: PeerState, s: ManagedSession, path: unknown): void {
    const info: SessionEventInfo = { address: st.address, publicKey: st.publicKey, bootId: s.remoteBootId, path };
    this.safeEmit('session', st.key, info);
  }

  private retire(st: PeerState, s: ManagedSession, now: number): void {
    s.recvUntil = Math.min(s.recvUntil, now + this.graceMs);
    if (this.byRemoteIndex.get(s.remoteIndex) === s) this.byRemoteIndex.delete(s.remoteIndex); // no longer sent on
    st.previous.push(s);
    while (st.previous.length > MAX_PREVIOUS) this.forget(st.previous.shift()!);
  }

  private forget(s: ManagedSession): void {
    if (this.byIndex.get(s.localIndex) === s) this.byIndex.delete(s.localIndex);
    if (this.byRemoteIndex.get(s.remoteIndex) === s) this.byRemoteIndex.delete(s.remoteIndex);
    s.wipe();
  }

  // ---------------- 0x13 hints ----------------

  private sendHint(index: number, path: unknown): void {
    const sendRaw = this.opts.sendRaw;
    if (sendRaw === undefined || !this.hintLimiter.allow(pathKey(path), this.now())) return;
    const pkt = Buffer.allocUnsafe(5);
    pkt[0] = PacketType.SessionUnknown;
    pkt.writeUInt32BE(index, 1);
    this.stats.hintsSent++;
    try {
      sendRaw(pkt, path);
    } catch (err) {
      this.stats.sendErrors++;
      this.lastError = err;
    }
  }

  /** Unauthenticated: it can only make us re-handshake (rate-limited), never tear anything down. */
  private onHint(pkt: Buffer): void {
    if (pkt.length !== 5) {
      this.stats.dropMalformed++;
      return;
    }
    this.stats.hintsReceived++;
    const s = this.byRemoteIndex.get(pkt.readUInt32BE(1));
    if (s === undefined) return;
    const st = s.peer;
    const now = this.now();
    if (st.pending !== undefined || now - st.lastHintAt < HINT_INTERVAL_MS) return;
    if (this.sendSession(st, now) !== s) return; // only about the session we send on
    st.lastHintAt = now;
    this.stats.hintRehandshakes++;
    this.initiate(st);
  }

  // ---------------- peers ----------------

  private peerFor(address: Address, publicKey: Buffer): PeerState {
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
        pending: undefined,
        queue: [],
        bootId: undefined,
        lastHintAt: -Infinity,
        rekeys: 0,
        macKeys: responderKeys(publicKey),
        cookie: undefined,
        cookieAt: -Infinity,
      };
      this.peers.set(key, st);
    } else if (st.publicKey !== publicKey && !st.publicKey.equals(publicKey)) {
      // Another key holds this address now: nothing of the old one may be used.
      this.resetPeer(st);
      st.publicKey = publicKey;
      st.bootId = undefined;
      st.macKeys = responderKeys(publicKey);
      st.cookie = undefined;
    }
    return st;
  }

  private resetPeer(st: PeerState): void {
    this.clearPending(st);
    if (st.current !== undefined) this.forget(st.current);
    for (const s of st.unconfirmed) this.forget(s);
    for (const s of st.previous) this.forget(s);
    st.current = undefined;
    st.unconfirmed = [];
    st.previous = [];
    this.stats.dropNoSession += st.queue.length;
    st.queue = [];
  }

  /** Free sessions past their receive deadline (the data path also checks lazily). */
  private sweep(): void {
    const now = this.now();
    this.sourceInits.sweep(now);
    this.sourceCookies.sweep(now);
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

  // ---------------- management ----------------

  /** Is there a session we can encrypt with right now? */
  hasSession(peerKey: number): boolean {
    const st = this.peers.get(peerKey);
    return st !== undefined && this.sendSession(st, this.now()) !== undefined;
  }

  sessionInfo(peerKey: number): SessionInfo | undefined {
    const st = this.peers.get(peerKey);
    if (st === undefined) return undefined;
    const s = st.current;
    const now = this.now();
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
      handshaking: st.pending !== undefined,
      handshakeAttempts: st.pending?.attempts ?? 0,
      queued: st.queue.length,
      rekeys: st.rekeys,
      previousSessions: st.previous.length,
      unconfirmedSessions: st.unconfirmed.length,
      remoteBootId: st.bootId?.toString('hex') ?? null,
    };
  }

  /** Forget everything about the peer (sessions, handshake, queue, boot id). */
  closeSession(peerKey: number): void {
    const st = this.peers.get(peerKey);
    if (st === undefined) return;
    this.resetPeer(st);
    this.peers.delete(peerKey);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearInterval(this.sweepTimer);
    for (const st of this.peers.values()) this.resetPeer(st);
    this.peers.clear();
    this.byIndex.clear();
    this.byRemoteIndex.clear();
    this.attempts.clear();
  }

  // ---------------- helpers ----------------

  private safeEmit(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (err) {
      this.stats.listenerErrors++;
      this.lastError = err;
    }
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.stats.internalErrors++;
      this.lastError = err;
    }
  }
}

/** Does a message 1 carry a cookie MAC at all (nonzero mac2)? No hashing: the cheap first question under load. */
function hasMac2(pkt: Buffer): boolean {
  for (let i = pkt.length - MAC_BYTES; i < pkt.length; i++) if (pkt[i] !== 0) return true;
  return false;
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!(typeof v === 'number' && v > 0)) throw new PilotError('BAD_ARGUMENT', `${name} must be a positive number`);
  return v;
}
