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
//  - Rekey: new handshake before rekeyAfterMs/rekeyAfterBytes (checked on every send,
//    sendVia probes and keepalives included, as in WireGuard); the old session
//    stays receive-only for graceMs; nothing is sent after rejectAfter (1.5x).
//
// Parts (each owns its state; this class routes packets between them and
// emits the events):
//   init-gate.ts     flood defence in front of the responder's Noise work
//   hello-memory.ts  message 1 replay protection (hello timestamps)
//   initiator.ts     handshakes we start: retries, attempts by index, cookies we were sent
//   session-table.ts    per-peer sessions, indexes, queue, boot id, sweep
//   session-stats.ts the counters all of them share
//   session-host.ts  what the host provides (SessionHost<P>), options, events
//
// The path a packet came on (P) is opaque here: the daemon's own type (src/nat/path.ts),
// passed back in events and to send/sendRaw, never looked into (crypto does not import nat).
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import { PacketType } from '../wire/packet-types.ts';
import { addressKey, type Address } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import { IkResponder, MSG1_BYTES } from './handshake.ts';
import { TAG_BYTES } from './aead.ts';
import { DATA_HEADER_BYTES, REKEY_AFTER_MESSAGES } from './session.ts';
import { HintLimiter, pathKey } from './rate-limit.ts';
import { newSessionStats, type SessionInfo, type SessionStats } from './session-stats.ts';
import { HelloMemory } from './hello-memory.ts';
import { DEFAULT_MAX_INITS_PER_SECOND, DEFAULT_SOURCE_INITS_PER_SECOND, DEFAULT_UNDER_LOAD_INITS_PER_SECOND, InitGate } from './init-gate.ts';
import { INIT_BYTES, INIT_HEADER, Initiator, RESP_HEADER } from './initiator.ts';
import { SessionTable, type ManagedSession, type PeerState } from './session-table.ts';
import type { PeerRef, SessionEvents, SessionManagerOptions } from './session-host.ts';

export type { SessionInfo, SessionStats } from './session-stats.ts';
export type { HandshakeSource } from './init-gate.ts';
export type { PeerRef, SessionEventInfo, SessionEvents, SessionHost, SessionManagerOptions } from './session-host.ts';

const DATA_MIN = DATA_HEADER_BYTES + TAG_BYTES;
const DEFAULT_GRACE_MS = 30_000;
const DEFAULT_MAX_QUEUE = 256;
const HINT_INTERVAL_MS = 1000;
const HINT_GLOBAL_PER_SECOND = 100;
const SWEEP_MS = 5000;
const EMPTY = Buffer.alloc(0);

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** Events: SessionEvents<P> (session-host.ts): 'message', 'session', 'peer-restarted', 'path', 'handshake-failed'. */
export class SessionManager<P> extends EventEmitter<SessionEvents<P>> {
  readonly stats: SessionStats = newSessionStats();
  /** The last error thrown by a listener or by a bug in here (kept for debugging; never rethrown). */
  lastError: unknown = undefined;

  private readonly opts: SessionManagerOptions<P>;
  private readonly rekeyAfterMs: number;
  /** Responder-side sessions rekey a little later, so usually only the initiator does. */
  private readonly responderRekeyAfterMs: number;
  private readonly rekeyAfterBytes: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly localKey: number;
  private readonly gate: InitGate<P>;
  private readonly hellos: HelloMemory;
  private readonly initiator: Initiator;
  private readonly table: SessionTable;
  private readonly hintLimiter = new HintLimiter(HINT_INTERVAL_MS, HINT_GLOBAL_PER_SECOND);
  private readonly indexScratch = Buffer.alloc(4);
  private readonly sweepTimer: NodeJS.Timeout;
  private destroyed = false;

