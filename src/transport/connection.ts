// One transport connection per peer, running inside an encrypted session that
// delivers opaque packets unreliably. QUIC-like: packet numbers + frames
// (frames.ts), selective ACKs (ack-tracker.ts), RFC 9002 loss detection and
// CUBIC or NewReno (recovery.ts, cubic.ts, congestion.ts), pacing (pacer.ts), per-stream and
// per-connection flow control, streams as Duplexes (stream.ts) and unreliable
// datagrams.
//
// Cost model: sending is batched into one flush per event-loop turn (so many
// writes or many received packets produce full packets and one ACK), except a
// lone packet (nothing in flight), which leaves at once (latency); there is
// a single timer per connection, payload is copied once (application buffer ->
// packet) on send and not at all on receive (streams get views of the packet).
import { EventEmitter } from 'node:events';
import { DEFAULT_MAX_PLAINTEXT } from '../wire/packet-types.ts';
import { PilotError } from '../util/errors.ts';
import { AckTracker } from './ack-tracker.ts';
import { AppCode, CloseCode } from './codes.ts';
import { CONGESTION_ALGORITHMS, DEFAULT_CONGESTION_ALGORITHM, type CongestionAlgorithm } from './congestion.ts';
import { Deque } from './deque.ts';
import {
  datagramFrameLen,
  Frame,
  Kind,
  ParsedPacket,
  streamHeaderLen,
  writeConnectionClose,
  writeConnValue,
  writeDatagram,
  writeResetStream,
  writeStopSending,
  writeStreamHeader,
  writeStreamValue,
  type ParsedFrame,
} from './frames.ts';
import { Pacer } from './pacer.ts';
import { RangeSet } from './range-set.ts';
import { Recovery, type RecoveryHandler } from './recovery.ts';
import type { CtrlFrame, SentPacket, StreamFrag } from './sent-packets.ts';
import { Stream, type StreamConfig, type StreamHost } from './stream.ts';
import { varintLen, writeVarint } from './varint.ts';

export { Stream } from './stream.ts';

/** Connection-level credit each side may use before any MAX_DATA (a protocol constant). */
export const INITIAL_CONN_CREDIT = 1024 * 1024;
export const DEFAULT_STREAM_WINDOW = 1024 * 1024;
export const DEFAULT_CONNECTION_WINDOW = 16 * 1024 * 1024;
/** Auto-tuning grows windows up to these (or the configured value if larger). */
const MAX_STREAM_WINDOW = 16 * 1024 * 1024;
const MAX_CONNECTION_WINDOW = 64 * 1024 * 1024;
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;
/** How long we may hold an ACK (both ends assume this value: there is no parameter exchange). */
export const MAX_ACK_DELAY_MS = 10;
export const MIN_PACKET_SIZE = 256;
export const MAX_PACKET_SIZE = 65_000;
/** Worst-case packet number length: budget for it so a datagram that fits now always fits. */
const PN_MAX_LEN = 8;
const MAX_QUEUED_DATAGRAMS = 128;
const MAX_QUEUED_DATAGRAM_BYTES = 256 * 1024;
const MAX_INCOMING_STREAMS = 1024;
/** Retired peer stream id ranges remembered at most (a hostile peer could fragment the set). */
const MAX_RETIRED_RANGES = 4096;
const MAX_ANSWERED_UNKNOWN = 4096;
/** Room left in a packet below which no further frame is attempted. */
const MIN_FRAME_ROOM = 24;
/** Packets per flush before yielding to the event loop (so ACKs and other peers get a turn). */
const FLUSH_BUDGET = 256;
/** Ack-eliciting packets received in one burst after which we ACK at once instead of at the end of the burst. */
const ACK_BURST = 32;

export interface ConnectionOptions {
  /** Stream-id parity: 'low' opens even ids, 'high' odd ones, so both ends can open at once. */
  role: 'low' | 'high';
  /** Hands one plaintext packet to the session layer (which then owns the buffer). */
  sendPacket: (plaintext: Buffer) => void;
  maxPacketSize?: number;
  /** Initial per-stream receive window (auto-tuned upwards). */
  streamWindow?: number;
  /** Initial connection receive window (auto-tuned upwards). */
  connectionWindow?: number;
  /** A stream with no traffic and no application writes for this long errors with TIMEOUT (0: never). */
  idleTimeoutMs?: number;
  /** Clock in ms (default performance.now). */
  now?: () => number;
  /**
   * Bytes reserved before / after every packet handed to sendPacket, inside the same memory: the session
   * layer may then encrypt in place, e.g. `Buffer.from(p.buffer, p.byteOffset - headroom, p.length + headroom + tailroom)`
   * is [headroom][plaintext][tailroom] (for SessionManager.sendToInPlace: 13 and 16). Default 0.
   */
  headroom?: number;
  tailroom?: number;
  /** Congestion controller: 'cubic' (default, RFC 9438) or 'newreno' (RFC 9002 §7). */
  congestionControl?: CongestionAlgorithm;
}

export interface ConnectionStats {
  congestionControl: CongestionAlgorithm;
  srttMs: number;
  rttVarMs: number;
  minRttMs: number;
  cwnd: number;
  ssthresh: number;
  bytesInFlight: number;
  packetsSent: number;
  packetsReceived: number;
  packetsLost: number;
  /** Packets declared lost and acked later (reordering); when all behind a window reduction were, it was undone. */
  spuriousLosses: number;
  retransmittedBytes: number;
  bytesSent: number;
  bytesReceived: number;
  streamsOpen: number;
  malformed: number;
  duplicates: number;
  congestionEvents: number;
  ptoCount: number;
  datagramsSent: number;
  datagramsReceived: number;
  sendErrors: number;
  maxPacketSize: number;
}

