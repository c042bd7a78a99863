// All secure sessions of one node. Peers are identified by addressKey; a
// session by the random 32-bit index the receiver picked, never by the
// source IP:port, so sessions survive path changes (direct, relay, roaming).
//
// Packet formats (src/wire/packet-types.ts):
//   0x10 [type][u32 senderIndex][Noise IK msg1]
//   0x11 [type][u32 senderIndex][u32 receiverIndex][Noise IK msg2]
//   0x12 [type][u32 receiverIndex][u64 counter][ciphertext + tag]   (header = AEAD associated data)
//   0x13 [type][u32 index]   unauthenticated hint: "no session for that index"
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import { PacketType } from '../wire/packet-types.ts';
import { addressKey, type Address } from '../wire/address.ts';
import type { Identity } from './identity.ts';
import { IkInitiator, respondIk, type HandshakeKeys, type Hello } from './handshake.ts';
import { sealInto, open, TAG_BYTES } from './aead.ts';
import { ReplayWindow } from './replay-window.ts';

const DATA_HEADER = 13;
/** Never send more than this many packets on one key (far below the 2^64 nonce space). */
const COUNTER_LIMIT = 2 ** 48;
const REKEY_GRACE_MS = 30_000;
/** A session older than rekeyAfterMs + this is not used for sending any more. */
const SEND_EXPIRY_EXTRA_MS = 60_000;
const MAX_QUEUE = 256;
const HINT_INTERVAL_MS = 1000;

export interface SessionManagerOptions {
  identity: Identity;
  localAddress: Address;
  bootId: Buffer;
  send(peerKey: number, packet: Buffer): void;
  /** Answer on the path a packet came from (used for the 0x13 hint). */
  sendRaw?(packet: Buffer, path: unknown): void;
  verifyPeer?(address: Address, publicKey: Buffer): boolean | Promise<boolean>;
  rekeyAfterMs?: number;
  rekeyAfterBytes?: number;
  handshakeRetryMs?: number;
  handshakeTimeoutMs?: number;
  now?: () => number;
}

interface Session {
  peer: PeerState;
  localIndex: number;
  remoteIndex: number;
  sendKey: Buffer;
  recvKey: Buffer;
  sendCounter: number;
  window: ReplayWindow;
  created: number;
  bytesSent: number;
  /** Receive-only after this time (set when a newer session replaces it). */
  expires: number;
}

interface Pending {
  localIndex: number;
  initiator: IkInitiator;
  started: number;
  timer: NodeJS.Timeout;
}

interface PeerState {
  key: number;
  address: Address;
  publicKey: Buffer;
  current: Session | undefined;
  previous: Session[];
  pending: Pending | undefined;
  queue: Buffer[];
  bootId: Buffer | undefined;
  lastHintAt: number;
  rekeys: number;
  established: number;
}

export interface SessionStats {
  dropMalformed: number;
  dropAuth: number;
  dropReplay: number;
  dropUnknownIndex: number;
  dropStaleHandshake: number;
  dropRejectedPeer: number;
  dropQueueOverflow: number;
  handshakesInitiated: number;
  handshakesCompleted: number;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  hintsSent: number;
  hintsReceived: number;
}

export class SessionManager extends EventEmitter {
  readonly stats: SessionStats = {
    dropMalformed: 0,
    dropAuth: 0,
    dropReplay: 0,
    dropUnknownIndex: 0,
    dropStaleHandshake: 0,
    dropRejectedPeer: 0,
    dropQueueOverflow: 0,
    handshakesInitiated: 0,
    handshakesCompleted: 0,
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    hintsSent: 0,
    hintsReceived: 0,
  };
  private readonly opts: SessionManagerOptions;
  private readonly rekeyAfterMs: number;
  private readonly rekeyAfterBytes: number;
  private readonly retryMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly peers = new Map<number, PeerState>();
  private readonly byIndex = new Map<number, Session>();
  private readonly pendingByIndex = new Map<number, PeerState>();
  /** Newest accepted handshake timestamp per remote static key (msg1 replay protection). */
  private readonly lastHelloTs = new Map<string, number>();
  private readonly hintTimes = new Map<string, number>();
  private destroyed = false;
  private lastOwnTs = 0;