  constructor(opts: SessionManagerOptions<P>) {
    super();
    if (!Buffer.isBuffer(opts.bootId) || opts.bootId.length !== 8) {
      throw new PilotError('BAD_ARGUMENT', 'bootId must be an 8-byte Buffer');
    }
    this.opts = opts;
    this.rekeyAfterMs = positive(opts.rekeyAfterMs, 120_000, 'rekeyAfterMs');
    const rejectAfterMs = this.rekeyAfterMs * 1.5;
    this.responderRekeyAfterMs = this.rekeyAfterMs + Math.min(10_000, this.rekeyAfterMs / 10);
    this.rekeyAfterBytes = positive(opts.rekeyAfterBytes, 2 ** 30, 'rekeyAfterBytes');
    const retryMs = positive(opts.handshakeRetryMs, 1000, 'handshakeRetryMs');
    this.timeoutMs = positive(opts.handshakeTimeoutMs, 10_000, 'handshakeTimeoutMs');
    const graceMs = positive(opts.graceMs, DEFAULT_GRACE_MS, 'graceMs');
    const maxQueue = positive(opts.maxQueue, DEFAULT_MAX_QUEUE, 'maxQueue');
    const now = opts.now ?? Date.now;
    this.now = now;
    this.localKey = addressKey(opts.localAddress);
    this.gate = new InitGate<P>(
      {
        now,
        sourceOf:
          opts.sourceOf ??
          ((path: P) => {
            const k = pathKey(path);
            return { bucket: k, cookie: k };
          }),
        ...(opts.sendRaw !== undefined ? { sendCookie: (reply: Buffer, path: P) => this.raw(reply, path) } : {}),
      },
      {
        publicKey: opts.identity.publicKey,
        maxInitsPerSecond: positive(opts.maxInitsPerSecond, DEFAULT_MAX_INITS_PER_SECOND, 'maxInitsPerSecond'),
        underLoadInitsPerSecond: positive(opts.underLoadInitsPerSecond, DEFAULT_UNDER_LOAD_INITS_PER_SECOND, 'underLoadInitsPerSecond'),
        sourceInitsPerSecond: positive(opts.sourceInitsPerSecond, DEFAULT_SOURCE_INITS_PER_SECOND, 'sourceInitsPerSecond'),
      },
      this.stats,
    );
    this.hellos = new HelloMemory({
      localAddress: opts.localAddress,
      bootId: opts.bootId,
      now,
      ...(opts.maxHelloKeys !== undefined ? { maxKeys: opts.maxHelloKeys } : {}),
    });
    this.initiator = new Initiator(
      {
        identity: opts.identity,
        hello: () => this.hellos.own(),
        newIndex: () => this.newIndex(),
        send: (peerKey, packet) => this.out(peerKey, packet),
        failed: (peerKey) => this.handshakeFailed(peerKey),
        onError: (err) => this.internalError(err),
        now,
      },
      { retryMs, timeoutMs: this.timeoutMs },
      this.stats,
    );
    this.table = new SessionTable(
      { rejectAfterMs, graceMs, youngMs: this.timeoutMs, maxQueue, onKeyChange: (peerKey) => this.initiator.forget(peerKey) },
      this.stats,
    );
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
    const st = this.table.peerFor(peer.address, peer.publicKey);
    const now = this.now();
    const s = this.table.sendSession(st, now);
    if (s !== undefined) {
      this.maybeRekey(st, s, now);
      this.transmit(s, s.seal(plaintext), plaintext.length);
      return;
    }
    this.table.enqueue(st, Buffer.from(plaintext));
    this.initiate(st);
  }

  /**
   * Zero-copy variant: `packet` is [DATA_HEADER_BYTES of room][plaintext][TAG_BYTES of room];
   * it is encrypted in place and handed to opts.send (which then owns it).
   */
  sendToInPlace(peer: PeerRef, packet: Buffer): void {
    if (this.destroyed) return;
    if (packet.length < DATA_MIN) throw new PilotError('BAD_ARGUMENT', `packet must have ${DATA_MIN} bytes of header and tag room`);
    const st = this.table.peerFor(peer.address, peer.publicKey);
    const now = this.now();
    const s = this.table.sendSession(st, now);
    if (s !== undefined) {
      this.maybeRekey(st, s, now);
      const len = s.sealInPlace(packet);
      this.transmit(s, packet, len);
      return;
    }
    this.table.enqueue(st, Buffer.from(packet.subarray(DATA_HEADER_BYTES, packet.length - TAG_BYTES)));
    this.initiate(st);
  }