export interface DatagramEvent {
  srcPort: number;
  dstPort: number;
  data: Buffer;
}

interface QueuedDatagram {
  srcPort: number;
  dstPort: number;
  data: Buffer;
}

export class Connection extends EventEmitter implements StreamHost, RecoveryHandler {
  private readonly sendFn: (plaintext: Buffer) => void;
  private readonly clock: () => number;
  private readonly localParity: number;
  private readonly streamCfg: StreamConfig;
  private readonly idleTimeoutMs: number;
  private maxPacket: number;
  private readonly headroom: number;
  private readonly tailroom: number;
  private readonly ccAlgorithm: CongestionAlgorithm;

  private readonly streams = new Map<number, Stream>();
  private nextLocalId: number;
  private incoming = 0;
  /** floor(id / 2) of peer streams that are finished (late frames for them are ignored). */
  private retiredPeer = new RangeSet();
  /** Unknown stream ids we already answered with RESET_STREAM + STOP_SENDING (the answer is reliable: once is enough). */
  private answeredUnknown = new Set<number>();

  private recovery: Recovery;
  private acks = new AckTracker(MAX_ACK_DELAY_MS);
  private pacer: Pacer;
  private readonly parsers: ParsedPacket[] = [new ParsedPacket()];
  private depth = 0;

  // connection flow control: what the peer lets us send, what we let it send
  private peerMaxData = INITIAL_CONN_CREDIT;
  private connSent = 0;
  private localMaxData = INITIAL_CONN_CREDIT;
  private connWindow: number;
  private readonly initialConnWindow: number;
  private readonly maxConnWindow: number;
  private connReceived = 0;
  private connConsumed = 0;
  private lastMaxDataAt = -Infinity;
  private maxDataPending = false;

  // what waits to be sent
  private readonly sendQueue = new Deque<Stream>();
  private connBlocked: Stream[] = [];
  private ctrlQueue: CtrlFrame[] = [];
  private readonly creditQueue = new Deque<Stream>();
  private readonly dgQueue = new Deque<QueuedDatagram>();
  private dgQueuedBytes = 0;
  private probes = 0;
  private writers: Stream[] = [];
  private newStreams: Stream[] = [];

  // scheduling: one timer, one pending flush
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private pacingAt = Infinity;
  private idleCheckAt = Infinity;
  private flushScheduled = false;
  private flushing = false;
  // an eager flush (mayFlushNow) may have run before the immediate: then there is nothing left to do
  private readonly flushCb = (): void => {
    if (this.flushScheduled) this.flush();
  };
  private readonly timerCb = (): void => this.onTimer();
  private closed = false;

  private readonly counters = {
    packetsSent: 0,
    packetsReceived: 0,
    retransmittedBytes: 0,
    bytesSent: 0,
    bytesReceived: 0,
    malformed: 0,
    duplicates: 0,
    datagramsSent: 0,
    datagramsReceived: 0,
    sendErrors: 0,
  };

  constructor(opts: ConnectionOptions) {
    super();
    if (opts.role !== 'low' && opts.role !== 'high') throw new PilotError('BAD_ARGUMENT', `role must be 'low' or 'high'`);
    this.sendFn = opts.sendPacket;
    this.clock = opts.now ?? performance.now.bind(performance);
    this.localParity = opts.role === 'low' ? 0 : 1;
    this.nextLocalId = this.localParity;
    this.maxPacket = checkPacketSize(opts.maxPacketSize ?? DEFAULT_MAX_PLAINTEXT);
    this.headroom = checkRoom(opts.headroom ?? 0, 'headroom');
    this.tailroom = checkRoom(opts.tailroom ?? 0, 'tailroom');
    const streamWindow = Math.max(64 * 1024, opts.streamWindow ?? DEFAULT_STREAM_WINDOW);
    this.streamCfg = {
      window: streamWindow,
      maxWindow: Math.max(streamWindow, MAX_STREAM_WINDOW),
      sendAhead: Math.max(64 * 1024, streamWindow),
    };
    this.connWindow = this.initialConnWindow = Math.max(256 * 1024, opts.connectionWindow ?? DEFAULT_CONNECTION_WINDOW);
    this.maxConnWindow = Math.max(this.connWindow, MAX_CONNECTION_WINDOW);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.ccAlgorithm = opts.congestionControl ?? DEFAULT_CONGESTION_ALGORITHM;
    if (!CONGESTION_ALGORITHMS.includes(this.ccAlgorithm)) {
      throw new PilotError('BAD_ARGUMENT', `congestionControl must be one of ${CONGESTION_ALGORITHMS.join(', ')}, got ${String(this.ccAlgorithm)}`);
    }
    this.recovery = new Recovery(this.maxPacket, MAX_ACK_DELAY_MS, this, this.ccAlgorithm);
    this.pacer = new Pacer(this.maxPacket);
  }

  // ================= public API =================