  constructor(opts: SessionManagerOptions) {
    super();
    this.opts = opts;
    this.rekeyAfterMs = opts.rekeyAfterMs ?? 120_000;
    this.rekeyAfterBytes = opts.rekeyAfterBytes ?? 2 ** 30;
    this.retryMs = opts.handshakeRetryMs ?? 1000;
    this.timeoutMs = opts.handshakeTimeoutMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  // ---------------- sending ----------------

  sendTo(peer: { address: Address; publicKey: Buffer }, plaintext: Buffer): void {
    if (this.destroyed) return;
    const st = this.peerState(peer.address, peer.publicKey);
    const s = st.current;
    const now = this.now();
    if (s && now - s.created < this.rekeyAfterMs + SEND_EXPIRY_EXTRA_MS && s.sendCounter < COUNTER_LIMIT) {
      if (!st.pending && (now - s.created >= this.rekeyAfterMs || s.bytesSent >= this.rekeyAfterBytes)) this.initiate(st);
      this.encryptAndSend(s, plaintext);
      return;
    }
    if (st.queue.length >= MAX_QUEUE) {
      st.queue.shift();
      this.stats.dropQueueOverflow++;
    }
    st.queue.push(plaintext);
    if (!st.pending) this.initiate(st);
  }

  private encryptAndSend(s: Session, plaintext: Buffer): void {
    const pkt = Buffer.allocUnsafe(DATA_HEADER + plaintext.length + TAG_BYTES);
    pkt[0] = PacketType.Data;
    pkt.writeUInt32BE(s.remoteIndex, 1);
    const c = s.sendCounter++;
    pkt.writeUInt32BE(Math.floor(c / 0x100000000), 5);
    pkt.writeUInt32BE(c >>> 0, 9);
    sealInto(pkt.subarray(DATA_HEADER), s.sendKey, c, plaintext, pkt.subarray(0, DATA_HEADER));
    s.bytesSent += plaintext.length;
    this.stats.packetsOut++;
    this.stats.bytesOut += plaintext.length;
    this.opts.send(s.peer.key, pkt);
  }

  private peerState(address: Address, publicKey: Buffer): PeerState {
    const key = addressKey(address);
    let st = this.peers.get(key);
    if (!st) {
      st = { key, address, publicKey, current: undefined, previous: [], pending: undefined, queue: [], bootId: undefined, lastHintAt: 0, rekeys: 0, established: 0 };
      this.peers.set(key, st);
    } else if (!st.publicKey.equals(publicKey)) {
      // Someone else holds this address now: nothing of the old sessions may be used.
      this.dropSessions(st);
      st.publicKey = publicKey;
      st.bootId = undefined;
    }
    return st;
  }

  private newIndex(): number {
    for (;;) {
      const i = crypto.randomBytes(4).readUInt32BE(0);
      if (i !== 0 && !this.byIndex.has(i) && !this.pendingByIndex.has(i)) return i;
    }
  }

  /** Strictly increasing, so two handshakes in one millisecond are not taken for replays. */
  private hello(): Hello {
    this.lastOwnTs = Math.max(this.now(), this.lastOwnTs + 1);
    return { address: this.opts.localAddress, bootId: this.opts.bootId, timestamp: this.lastOwnTs };
  }

  private initiate(st: PeerState): void {
    if (this.destroyed) return;
    const localIndex = this.newIndex();
    const started = this.now();
    const attempt = (): void => {
      if (this.destroyed) return;
      const p = st.pending;
      if (!p || p.localIndex !== localIndex) return;
      if (this.now() - started >= this.timeoutMs) {
        this.clearPending(st);
        const lost = st.queue.length;
        st.queue = [];
        this.emit('handshake-failed', st.key, { queuedDropped: lost });
        return;
      }
      // A fresh message each time: a new ephemeral key and a newer timestamp.
      p.initiator = new IkInitiator(this.opts.identity, st.publicKey, this.hello());
      this.stats.handshakesInitiated++;
      const pkt = Buffer.allocUnsafe(5 + p.initiator.message1.length);
      pkt[0] = PacketType.HandshakeInit;
      pkt.writeUInt32BE(localIndex, 1);
      p.initiator.message1.copy(pkt, 5);
      this.opts.send(st.key, pkt);
      p.timer = setTimeout(attempt, this.retryMs);
      p.timer.unref?.();
    };
    if (st.pending) this.clearPending(st);
    st.pending = { localIndex, initiator: undefined as unknown as IkInitiator, started, timer: undefined as unknown as NodeJS.Timeout };
    this.pendingByIndex.set(localIndex, st);
    attempt();
  }

  private clearPending(st: PeerState): void {
    if (!st.pending) return;
    clearTimeout(st.pending.timer);
    this.pendingByIndex.delete(st.pending.localIndex);
    st.pending = undefined;
  }

  // ---------------- receiving ----------------

  handlePacket(packet: Buffer, path: unknown): void {
    if (this.destroyed) return;
    try {
      switch (packet[0]) {
        case PacketType.Data:
          return this.onData(packet, path);
        case PacketType.HandshakeInit:
          return void this.onInit(packet, path);
        case PacketType.HandshakeResp:
          return this.onResp(packet, path);
        case PacketType.SessionUnknown:
          return this.onHint(packet);
        default:
          this.stats.dropMalformed++;
      }
    } catch {
      // Nothing a peer sends may throw out of here.
      this.stats.dropMalformed++;
    }
  }

  private onData(pkt: Buffer, path: unknown): void {
    if (pkt.length < DATA_HEADER + TAG_BYTES) {
      this.stats.dropMalformed++;
      return;
    }
    const index = pkt.readUInt32BE(1);
    const s = this.byIndex.get(index);
    if (!s) {
      this.stats.dropUnknownIndex++;
      this.sendHint(index, path);
      return;
    }
    const counter = pkt.readUInt32BE(5) * 0x100000000 + pkt.readUInt32BE(9);
    if (counter >= COUNTER_LIMIT || !s.window.check(counter)) {
      this.stats.dropReplay++;
      return;
    }
    const plain = open(s.recvKey, counter, pkt.subarray(DATA_HEADER), pkt.subarray(0, DATA_HEADER));
    if (!plain) {
      this.stats.dropAuth++;
      return;
    }
    s.window.commit(counter);
    this.stats.packetsIn++;
    this.stats.bytesIn += plain.length;
    const st = s.peer;
    this.emit('path', st.key, path);
    this.emit('message', st.key, plain, path);
  }

  private async onInit(pkt: Buffer, path: unknown): Promise<void> {
    if (pkt.length < 5 + 32) {
      this.stats.dropMalformed++;
      return;
    }
    const remoteIndex = pkt.readUInt32BE(1);
    const res = respondIk(this.opts.identity, pkt.subarray(5), this.hello());
    if (!res) {
      this.stats.dropAuth++;
      return;
    }
    const keyHex = res.keys.remoteStatic.toString('hex');
    if (res.hello.timestamp <= (this.lastHelloTs.get(keyHex) ?? -1)) {
      this.stats.dropStaleHandshake++;
      return;
    }
    const ok = this.opts.verifyPeer ? await this.opts.verifyPeer(res.hello.address, res.keys.remoteStatic) : true;
    if (this.destroyed) return;
    if (!ok) {
      this.stats.dropRejectedPeer++;
      return;
    }
    // Check again: another message 1 may have been accepted while we awaited.
    if (res.hello.timestamp <= (this.lastHelloTs.get(keyHex) ?? -1)) {
      this.stats.dropStaleHandshake++;
      return;
    }
    this.lastHelloTs.set(keyHex, res.hello.timestamp);
    const st = this.peerState(res.hello.address, res.keys.remoteStatic);
    const localIndex = this.newIndex();
    const s = this.install(st, localIndex, remoteIndex, res.keys, res.hello, path);
    const reply = Buffer.allocUnsafe(9 + res.message2.length);
    reply[0] = PacketType.HandshakeResp;
    reply.writeUInt32BE(localIndex, 1);
    reply.writeUInt32BE(remoteIndex, 5);
    res.message2.copy(reply, 9);
    this.opts.send(st.key, reply);
    this.flushQueue(st, s);
  }

  private onResp(pkt: Buffer, path: unknown): void {
    if (pkt.length < 9 + 32) {
      this.stats.dropMalformed++;
      return;
    }
    const remoteIndex = pkt.readUInt32BE(1);
    const localIndex = pkt.readUInt32BE(5);
    const st = this.pendingByIndex.get(localIndex);
    if (!st || !st.pending || st.pending.localIndex !== localIndex) {
      this.stats.dropStaleHandshake++;
      return;
    }
    const done = st.pending.initiator.finish(pkt.subarray(9));
    if (!done || !done.keys.remoteStatic.equals(st.publicKey) || addressKey(done.hello.address) !== st.key) {
      this.stats.dropAuth++;
      return;
    }
    this.clearPending(st);
    const s = this.install(st, localIndex, remoteIndex, done.keys, done.hello, path);
    this.flushQueue(st, s);
  }

  private install(st: PeerState, localIndex: number, remoteIndex: number, keys: HandshakeKeys, hello: Hello, path: unknown): Session {
    const now = this.now();
    const restarted = st.bootId !== undefined && !st.bootId.equals(hello.bootId);
    if (restarted) {
      // The old sessions belong to a previous life of the peer.
      this.dropSessions(st);
      this.emit('peer-restarted', st.key);
    }
    st.bootId = hello.bootId;
    const s: Session = {
      peer: st,
      localIndex,
      remoteIndex,
      sendKey: keys.sendKey,
      recvKey: keys.recvKey,
      sendCounter: 0,
      window: new ReplayWindow(),
      created: now,
      bytesSent: 0,
      expires: Infinity,
    };
    if (st.current) {
      st.current.expires = now + REKEY_GRACE_MS;
      st.previous.push(st.current);
      st.rekeys++;
    }
    // Keep a few recent sessions for receiving (rekey overlap, simultaneous open).
    st.previous = st.previous.filter((p) => {
      const keep = p.expires > now;
      if (!keep) this.byIndex.delete(p.localIndex);
      return keep;
    });
    while (st.previous.length > 3) this.byIndex.delete(st.previous.shift()!.localIndex);
    st.current = s;
    st.established = now;
    this.byIndex.set(localIndex, s);
    this.stats.handshakesCompleted++;
    this.emit('path', st.key, path);
    this.emit('session', st.key, { address: st.address, publicKey: st.publicKey, bootId: hello.bootId, path });
    return s;
  }

  private flushQueue(st: PeerState, s: Session): void {
    const q = st.queue;
    st.queue = [];
    for (const m of q) this.encryptAndSend(s, m);
  }

  private dropSessions(st: PeerState): void {
    for (const s of [st.current, ...st.previous]) if (s) this.byIndex.delete(s.localIndex);
    st.current = undefined;
    st.previous = [];
  }

  // ---------------- hints ----------------

  private sendHint(index: number, path: unknown): void {
    if (!this.opts.sendRaw) return;
    const key = JSON.stringify(path) ?? '';
    const now = this.now();
    if (now - (this.hintTimes.get(key) ?? 0) < HINT_INTERVAL_MS) return;
    if (this.hintTimes.size > 4096) this.hintTimes.clear();
    this.hintTimes.set(key, now);
    const pkt = Buffer.allocUnsafe(5);
    pkt[0] = PacketType.SessionUnknown;
    pkt.writeUInt32BE(index, 1);
    this.stats.hintsSent++;
    this.opts.sendRaw(pkt, path);
  }

  private onHint(pkt: Buffer): void {
    if (pkt.length !== 5) {
      this.stats.dropMalformed++;
      return;
    }
    this.stats.hintsReceived++;
    const index = pkt.readUInt32BE(1);
    // Unauthenticated: it can only make us re-handshake, never tear anything down.
    for (const st of this.peers.values()) {
      if (st.current?.remoteIndex === index && !st.pending) {
        const now = this.now();
        if (now - st.lastHintAt < HINT_INTERVAL_MS) return;
        st.lastHintAt = now;
        this.initiate(st);
        return;
      }
    }
  }

  // ---------------- management ----------------

  hasSession(peerKey: number): boolean {
    return this.peers.get(peerKey)?.current !== undefined;
  }

  sessionInfo(peerKey: number): Record<string, unknown> | undefined {
    const st = this.peers.get(peerKey);
    if (!st) return undefined;
    const s = st.current;
    return {
      established: s ? new Date(s.created).toISOString() : null,
      handshaking: st.pending !== undefined,
      rekeys: st.rekeys,
      sendCounter: s?.sendCounter ?? 0,
      highestReceived: s?.window.highest ?? -1,
      remoteBootId: st.bootId?.toString('hex') ?? null,
      previousSessions: st.previous.length,
    };
  }

  closeSession(peerKey: number): void {
    const st = this.peers.get(peerKey);
    if (!st) return;
    this.clearPending(st);
    this.dropSessions(st);
    st.queue = [];
    this.peers.delete(peerKey);
  }

  destroy(): void {
    this.destroyed = true;
    for (const st of this.peers.values()) this.clearPending(st);
    this.peers.clear();
    this.byIndex.clear();
  }
}