  /**
   * Encrypt with the current session and send on a path of the caller's choice
   * (connectivity checks). Returns false, sending nothing, when there is no usable
   * session: probes are never queued and never start a handshake.
   */
  sendVia(peer: PeerRef, plaintext: Buffer, via: P): boolean {
    if (this.destroyed) return false;
    const st = this.table.peerFor(peer.address, peer.publicKey);
    const now = this.now();
    const s = this.table.sendSession(st, now);
    if (s === undefined) return false;
    // Path keepalives and probes count as sending, as WireGuard's keepalives do
    // (REKEY_AFTER_TIME triggers on any transmit): without this an idle pair's
    // session ran out at rejectAfter and its keepalives stopped (issue 19).
    this.maybeRekey(st, s, now);
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

  private maybeRekey(st: PeerState, s: ManagedSession, now: number): void {
    if (this.initiator.pending(st.key) || !s.confirmed) return;
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

  /** Back on the path a packet came from (hints, cookie replies); only called when opts.sendRaw exists. */
  private raw(packet: Buffer, path: P): void {
    try {
      this.opts.sendRaw?.(packet, path);
    } catch (err) {
      this.stats.sendErrors++;
      this.lastError = err;
    }
  }

  private flush(st: PeerState, now: number): void {
    if (st.queue.length === 0) return;
    const s = this.table.sendSession(st, now);
    if (s === undefined) return;
    for (const m of this.table.takeQueue(st)) this.transmit(s, s.seal(m), m.length);
  }

  // ---------------- handshakes we start (initiator.ts) ----------------

  private initiate(st: PeerState): void {
    if (this.destroyed) return;
    this.initiator.start(st.key, st.publicKey);
  }

  private handshakeFailed(peerKey: number): void {
    const st = this.table.get(peerKey);
    if (st !== undefined) this.table.dropQueue(st);
    this.safeEmit('handshake-failed', peerKey);
  }

  private newIndex(): number {
    for (;;) {
      crypto.randomFillSync(this.indexScratch);
      const i = this.indexScratch.readUInt32BE(0);
      if (i !== 0 && !this.table.hasIndex(i) && !this.initiator.has(i)) return i;
    }
  }

  // ---------------- receiving ----------------

  /**
   * Handle a 0x10-0x14 packet. Takes ownership of `packet` (Data is decrypted
   * in place; the 'message' plaintext is a view into it). Never throws: every
   * bad packet is dropped and counted in `stats`.
   */
  handlePacket(packet: Buffer, path: P): void {
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
          return this.initiator.onCookieReply(packet);
        default:
          this.stats.dropMalformed++;
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  private onData(pkt: Buffer, path: P): void {
    if (pkt.length < DATA_MIN) {
      this.stats.dropMalformed++;
      return;
    }
    const index = pkt.readUInt32BE(1);
    const s = this.table.session(index);
    if (s === undefined) {
      this.stats.dropUnknownIndex++;
      // Data that overtook message 2 of our own handshake is not worth a hint.
      if (!this.initiator.has(index)) this.sendHint(index, path);
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
    this.safeEmit('path', st.key, path, now);
    if (this.destroyed || this.table.session(index) !== s) return; // a listener tore the peer down
    this.flush(st, now);
    if (plain.length === 0) this.stats.keepalivesIn++;
    else this.safeEmit('message', st.key, plain, path, now);
  }

  private onInit(pkt: Buffer, path: P): void {
    if (pkt.length !== INIT_BYTES) {
      this.stats.dropMalformed++;
      return;
    }
    if (!this.gate.admit(pkt, path)) return;
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
    if (!this.hellos.fresh(keyId, hello.timestamp)) {
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
    this.gate.verifyStarted();
    Promise.resolve(verdict)
      .then(
        (ok) => ok === true,
        () => false,
      )
      .then((ok) => {
        this.gate.verifyDone();
        this.safely(() => this.accept(r, remoteIndex, keyId, ok, path));
      });
  }

  /** Without verifyPeer: never let an unknown key take over an address we know. */
  private unverifiedBindingOk(address: Address, publicKey: Buffer): boolean {
    const st = this.table.get(addressKey(address));
    return st === undefined || st.publicKey.equals(publicKey);
  }

  /** Static keys whose newest hello timestamp is remembered now (bounded by maxHelloKeys). */
  get rememberedHelloKeys(): number {
    return this.hellos.size;
  }

  /** Message 1 passed Noise and the timestamp check; `ok` is the verifyPeer verdict. */
  private accept(r: IkResponder, remoteIndex: number, keyId: string, ok: boolean, path: P): void {
    if (this.destroyed) return;
    if (!ok) {
      this.stats.dropRejectedPeer++;
      return;
    }
    const hello = r.remote;
    // Checked again: another message 1 may have been accepted while verifyPeer ran.
    if (!this.hellos.fresh(keyId, hello.timestamp)) {
      this.stats.dropStaleHandshake++;
      return;
    }
    this.hellos.note(keyId, hello.timestamp);
    const st = this.table.peerFor(hello.address, r.remoteStatic);
    if (this.initiator.pending(st.key) && Buffer.compare(this.opts.identity.publicKey, r.remoteStatic) > 0) {
      // Both sides initiated: ours wins, the peer will answer it. The message was
      // fresh and authentic (only the key holder can write a newer one), so the
      // peer is reachable on this path.
      this.safeEmit('path', st.key, path, this.now());
      this.stats.dropTieBreak++;
      return;
    }
    const reply = r.reply(this.hellos.own());
    if (reply === null) {
      this.stats.dropAuth++;
      return;
    }
    this.initiator.cancel(st.key); // if we lost a simultaneous open, theirs replaces ours
    const now = this.now();
    const localIndex = this.newIndex();
    const s = this.table.add(st, localIndex, remoteIndex, 'responder', reply.result, now);
    this.table.addUnconfirmed(s);
    this.stats.handshakesResponded++;
    // The daemon routes our answer by what it knows of the peer, so it hears
    // 'peer-restarted' (if so), 'session' and 'path' before message 2 leaves.
    const restarted = this.table.noteBootId(st, s);
    if (restarted) this.safeEmit('peer-restarted', st.key);
    this.emitSession(st, s, path);
    this.safeEmit('path', st.key, path, now);
    if (this.destroyed || this.table.session(localIndex) !== s) return; // a listener tore the peer down
    const pkt = Buffer.allocUnsafe(RESP_HEADER + reply.message2.length);
    pkt[0] = PacketType.HandshakeResp;
    pkt.writeUInt32BE(localIndex, 1);
    pkt.writeUInt32BE(remoteIndex, 5);
    reply.message2.copy(pkt, RESP_HEADER);
    this.out(st.key, pkt);
    this.flush(st, now); // first contact / lost tie-break: the queue may leave on this session now
  }

  private onResp(pkt: Buffer, path: P): void {
    const answer = this.initiator.answer(pkt);
    if (answer === undefined) return;
    const res = answer.result;
    const st = this.table.get(answer.peerKey);
    if (st === undefined) return; // not reached: a closed peer's handshake is cancelled
    const keyId = res.remoteStatic.toString('base64');
    // The peer's own clock: any message 1 it wrote before this answer is now stale.
    if (this.hellos.fresh(keyId, res.timestamp)) this.hellos.note(keyId, res.timestamp);
    const now = this.now();
    const s = this.table.add(st, answer.localIndex, answer.remoteIndex, 'initiator', res, now);
    this.confirm(s, path, now);
    this.safeEmit('path', st.key, path, now);
    if (this.destroyed || st.current !== s) return; // a listener tore the peer down
    this.flush(st, now);
    // Key confirmation for the responder, which keeps its old session until then.
    if (s.sendCounter === 0) this.transmit(s, s.seal(EMPTY), 0);
  }

  /** `s` is proven (message 2, or a packet authenticated on it): make it the one we send on. */
  private confirm(s: ManagedSession, path: P, now: number): void {
    const st = s.peer;
    const restarted = this.table.confirm(s, now);
    if (restarted) this.safeEmit('peer-restarted', st.key);
    // A responder session was announced when message 1 was accepted.
    if (restarted || s.role === 'initiator') this.emitSession(st, s, path);
  }

  private emitSession(st: PeerState, s: ManagedSession, path: P): void {
    this.safeEmit('session', st.key, { address: st.address, publicKey: st.publicKey, bootId: s.remoteBootId, path });
  }

  // ---------------- 0x13 hints ----------------

  private sendHint(index: number, path: P): void {
    if (this.opts.sendRaw === undefined || !this.hintLimiter.allow(pathKey(path), this.now())) return;
    const pkt = Buffer.allocUnsafe(5);
    pkt[0] = PacketType.SessionUnknown;
    pkt.writeUInt32BE(index, 1);
    this.stats.hintsSent++;
    this.raw(pkt, path);
  }

  /** Unauthenticated: it can only make us re-handshake (rate-limited), never tear anything down. */
  private onHint(pkt: Buffer): void {
    if (pkt.length !== 5) {
      this.stats.dropMalformed++;
      return;
    }
    this.stats.hintsReceived++;
    const s = this.table.sentWith(pkt.readUInt32BE(1));
    if (s === undefined) return;
    const st = s.peer;
    const now = this.now();
    if (this.initiator.pending(st.key) || now - st.lastHintAt < HINT_INTERVAL_MS) return;
    if (this.table.sendSession(st, now) !== s) return; // only about the session we send on
    st.lastHintAt = now;
    this.stats.hintRehandshakes++;
    this.initiate(st);
  }

  /** Free sessions past their receive deadline, and per-source entries that have refilled. */
  private sweep(): void {
    const now = this.now();
    this.gate.sweep(now);
    this.table.sweep(now);
  }

  // ---------------- management ----------------

  /** Is there a session we can encrypt with right now? */
  hasSession(peerKey: number): boolean {
    const st = this.table.get(peerKey);
    return st !== undefined && this.table.sendSession(st, this.now()) !== undefined;
  }

  sessionInfo(peerKey: number): SessionInfo | undefined {
    const st = this.table.get(peerKey);
    if (st === undefined) return undefined;
    return this.table.info(st, this.now(), this.initiator.pending(peerKey), this.initiator.attemptsOf(peerKey));
  }

  /**
   * Our identity's key pair was replaced in place (key rotation, src/daemon/key-rotation.ts):
   * message 1s are checked against the new key, and every session made with the old static
   * key ends (the caller's peers handshake again, with the new key).
   */
  identityChanged(): void {
    this.gate.rekey(this.opts.identity.publicKey);
    for (const peerKey of this.table.keys()) this.closeSession(peerKey);
  }

  /** Forget everything about the peer (sessions, handshake, queue, boot id). */
  closeSession(peerKey: number): void {
    if (this.table.get(peerKey) === undefined) return;
    this.initiator.forget(peerKey);
    this.table.remove(peerKey);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearInterval(this.sweepTimer);
    this.initiator.destroy();
    this.table.clear();
  }

  // ---------------- helpers ----------------

  /** emit() that counts a throwing listener instead of letting it unwind a packet's handling. */
  // (The conditional args type is the one EventEmitter<T>.emit uses: TS cannot narrow a generic K any further.)
  private safeEmit<K extends keyof SessionEvents<P>>(event: K, ...args: K extends keyof SessionEvents<P> ? SessionEvents<P>[K] : never): void {
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
      this.internalError(err);
    }
  }

  private internalError(err: unknown): void {
    this.stats.internalErrors++;
    this.lastError = err;
  }
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!(typeof v === 'number' && v > 0)) throw new PilotError('BAD_ARGUMENT', `${name} must be a positive number`);
  return v;
}