  /** Opens a stream to dstPort on the peer. The peer learns of it right away (an empty opening frame). */
  openStream(dstPort: number, srcPort = 0): Stream {
    checkPort(dstPort, 'dstPort');
    checkPort(srcPort, 'srcPort');
    const id = this.nextLocalId;
    this.nextLocalId += 2;
    const s = new Stream(this, id, srcPort, dstPort, true, this.streamCfg);
    if (this.closed) {
      s.abort(new PilotError('CONNECTION_RESET', 'connection is closed'), false);
      return s;
    }
    this.streams.set(id, s);
    this.armIdle(s.lastActivity);
    this.streamWantsSend(s);
    return s;
  }

  /** Largest datagram payload that always fits one packet (1180 with 1196-byte packets). */
  maxDatagramSize(): number {
    // packet number, the IMMEDIATE_ACK slot, then type + length + ports
    return this.maxPacket - PN_MAX_LEN - 1 - (1 + varintLen(this.maxPacket) + 4);
  }

  /** Queues an unreliable datagram; false if it is too big for one packet or the queue is full (congested). */
  sendDatagram(srcPort: number, dstPort: number, data: Buffer): boolean {
    checkPort(srcPort, 'srcPort');
    checkPort(dstPort, 'dstPort');
    if (this.closed || data.length > this.maxDatagramSize()) return false;
    if (this.dgQueue.length >= MAX_QUEUED_DATAGRAMS || this.dgQueuedBytes + data.length > MAX_QUEUED_DATAGRAM_BYTES) return false;
    // copy: the caller may reuse its buffer before the next flush
    this.dgQueue.push({ srcPort, dstPort, data: Buffer.from(data) });
    this.dgQueuedBytes += data.length;
    this.flushSoon();
    return true;
  }

  /** Applies a new packet size limit (path MTU discovery) to packets built from now on. */
  setMaxPacketSize(size: number): void {
    this.maxPacket = checkPacketSize(size);
    this.recovery.cc.setMss(this.maxPacket);
  }

  get maxPacketSize(): number {
    return this.maxPacket;
  }

  /**
   * The peer restarted (lost its state): every stream errors with CONNECTION_RESET and nothing is sent.
   * The connection stays usable with fresh state (stream ids, flow control, congestion control, acks),
   * as a restarted peer's new connection expects. Packet numbers keep counting up so a stale ACK from
   * the peer's previous incarnation can never acknowledge a packet sent after the reset.
   */
  reset(reason?: string): void {
    if (this.closed) return;
    const err = new PilotError('CONNECTION_RESET', reason ? `connection reset: ${reason}` : 'connection reset');
    const list = [...this.streams.values()];
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    this.pacingAt = Infinity;
    this.idleCheckAt = Infinity;
    this.streams.clear();
    this.nextLocalId = this.localParity;
    this.incoming = 0;
    this.retiredPeer = new RangeSet();
    this.answeredUnknown = new Set();
    const nextPn = this.recovery.log.next;
    this.recovery = new Recovery(this.maxPacket, MAX_ACK_DELAY_MS, this, this.ccAlgorithm);
    this.recovery.log.base = this.recovery.log.next = nextPn;
    this.acks = new AckTracker(MAX_ACK_DELAY_MS);
    this.pacer = new Pacer(this.maxPacket);
    this.peerMaxData = INITIAL_CONN_CREDIT;
    this.connSent = 0;
    this.localMaxData = INITIAL_CONN_CREDIT;
    this.connWindow = this.initialConnWindow;
    this.connReceived = 0;
    this.connConsumed = 0;
    this.lastMaxDataAt = -Infinity;
    this.maxDataPending = false;
    this.sendQueue.clear();
    this.connBlocked = [];
    this.ctrlQueue = [];
    this.creditQueue.clear();
    this.dgQueue.clear();
    this.dgQueuedBytes = 0;
    this.probes = 0;
    this.writers = [];
    this.newStreams = [];
    // streams are marked finished before they are destroyed, so they queue nothing into the fresh state
    for (const s of list) s.abort(err, false);
    this.emit('reset');
  }

  /** Tells the peer (CONNECTION_CLOSE, best effort) and errors every stream with CONNECTION_RESET. */
  close(): void {
    if (this.closed) return;
    try {
      const buf = this.allocPacket(this.maxPacket);
      let pos = writeVarint(buf, 0, this.recovery.log.next);
      pos = writeConnectionClose(buf, pos, CloseCode.NoError, Buffer.alloc(0));
      this.counters.packetsSent++;
      this.counters.bytesSent += pos;
      this.sendFn(buf.subarray(0, pos));
    } catch {
      // best effort
    }
    this.terminate(new PilotError('CONNECTION_RESET', 'connection closed'));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  stats(): ConnectionStats {
    const r = this.recovery;
    const c = this.counters;
    return {
      congestionControl: this.ccAlgorithm,
      srttMs: r.rtt.smoothed,
      rttVarMs: r.rtt.variance,
      minRttMs: r.rtt.min === Infinity ? 0 : r.rtt.min,
      cwnd: r.cc.cwnd,
      ssthresh: r.cc.ssthresh,
      bytesInFlight: r.cc.bytesInFlight,
      packetsSent: c.packetsSent,
      packetsReceived: c.packetsReceived,
      packetsLost: r.packetsLost,
      spuriousLosses: r.spuriousLosses,
      retransmittedBytes: c.retransmittedBytes,
      bytesSent: c.bytesSent,
      bytesReceived: c.bytesReceived,
      streamsOpen: this.streams.size,
      malformed: c.malformed,
      duplicates: c.duplicates,
      congestionEvents: r.cc.congestionEvents,
      ptoCount: r.ptoCount,
      datagramsSent: c.datagramsSent,
      datagramsReceived: c.datagramsReceived,
      sendErrors: c.sendErrors,
      maxPacketSize: this.maxPacket,
    };
  }

  /**
   * One packet from the session layer. The connection keeps views into it (stream data), so the
   * caller must not reuse the buffer. Never throws because of the packet's content: malformed
   * packets are counted (stats().malformed) and dropped whole.
   */
  receivePacket(plaintext: Buffer): void {
    if (this.closed) return;
    const parser = this.parsers[this.depth] ?? (this.parsers[this.depth] = new ParsedPacket());
    this.depth++;
    try {
      this.onPacket(plaintext, parser);
    } catch (err) {
      // only application code (event handlers run from here) can throw: keep our state, surface it as Node would
      queueMicrotask(() => {
        throw err;
      });
    } finally {
      this.depth--;
    }
    if (this.depth > 0) return; // a nested call: the outermost one sends
    try {
      this.afterReceive();
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  /**
   * Whatever handling the packet queued (a reply, credit, an ACK that is due) is sent from here, not
   * from inside the handlers: an echo or a request/response reply leaves now with its ACK, and a burst
   * of received packets still shares one flush per turn.
   */
  private afterReceive(): void {
    if (this.closed) return;
    const now = this.clock();
    if (this.hasQueued()) this.flushSoon();
    else if (this.acks.due(now)) this.scheduleFlush();
    else this.armTimer(now);
  }

  // ================= receive path =================

  private onPacket(pkt: Buffer, parsed: ParsedPacket): void {
    if (!parsed.parse(pkt)) {
      this.counters.malformed++;
      return;
    }
    const now = this.clock();
    if (!this.acks.onPacket(parsed.pn, parsed.ackEliciting, now, parsed.immediateAck)) {
      this.counters.duplicates++;
      return;
    }
    this.counters.packetsReceived++;
    this.counters.bytesReceived += pkt.length;
    const frames = parsed.frames;
    for (let i = 0; i < parsed.count && !this.closed; i++) {
      const f = frames[i]!;
      switch (f.kind) {
        case Kind.Stream:
          this.onStreamFrame(f, now);
          break;
        case Kind.Ack:
          if (!this.recovery.onAck(parsed.ackRanges, f.rangeStart, f.rangeCount, f.code / 1000, now)) this.counters.malformed++;
          break;
        case Kind.MaxData:
          if (f.offset > this.peerMaxData) {
            this.peerMaxData = f.offset;
            this.unblockConnection();
          }
          break;
        case Kind.MaxStreamData:
          this.streams.get(f.id)?.onMaxStreamData(f.offset);
          break;
        case Kind.ResetStream:
          this.onResetStream(f, now);
          break;
        case Kind.StopSending: {
          const s = this.streams.get(f.id);
          if (s !== undefined) {
            s.lastActivity = now;
            s.onPeerStopSending(f.code);
          }
          break;
        }
        case Kind.Datagram:
          this.counters.datagramsReceived++;
          this.emit('datagram', { srcPort: f.srcPort, dstPort: f.dstPort, data: f.data! } satisfies DatagramEvent);
          break;
        case Kind.DataBlocked:
          this.maxDataPending = true;
          break;
        case Kind.StreamDataBlocked:
          this.streams.get(f.id)?.onPeerBlocked();
          break;
        case Kind.ConnectionClose:
          this.terminate(new PilotError('CONNECTION_RESET', 'the peer closed the connection'));
          return;
        default:
          break; // PING: only elicits an ACK
      }
    }
    if (this.newStreams.length > 0) {
      const list = this.newStreams;
      this.newStreams = [];
      for (const s of list) if (!this.closed) this.emit('stream', s);
    }
    if (this.closed) return;
    // a long burst is acked mid-way so the sender's ACK clock keeps ticking
    if (this.acks.pending >= ACK_BURST) this.buildPacket(now, false, false);
  }

  private onStreamFrame(f: ParsedFrame, now: number): void {
    let s = this.streams.get(f.id);
    if (s === undefined) {
      s = this.acceptStream(f);
      if (s === undefined) return;
    }
    s.lastActivity = now;
    if (s.recvDone) return;
    const rb = s.recvBuf;
    const end = f.offset + f.length;
    if (end > s.localMaxStreamData || rb.check(f.offset, f.length, f.fin) !== 0) {
      this.counters.malformed++; // flow-control or final-size violation: drop the frame
      return;
    }
    const grow = end > rb.highest ? end - rb.highest : 0;
    if (this.connReceived + grow > this.localMaxData) {
      this.counters.malformed++;
      return;
    }
    this.connReceived += grow;
    rb.insert(f.offset, f.data!, f.fin);
  }

  /** A frame for a stream id we do not have: a new peer stream, or a late frame for a finished one. */
  private acceptStream(f: ParsedFrame): Stream | undefined {
    const id = f.id;
    if (id % 2 === this.localParity) {
      // ours but never opened (by this incarnation): the peer remembers it from before we lost our state
      if (id >= this.nextLocalId) this.answerUnknown(id);
      return undefined;
    }
    const idx = Math.floor(id / 2);
    if (this.retiredPeer.has(idx)) return undefined;
    if (!f.open) {
      // the opener repeats the ports until we ack one, so we saw this stream's opening before and have
      // since lost it (restart): tell the peer so its stream fails now instead of at its idle timeout
      this.answerUnknown(id);
      return undefined;
    }
    // too many streams, or nobody to hand it to (an unhandled stream would only sit there until it timed out)
    if (this.incoming >= MAX_INCOMING_STREAMS || this.listenerCount('stream') === 0) {
      this.queueCtrl(Frame.StopSending, id, AppCode.Refused, 0);
      this.queueCtrl(Frame.ResetStream, id, AppCode.Refused, 0);
      this.retire(idx);
      return undefined;
    }
    const s = new Stream(this, id, f.dstPort, f.srcPort, false, this.streamCfg);
    this.streams.set(id, s);
    this.incoming++;
    this.armIdle(s.lastActivity);
    s.grantInitialCredit();
    this.newStreams.push(s);
    return s;
  }

  /** STREAM frame for a stream we have no state for: reset both directions at the peer. */
  private answerUnknown(id: number): void {
    if (this.answeredUnknown.has(id)) return;
    if (this.answeredUnknown.size >= MAX_ANSWERED_UNKNOWN) this.answeredUnknown.clear();
    this.answeredUnknown.add(id);
    // we cannot know the final size: ConnectionGone tells the peer not to check it
    this.queueCtrl(Frame.ResetStream, id, AppCode.ConnectionGone, 0);
    this.queueCtrl(Frame.StopSending, id, AppCode.ConnectionGone, 0);
  }

  private onResetStream(f: ParsedFrame, now: number): void {
    const s = this.streams.get(f.id);
    if (s === undefined) {
      // reset of a peer stream whose opening frame we never saw: remember it is finished
      if (f.id % 2 !== this.localParity) this.retire(Math.floor(f.id / 2));
      return;
    }
    s.lastActivity = now;
    if (s.recvDone) return;
    const rb = s.recvBuf;
    let size = f.offset;
    // a peer that lost its state cannot know the final size: take what we have
    if (f.code === AppCode.ConnectionGone && size < rb.highest) size = rb.finalSize >= 0 ? rb.finalSize : rb.highest;
    if (size < rb.highest || (rb.finalSize >= 0 && size !== rb.finalSize) || size > s.localMaxStreamData) {
      this.counters.malformed++;
      return;
    }
    const grow = size - rb.highest;
    if (this.connReceived + grow > this.localMaxData) {
      this.counters.malformed++;
      return;
    }
    this.connReceived += grow;
    rb.highest = size;
    rb.finalSize = size;
    s.onPeerReset(f.code);
  }

  private retire(idx: number): void {
    this.retiredPeer.add(idx, idx + 1);
    if (this.retiredPeer.size > MAX_RETIRED_RANGES) this.retiredPeer.shift();
  }

  // ================= RecoveryHandler =================

  onPacketAcked(p: SentPacket): void {
    if (p.stream !== null) p.stream.onAcked(p.off, p.len, p.fin, p.open);
    if (p.more !== null) for (const m of p.more) m.stream.onAcked(m.off, m.len, m.fin, m.open);
    if (p.ackLargest >= 0) this.acks.onAckAcked(p.ackLargest);
  }

  onPacketLost(p: SentPacket): void {
    if (this.closed) return;
    if (p.stream !== null) p.stream.onLost(p.off, p.len, p.fin, p.open);
    if (p.more !== null) for (const m of p.more) m.stream.onLost(m.off, m.len, m.fin, m.open);
    if (p.ctrl !== null) for (const c of p.ctrl) this.ctrlQueue.push(c);
    if (p.maxData) this.maxDataPending = true;
    if (p.maxStreamData !== null) for (const s of p.maxStreamData) this.streamCredit(s);
  }

  // ================= StreamHost =================

  now(): number {
    return this.clock();
  }

  srttMs(): number {
    return this.recovery.rtt.smoothed;
  }

  /**
   * May a flush run now instead of at the end of the event-loop turn? Only for a lone packet: with
   * nothing in flight there is no burst to batch, and the setImmediate hop is pure latency. Bulk sends
   * (data in flight) keep one batched flush per turn. Callers make sure they are not inside
   * receivePacket (except at its very end) or half-way through a stream state change.
   */
  private mayFlushNow(): boolean {
    return !this.flushing && !this.closed && this.recovery.cc.bytesInFlight === 0;
  }

  streamWantsSend(s: Stream): void {
    if (this.closed) return;
    this.enqueueStream(s);
    this.scheduleFlush();
  }

  private enqueueStream(s: Stream): void {
    if (!s.queued && !s.sendDone) {
      s.queued = true;
      this.sendQueue.push(s);
    }
  }

  streamWritten(s: Stream): void {
    if (this.closed) return;
    this.enqueueStream(s);
    this.flushSoon(); // inside receivePacket, afterReceive decides
  }

  /** Flush now when a lone packet may go at once (outside receivePacket), else at the end of the turn. */
  private flushSoon(): void {
    if (this.depth === 0 && this.mayFlushNow()) this.flush();
    else this.scheduleFlush();
  }

  streamControl(type: number, id: number, code: number, finalSize: number): void {
    if (this.closed) return;
    this.queueCtrl(type, id, code, finalSize);
  }

  streamCredit(s: Stream): void {
    if (this.closed || s.creditQueued) return;
    s.creditQueued = true;
    this.creditQueue.push(s);
    this.scheduleFlush();
  }

  streamConsumed(bytes: number): void {
    this.connConsumed += bytes;
    if (this.localMaxData - this.connConsumed >= this.connWindow / 2) return;
    // same auto-tuning as streams: credit used within two RTTs means the window is the limit
    const now = this.clock();
    if (now - this.lastMaxDataAt < 2 * this.recovery.rtt.smoothed && this.connWindow < this.maxConnWindow) {
      this.connWindow = Math.min(this.connWindow * 2, this.maxConnWindow);
    }
    this.lastMaxDataAt = now;
    this.localMaxData = this.connConsumed + this.connWindow;
    this.maxDataPending = true;
    this.scheduleFlush();
  }

  streamUpdated(s: Stream): void {
    if (s.sendDone && s.recvDone && this.streams.get(s.id) === s) {
      this.streams.delete(s.id);
      if (s.id % 2 !== this.localParity) {
        this.incoming--;
        this.retire(Math.floor(s.id / 2));
      }
    }
    if (!this.closed) this.scheduleFlush();
  }

  // ================= send path =================

  private queueCtrl(type: number, id: number, code: number, finalSize: number): void {
    this.ctrlQueue.push({ type, id, code, finalSize });
    this.scheduleFlush();
  }

  private hasQueued(): boolean {
    return (
      this.sendQueue.length > 0 || this.ctrlQueue.length > 0 || this.creditQueue.length > 0 || this.maxDataPending || this.dgQueue.length > 0 || this.probes > 0
    );
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    if (this.depth > 0) return; // inside receivePacket: afterReceive decides (no stray immediate)
    this.flushScheduled = true;
    setImmediate(this.flushCb);
  }

  private unblockConnection(): void {
    const list = this.connBlocked;
    if (list.length === 0) return;
    this.connBlocked = [];
    for (const s of list) this.streamWantsSend(s);
  }

  /** Sends as much as congestion control, pacing and flow control allow, then re-arms the timer. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    this.flushing = true;
    try {
      this.flushNow();
    } finally {
      this.flushing = false;
    }
  }

  private flushNow(): void {
    const now = this.clock();
    const cc = this.recovery.cc;
    this.pacer.refill(now, cc.cwnd, this.recovery.rtt.smoothed, this.maxPacket, cc.inSlowStart());
    this.pacingAt = Infinity;
    let budget = FLUSH_BUDGET;
    let windowLimited = false;
    while (budget > 0) {
      const probe = this.probes > 0;
      const ctrl = this.ctrlQueue.length > 0 || this.maxDataPending || this.creditQueue.length > 0;
      const data = this.sendQueue.length > 0 || this.dgQueue.length > 0;
      if (!ctrl && !data && !probe) break;
      let allowData = probe;
      if (!probe && data) {
        if (cc.bytesInFlight + this.maxPacket > cc.cwnd) {
          windowLimited = true;
        } else if (!this.pacer.canSend(this.maxPacket)) {
          windowLimited = true;
          this.pacingAt = this.pacer.nextSendTime(this.maxPacket);
        } else {
          allowData = true;
        }
      }
      if (!allowData && !ctrl) break;
      if (!this.buildPacket(now, allowData, probe)) break;
      if (probe) this.probes--;
      budget--;
    }
    cc.appLimited = !windowLimited;
    if (budget === 0) this.scheduleFlush(); // more to send: continue after I/O had a turn
    if (this.acks.due(now)) this.buildPacket(now, false, false); // nothing carried the ACK: ack-only packet
    if (this.writers.length > 0) this.releaseWriters();
    this.armTimer(now);
  }

  /** Builds and sends one packet; false if there was nothing to put in it. */
  private buildPacket(now: number, allowData: boolean, probe: boolean): boolean {
    const size = this.maxPacket;
    const buf = this.allocPacket(size);
    const log = this.recovery.log;
    const pn = log.next;
    const start = writeVarint(buf, 0, pn);
    let pos = start;
    const p = log.alloc();
    p.pn = pn;
    let eliciting = false;

    if (this.acks.unreported) {
      const np = this.acks.write(buf, pos, size - pos, now);
      if (np > pos) {
        pos = np;
        p.ackLargest = this.acks.largest;
        this.acks.onAckSent();
      }
    }
    // one byte kept for IMMEDIATE_ACK, decided once we know whether this packet ends a flight
    const mark = pos++;
    // control frames (flow-control credit, resets) ride outside congestion control: they are small and unblock the peer
    while (this.ctrlQueue.length > 0 && size - pos >= 1 + 8 * 3) {
      const c = this.ctrlQueue.shift()!;
      pos = c.type === Frame.ResetStream ? writeResetStream(buf, pos, c.id, c.code, c.finalSize) : writeStopSending(buf, pos, c.id, c.code);
      (p.ctrl ??= []).push(c);
      eliciting = true;
    }
    if (this.maxDataPending && size - pos >= 9) {
      pos = writeConnValue(buf, pos, Frame.MaxData, this.localMaxData);
      this.maxDataPending = false;
      p.maxData = true;
      eliciting = true;
    }
    while (this.creditQueue.length > 0 && size - pos >= 17) {
      const s = this.creditQueue.shift()!;
      s.creditQueued = false;
      if (s.recvDone || s.stopSent) continue;
      pos = writeStreamValue(buf, pos, Frame.MaxStreamData, s.id, s.localMaxStreamData);
      (p.maxStreamData ??= []).push(s);
      eliciting = true;
    }
    if (allowData) {
      while (this.dgQueue.length > 0) {
        const d = this.dgQueue.peek()!;
        const need = datagramFrameLen(d.data.length);
        if (need > size - start - 1) {
          // no longer fits any packet (packet size shrank): drop it
          this.dgQueue.shift();
          this.dgQueuedBytes -= d.data.length;
          continue;
        }
        if (need > size - pos) break;
        pos = writeDatagram(buf, pos, d.srcPort, d.dstPort, d.data);
        this.dgQueue.shift();
        this.dgQueuedBytes -= d.data.length;
        this.counters.datagramsSent++;
        eliciting = true;
      }
      if (this.sendQueue.length > 0 && size - pos >= MIN_FRAME_ROOM) {
        const np = this.writeStreamFrames(buf, pos, size, p);
        if (np > pos) {
          pos = np;
          eliciting = true;
        }
      }
    }
    // the peer acks the end of a flight (window full, or nothing more to send) at once instead of after
    // its ack delay: with a small window (after losses), waiting would stall us for nothing. Except a
    // lone packet (nothing else in flight) with plain data: a request, a reply, a datagram. Its ACK
    // rides on the peer's answer instead of costing a packet of its own each way (ack delay at most
    // MAX_ACK_DELAY_MS when no answer comes; opens, FINs and control frames are still acked at once).
    const cc = this.recovery.cc;
    const lone = cc.bytesInFlight === 0 && !needsPromptAck(p);
    const lastOfFlight = probe || !allowData || (this.sendQueue.length === 0 && !lone) || cc.bytesInFlight + pos + size > cc.cwnd;
    if (pos === mark + 1) {
      if (probe) {
        buf[mark] = Frame.ImmediateAck; // probe with nothing else to carry
        eliciting = true;
        p.immediate = true;
      } else {
        pos = mark; // nothing written after it: give the byte back
      }
    } else if (lastOfFlight && eliciting) {
      buf[mark] = Frame.ImmediateAck;
      p.immediate = true;
    } else {
      buf[mark] = Frame.Padding;
    }
    if (pos === start) {
      log.release(p);
      return false;
    }
    p.time = now;
    p.size = pos;
    p.ackEliciting = eliciting;
    p.inFlight = eliciting;
    this.recovery.onPacketSent(p);
    if (eliciting) this.pacer.consume(pos);
    this.counters.packetsSent++;
    this.counters.bytesSent += pos;
    try {
      this.sendFn(buf.subarray(0, pos));
    } catch {
      this.counters.sendErrors++; // the session layer failed: the packet counts as lost when its ACK never comes
    }
    return true;
  }

  /** A packet buffer of `size` bytes with the configured head- and tailroom around it (one allocation). */
  private allocPacket(size: number): Buffer {
    if (this.headroom === 0 && this.tailroom === 0) return Buffer.allocUnsafe(size);
    return Buffer.allocUnsafe(this.headroom + size + this.tailroom).subarray(this.headroom, this.headroom + size);
  }

  /** Fills the packet with STREAM frames, round-robin over streams with something to send. */
  private writeStreamFrames(buf: Buffer, pos: number, size: number, p: SentPacket): number {
    const q = this.sendQueue;
    while (q.length > 0 && size - pos >= MIN_FRAME_ROOM) {
      const s = q.peek()!;
      if (s.sendDone) {
        q.shift();
        s.queued = false;
        continue;
      }
      const sb = s.sendBuf;
      const connRoom = this.peerMaxData - this.connSent;
      const limit = Math.min(s.peerMaxStreamData, sb.sentOffset + Math.max(0, connRoom));
      const open = !s.openAcked;
      const room = size - pos;
      const hdrMax = 1 + varintLen(s.id) + (open ? 4 : 0) + varintLen(sb.writeOffset);
      if (!sb.peek(room - hdrMax, limit)) {
        if (s.needOpen) {
          // nothing to send yet: an empty frame still tells the peer the stream exists
          pos = writeStreamHeader(buf, pos, s.id, 0, 0, false, true, s.remotePort, s.localPort, true);
          this.recordFrag(p, s, 0, 0, false, true);
          s.needOpen = false;
        }
        q.shift();
        s.queued = false;
        this.parkIfConnBlocked(s, connRoom);
        continue;
      }
      const off = sb.outOff;
      const len = sb.outLen;
      const fin = sb.outFin;
      const left = room - streamHeaderLen(s.id, off, 0, open, false) - len;
      // a frame that leaves too little room for another one runs to the end of the packet (no length field)
      const withLen = left >= MIN_FRAME_ROOM;
      pos = writeStreamHeader(buf, pos, s.id, off, len, fin, open, s.remotePort, s.localPort, withLen);
      if (len > 0) {
        sb.copyOut(buf, pos, off, len);
        pos += len;
      }
      const fresh = sb.commit();
      if (fresh > 0) {
        this.connSent += fresh;
        if (!s.writerQueued) {
          s.writerQueued = true;
          this.writers.push(s);
        }
      }
      if (fresh < len) this.counters.retransmittedBytes += len - fresh;
      if (open) s.needOpen = false;
      this.recordFrag(p, s, off, len, fin, open);
      // round-robin: the next packet starts with the next stream
      q.shift();
      const connLeft = this.peerMaxData - this.connSent;
      if (s.wantsSend(sb.sentOffset + Math.max(0, connLeft))) q.push(s);
      else {
        s.queued = false;
        this.parkIfConnBlocked(s, connLeft);
      }
      if (!withLen) break;
    }
    return pos;
  }

  /**
   * A stream leaving the send queue with new bytes that only the connection's credit holds back
   * waits for MAX_DATA (unblockConnection); one held by its own credit waits for MAX_STREAM_DATA.
   * Missing this when the stream's own frame used up the last credit left it stalled for good
   * once its writer had finished (nothing else re-queues it).
   */
  private parkIfConnBlocked(s: Stream, connRoom: number): void {
    if (connRoom > 0) return;
    const limit = Math.min(s.peerMaxStreamData, s.sendBuf.sentOffset);
    if (s.sendBuf.blockedAt(limit) && !this.connBlocked.includes(s)) this.connBlocked.push(s);
  }

  private recordFrag(p: SentPacket, s: Stream, off: number, len: number, fin: boolean, open: boolean): void {
    if (p.stream === null) {
      p.stream = s;
      p.off = off;
      p.len = len;
      p.fin = fin;
      p.open = open;
    } else {
      (p.more ??= []).push({ stream: s, off, len, fin, open } satisfies StreamFrag);
    }
  }

  /** Streams whose data went out may take more writes now. */
  private releaseWriters(): void {
    const list = this.writers;
    this.writers = [];
    for (const s of list) {
      s.writerQueued = false;
      s.onSent();
    }
  }

  // ================= timer =================

  private armIdle(activity: number): void {
    if (this.idleTimeoutMs > 0 && this.idleCheckAt === Infinity) {
      this.idleCheckAt = activity + this.idleTimeoutMs;
      this.armTimer(this.clock());
    }
  }

  private armTimer(now: number): void {
    if (this.closed) return;
    let t = this.recovery.deadline();
    if (this.acks.pending > 0 && this.acks.deadline < t) t = this.acks.deadline;
    if (this.pacingAt < t) t = this.pacingAt;
    if (this.idleCheckAt < t) t = this.idleCheckAt;
    if (t === Infinity) {
      // nothing to wait for: leave a pending timer to fire early (re-evaluated then) instead of clearing
      // it, since request/response would clear and set one per round trip; unref'd, it keeps nobody alive
      if (this.timer !== null) this.timer.unref();
      return;
    }
    if (this.timer !== null && this.timerAt <= t) {
      // fires early enough; re-evaluated then. Data in flight keeps the process alive (see below).
      if (t !== this.idleCheckAt && !this.timer.hasRef()) this.timer.ref();
      return;
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = t;
    this.timer = setTimeout(this.timerCb, Math.max(0, Math.ceil(t - now)));
    // data in flight keeps the process alive like a socket with pending writes; an idle check alone does not
    if (t === this.idleCheckAt) this.timer.unref();
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.closed) return;
    const now = this.clock();
    if (this.recovery.deadline() <= now && this.recovery.onTimeout(now)) this.onProbeTimeout();
    if (now >= this.idleCheckAt) this.checkIdle(now);
    this.flush();
  }

  /** PTO: send up to two ack-eliciting probes; with no new data, repeat the oldest unacked data. */
  private onProbeTimeout(): void {
    this.probes = 2;
    if (this.sendQueue.length > 0 || this.dgQueue.length > 0) return;
    const p = this.recovery.oldestUnacked();
    if (p === undefined) return;
    if (p.stream !== null) p.stream.onLost(p.off, p.len, p.fin, p.open);
    if (p.more !== null) for (const m of p.more) m.stream.onLost(m.off, m.len, m.fin, m.open);
    if (p.ctrl !== null) for (const c of p.ctrl) this.ctrlQueue.push(c);
  }

  private checkIdle(now: number): void {
    this.idleCheckAt = Infinity;
    if (this.idleTimeoutMs <= 0) return;
    let next = Infinity;
    for (const s of [...this.streams.values()]) {
      const due = s.lastActivity + this.idleTimeoutMs;
      if (due <= now) {
        s.abort(new PilotError('TIMEOUT', `stream idle for ${this.idleTimeoutMs} ms`, 'the peer may be gone; retry or raise the idle timeout'), true);
      } else if (due < next) {
        next = due;
      }
    }
    this.idleCheckAt = next;
  }

  // ================= teardown =================

  private terminate(err: PilotError): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const list = [...this.streams.values()];
    this.streams.clear();
    this.sendQueue.clear();
    this.creditQueue.clear();
    this.dgQueue.clear();
    this.ctrlQueue = [];
    this.connBlocked = [];
    for (const s of list) s.abort(err, false);
    this.emit('close');
  }
}

/** Does the peer's answer to this packet matter at once (stream opening or end, flow control, resets)? */
function needsPromptAck(p: SentPacket): boolean {
  if (p.ctrl !== null || p.maxData || p.maxStreamData !== null) return true;
  if (p.stream !== null && (p.open || p.fin)) return true;
  if (p.more !== null) for (const m of p.more) if (m.open || m.fin) return true;
  return false;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new PilotError('BAD_ARGUMENT', `${what} must be an integer 0-65535, got ${port}`);
}

function checkRoom(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 256) throw new PilotError('BAD_ARGUMENT', `${what} must be an integer 0-256, got ${n}`);
  return n;
}

function checkPacketSize(size: number): number {
  if (!Number.isInteger(size) || size < MIN_PACKET_SIZE || size > MAX_PACKET_SIZE) {
    throw new PilotError('BAD_ARGUMENT', `packet size must be an integer ${MIN_PACKET_SIZE}-${MAX_PACKET_SIZE}, got ${size}`);
  }
  return size;
}
