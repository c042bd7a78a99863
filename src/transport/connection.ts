// One transport connection per peer, running inside an encrypted session that
// delivers opaque packets unreliably. QUIC-like: packet numbers + frames
// (frames.ts), selective ACKs (ack-tracker.ts), RFC 9002 loss detection and
// BBR, CUBIC or NewReno (recovery.ts, bbr.ts, cubic.ts, congestion.ts), pacing (pacer.ts), per-stream and
// per-connection flow control (stream.ts, flow-control.ts), streams as Duplexes (stream.ts) and
// unreliable datagrams.
//
// This file ties the parts together: the receive path (parse, then dispatch each frame), the
// stream table (stream-table.ts), *when* to send (the flush scheduling below) and the timer
// (conn-timer.ts). *What* goes into each packet is the sender's job (sender.ts).
//
// Cost model: sending is batched into one flush per event-loop turn (so many
// writes or many received packets produce full packets and one ACK), except a
// lone packet (nothing in flight), which leaves at once (latency); there is
// a single timer per connection, payload is copied once (application buffer ->
// packet) on send and not at all on receive (streams get views of the packet).
import { EventEmitter } from 'node:events';
import { PilotError } from '../util/errors.ts';
import { AckTracker } from './ack-tracker.ts';
import { AppCode, CloseCode } from './codes.ts';
import { ConnectionTimer } from './conn-timer.ts';
import { ConnectionFlowControl } from './flow-control.ts';
import { Frame, Kind, ParsedPacket, type ParsedFrame } from './frames.ts';
import { type MtuChange, MtuDiscoverer, type MtuDiscovererHost, type MtuStatus } from './mtu-discoverer.ts';
import { checkPacketSize, checkPort, MAX_PACKET_SIZE, type ConnectionConfig, type ConnectionOptions, resolveConnectionOptions } from './options.ts';
import { Recovery, type RecoveryHandler } from './recovery.ts';
import { PN_MAX_LEN, Sender, type SenderHost } from './sender.ts';
import type { SentPacket } from './sent-packets.ts';
import { ConnectionCounters, type ConnectionStats } from './stats.ts';
import { Stream, type StreamHost } from './stream.ts';
import { StreamTable } from './stream-table.ts';
import { varintLen } from './varint.ts';

export { Stream } from './stream.ts';
export type { ConnectionStats } from './stats.ts';
export { INITIAL_CONN_CREDIT } from './flow-control.ts';
export {
  type ConnectionOptions,
  DEFAULT_CONNECTION_WINDOW,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_STREAM_WINDOW,
  MAX_PACKET_SIZE,
  MIN_PACKET_SIZE,
} from './options.ts';

/** How long we may hold an ACK (both ends assume this value: there is no parameter exchange). */
export const MAX_ACK_DELAY_MS = 10;
/** Ack-eliciting packets received in one burst after which we ACK at once instead of at the end of the burst. */
const ACK_BURST = 32;

export interface DatagramEvent {
  srcPort: number;
  dstPort: number;
  data: Buffer;
}

/** The events a Connection emits, with their listeners' arguments. */
export interface ConnectionEvents {
  /** A peer-opened stream (refused when there is no listener). */
  stream: [stream: Stream];
  datagram: [datagram: DatagramEvent];
  /** After close() or the peer's CONNECTION_CLOSE: the connection is dead. */
  close: [];
  /** After reset(): the connection lives on with fresh state. */
  reset: [];
}

export class Connection extends EventEmitter<ConnectionEvents> implements StreamHost, RecoveryHandler, SenderHost {
  private readonly cfg: ConnectionConfig;
  private readonly sendFn: (plaintext: Buffer) => void;
  private readonly clock: () => number;
  private maxPacket: number;
  private readonly counters = new ConnectionCounters();

  // per incarnation: reset() replaces all of these
  private streams: StreamTable<Stream>;
  private recovery: Recovery;
  private acks: AckTracker;
  private flow: ConnectionFlowControl<Stream>;
  private sender: Sender;
  /** Path MTU discovery (setPathMtu), kept across reset(). */
  private mtu: MtuDiscoverer | null = null;
  private mtuConfirm: MtuDiscovererHost['confirm'] | undefined;
  private mtuListener: ((size: number, why: MtuChange) => void) | undefined;
  /** Peer streams accepted while handling a packet, announced ('stream') once the packet is applied. */
  private newStreams: Stream[] = [];

  private readonly parsers: ParsedPacket[] = [new ParsedPacket()];
  /** receivePacket nesting depth (an event handler may feed another packet). */
  private depth = 0;

  // scheduling: one timer, one pending flush
  private readonly timer = new ConnectionTimer(() => this.onTimer());
  private idleCheckAt = Infinity;
  private flushScheduled = false;
  private flushing = false;
  // an eager flush (mayFlushNow) may have run before the immediate: then there is nothing left to do
  private readonly flushCb = (): void => {
    if (this.flushScheduled) this.flush();
  };
  private closed = false;

  constructor(opts: ConnectionOptions) {
    super();
    const cfg = (this.cfg = resolveConnectionOptions(opts));
    this.sendFn = cfg.sendPacket;
    this.clock = cfg.now;
    this.maxPacket = cfg.maxPacketSize;
    this.streams = new StreamTable(cfg.parity);
    this.recovery = new Recovery(this.maxPacket, MAX_ACK_DELAY_MS, this, cfg.congestionControl);
    this.acks = new AckTracker(MAX_ACK_DELAY_MS);
    this.flow = new ConnectionFlowControl(cfg.connWindow, cfg.maxConnWindow);
    this.sender = this.newSender();
  }

  private newSender(): Sender {
    const s = new Sender(this, {
      recovery: this.recovery,
      acks: this.acks,
      flow: this.flow,
      counters: this.counters,
      maxPacket: this.maxPacket,
      headroom: this.cfg.headroom,
      tailroom: this.cfg.tailroom,
    });
    s.mtu = this.mtu;
    return s;
  }

  // ================= public API =================

  /** Opens a stream to dstPort on the peer. The peer learns of it right away (an empty opening frame). */
  openStream(dstPort: number, srcPort = 0): Stream {
    checkPort(dstPort, 'dstPort');
    checkPort(srcPort, 'srcPort');
    const s = new Stream(this, this.streams.allocateLocalId(), srcPort, dstPort, true, this.cfg.stream);
    if (this.closed) {
      s.abort(new PilotError('CONNECTION_RESET', 'connection is closed'), false);
      return s;
    }
    this.streams.add(s);
    this.armIdle(s.lastActivity);
    this.streamWantsSend(s);
    return s;
  }

  /** The streams still open in either direction (pilotctl connections). */
  openStreams(): Stream[] {
    return this.streams.list();
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
    if (!this.sender.datagrams.push(srcPort, dstPort, data)) return false;
    this.flushSoon();
    return true;
  }

  /** Applies a new packet size limit (path MTU discovery) to packets built from now on. */
  setMaxPacketSize(size: number): void {
    this.maxPacket = checkPacketSize(size);
    this.sender.maxPacket = this.maxPacket;
    this.recovery.cc.setMss(this.maxPacket);
  }

  get maxPacketSize(): number {
    return this.maxPacket;
  }

  /**
   * Path MTU discovery for a (new) path: packets start at `base` and grow by probing up to `ceiling`
   * (ceiling <= base: a fixed size, no probes). `confirm` checks that an acked probe did not pass
   * fragmented (see mtu-discoverer.ts); without it there is no probing. `onChange` hears of every
   * size change discovery makes, and why.
   */
  setPathMtu(base: number, ceiling: number, confirm?: MtuDiscovererHost['confirm'], onChange?: (size: number, why: MtuChange) => void): void {
    const top = confirm === undefined ? base : Math.min(ceiling, MAX_PACKET_SIZE);
    this.setMaxPacketSize(base);
    if (this.mtu === null) {
      if (top <= base || confirm === undefined) return;
      const host: MtuDiscovererHost = {
        setPacketSize: (s, why) => {
          this.setMaxPacketSize(s);
          this.mtuListener?.(s, why);
        },
        confirm: (size, done) => {
          const c = this.mtuConfirm;
          if (c) c(size, done);
          else done(false);
        },
      };
      this.mtu = new MtuDiscoverer(host, base, top);
      this.sender.mtu = this.mtu;
    } else {
      this.mtu.reset(base, top, this.clock());
    }
    this.mtuConfirm = confirm;
    this.mtuListener = onChange;
    this.sender.mtuFromPn = this.recovery.log.next;
  }

  /** Path MTU discovery's state (undefined: never enabled on this connection). */
  mtuStatus(): MtuStatus | undefined {
    return this.mtu?.status();
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
    const list = this.streams.list();
    this.timer.stop();
    this.idleCheckAt = Infinity;
    this.streams = new StreamTable(this.cfg.parity);
    const nextPn = this.recovery.log.next;
    this.recovery = new Recovery(this.maxPacket, MAX_ACK_DELAY_MS, this, this.cfg.congestionControl);
    this.recovery.log.base = this.recovery.log.next = nextPn;
    this.acks = new AckTracker(MAX_ACK_DELAY_MS);
    this.flow = new ConnectionFlowControl(this.cfg.connWindow, this.cfg.maxConnWindow);
    this.sender = this.newSender();
    this.newStreams = [];
    // streams are marked finished before they are destroyed, so they queue nothing into the fresh state
    for (const s of list) s.abort(err, false);
    this.emit('reset');
  }

  /**
   * Tell the peer its state for this connection is stale, and start over with it: both sides reset()
   * (streams error, fresh state), and both keep counting packet numbers up, so neither duplicate filter
   * drops the other's new packets and neither sees an ACK for a packet it never sent. The signal is a
   * CONNECTION_CLOSE with code Restart (best effort) on the packet number where we are, above everything
   * the peer saw from us. For a peer that missed our reset (src/daemon/daemon.ts: an identity that ran
   * twice, one copy at a time talking to us).
   */
  restart(reason?: string): void {
    if (this.closed) return;
    this.reset(reason);
    try {
      this.sender.sendClose(CloseCode.Restart);
    } catch {
      // best effort
    }
  }

  /**
   * A closed connection (our close(), or the peer's CONNECTION_CLOSE) made usable again with fresh state,
   * as after reset(): packet numbers keep counting up, so a peer that still holds state from before
   * (it never closed: another copy of its identity did) does not drop our packets as duplicates.
   */
  reopen(): void {
    if (!this.closed) return;
    this.closed = false;
    this.reset('reopened');
  }

  /** Tells the peer (CONNECTION_CLOSE, best effort) and errors every stream with CONNECTION_RESET. */
  close(): void {
    if (this.closed) return;
    try {
      this.sender.sendClose(CloseCode.NoError);
    } catch {
      // best effort
    }
    this.terminate(new PilotError('CONNECTION_RESET', 'connection closed'));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  stats(): ConnectionStats {
    return this.counters.snapshot(this.recovery, this.cfg.congestionControl, this.streams.size, this.maxPacket);
  }

  /**
   * One packet from the session layer. The connection keeps views into it (stream data), so the
   * caller must not reuse the buffer. Never throws because of the packet's content: malformed
   * packets are counted (stats().malformed) and dropped whole. `start`: where the packet begins in
   * `plaintext` (the daemon skips its one-byte inner type without making a view per packet).
   */
  receivePacket(plaintext: Buffer, start = 0): void {
    if (this.closed) return;
    const parser = this.parsers[this.depth] ?? (this.parsers[this.depth] = new ParsedPacket());
    this.depth++;
    try {
      this.onPacket(plaintext, start, parser);
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
    if (this.sender.hasQueued()) this.flushSoon();
    else if (this.acks.due(now)) this.scheduleFlush();
    else this.armTimer(now);
  }

  // ================= receive path =================

  private onPacket(pkt: Buffer, start: number, parsed: ParsedPacket): void {
    const c = this.counters;
    if (!parsed.parse(pkt, start)) {
      c.malformed++;
      return;
    }
    const now = this.clock();
    if (!this.acks.onPacket(parsed.pn, parsed.ackEliciting, now, parsed.immediateAck)) {
      c.duplicates++;
      return;
    }
    c.packetsReceived++;
    c.bytesReceived += pkt.length - start;
    const frames = parsed.frames;
    for (let i = 0; i < parsed.count && !this.closed; i++) {
      const f = frames[i]!;
      switch (f.kind) {
        case Kind.Stream:
          this.onStreamFrame(f, now);
          break;
        case Kind.Ack:
          if (!this.recovery.onAck(parsed.ackRanges, f.rangeStart, f.rangeCount, f.code / 1000, now)) c.malformed++;
          break;
        case Kind.MaxData:
          if (this.flow.onMaxData(f.offset)) this.unblockConnection();
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
          c.datagramsReceived++;
          this.emit('datagram', { srcPort: f.srcPort, dstPort: f.dstPort, data: f.data! });
          break;
        case Kind.DataBlocked:
          this.flow.pending = true;
          break;
        case Kind.StreamDataBlocked:
          this.streams.get(f.id)?.onPeerBlocked();
          break;
        case Kind.ConnectionClose:
          if (f.code === CloseCode.Restart) this.reset('the peer restarted the connection');
          else this.terminate(new PilotError('CONNECTION_RESET', 'the peer closed the connection'));
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
    if (this.acks.pending >= ACK_BURST) this.sender.sendAck(now);
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
    if (!this.flow.onReceived(end > rb.highest ? end - rb.highest : 0)) {
      this.counters.malformed++;
      return;
    }
    rb.insert(f.offset, f.data!, f.fin);
  }

  /** A frame for a stream id we do not have: a new peer stream, or a late frame for a finished one. */
  private acceptStream(f: ParsedFrame): Stream | undefined {
    const id = f.id;
    switch (this.streams.onUnknown(id, f.open, this.listenerCount('stream') > 0)) {
      case 'ignore':
        return undefined;
      case 'answer':
        // one side lost its state: reset both directions at the peer so its stream fails now instead
        // of at its idle timeout. We cannot know the final size: ConnectionGone tells the peer not to check it
        this.queueCtrl(Frame.ResetStream, id, AppCode.ConnectionGone, 0);
        this.queueCtrl(Frame.StopSending, id, AppCode.ConnectionGone, 0);
        return undefined;
      case 'refuse':
        this.queueCtrl(Frame.StopSending, id, AppCode.Refused, 0);
        this.queueCtrl(Frame.ResetStream, id, AppCode.Refused, 0);
        return undefined;
      case 'accept':
        break;
    }
    const s = new Stream(this, id, f.dstPort, f.srcPort, false, this.cfg.stream);
    this.streams.add(s);
    this.armIdle(s.lastActivity);
    s.grantInitialCredit();
    this.newStreams.push(s);
    return s;
  }

  private onResetStream(f: ParsedFrame, now: number): void {
    const s = this.streams.get(f.id);
    if (s === undefined) {
      // reset of a peer stream whose opening frame we never saw: remember it is finished
      this.streams.onUnknownReset(f.id);
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
    if (!this.flow.onReceived(size - rb.highest)) {
      this.counters.malformed++;
      return;
    }
    rb.highest = size;
    rb.finalSize = size;
    s.onPeerReset(f.code);
  }

  // ================= RecoveryHandler =================

  onPacketAcked(p: SentPacket): void {
    const mtu = this.mtu;
    if (mtu !== null) {
      if (p.probeSize > 0) return mtu.onProbeAcked(p.probeSize, this.clock());
      if (p.inFlight) mtu.onPacketAcked(p.size, p.pn);
    }
    this.sender.onPacketAcked(p);
  }

  onPacketLost(p: SentPacket): void {
    if (this.closed) return;
    const mtu = this.mtu;
    if (mtu !== null) {
      if (p.probeSize > 0) return mtu.onProbeLost(p.probeSize, this.clock(), this.recovery.rtt.smoothed);
      if (p.inFlight) mtu.onPacketLost(p.size, p.pn, this.clock());
    }
    if (this.sender.onPacketLost(p)) this.scheduleFlush();
  }

  // ================= SenderHost =================

  transmit(packet: Buffer): void {
    this.sendFn(packet);
  }

  // ================= StreamHost =================

  now(): number {
    return this.clock();
  }

  srttMs(): number {
    return this.recovery.rtt.smoothed;
  }

  streamWantsSend(s: Stream): void {
    if (this.closed) return;
    this.sender.enqueueStream(s);
    this.scheduleFlush();
  }

  streamWritten(s: Stream): void {
    if (this.closed) return;
    this.sender.enqueueStream(s);
    this.flushSoon(); // inside receivePacket, afterReceive decides
  }

  streamControl(type: number, id: number, code: number, finalSize: number): void {
    if (this.closed) return;
    this.queueCtrl(type, id, code, finalSize);
  }

  streamCredit(s: Stream): void {
    if (this.closed) return;
    if (this.sender.queueCredit(s)) this.scheduleFlush();
  }

  streamConsumed(bytes: number): void {
    if (!this.flow.onConsumed(bytes)) return;
    this.flow.raise(this.clock(), this.recovery.rtt.smoothed);
    this.scheduleFlush();
  }

  streamUpdated(s: Stream): void {
    if (s.sendDone && s.recvDone) this.streams.remove(s);
    if (!this.closed) this.scheduleFlush();
  }

  // ================= when to send =================

  private queueCtrl(type: number, id: number, code: number, finalSize: number): void {
    this.sender.queueControl(type, id, code, finalSize);
    this.scheduleFlush();
  }

  /** MAX_DATA raised our limit: the streams that waited for it go back into the send queue. */
  private unblockConnection(): void {
    const list = this.flow.takeBlocked();
    if (list !== null) for (const s of list) this.streamWantsSend(s);
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

  /** Flush now when a lone packet may go at once (outside receivePacket), else at the end of the turn. */
  private flushSoon(): void {
    if (this.depth === 0 && this.mayFlushNow()) this.flush();
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    if (this.depth > 0) return; // inside receivePacket: afterReceive decides (no stray immediate)
    this.flushScheduled = true;
    setImmediate(this.flushCb);
  }

  /** Sends as much as congestion control, pacing and flow control allow, then re-arms the timer. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    this.flushing = true;
    try {
      const now = this.clock();
      if (this.sender.flush(now)) this.scheduleFlush(); // more to send: continue after I/O had a turn
      this.armTimer(now);
    } finally {
      this.flushing = false;
    }
  }

  // ================= timer =================

  private armIdle(activity: number): void {
    if (this.cfg.idleTimeoutMs > 0 && this.idleCheckAt === Infinity) {
      this.idleCheckAt = activity + this.cfg.idleTimeoutMs;
      this.armTimer(this.clock());
    }
  }

  /** The earliest of: loss/probe timeout, a delayed ACK, pacing, the idle check. */
  private armTimer(now: number): void {
    if (this.closed) return;
    let t = this.recovery.deadline();
    if (this.acks.pending > 0 && this.acks.deadline < t) t = this.acks.deadline;
    if (this.sender.pacingAt < t) t = this.sender.pacingAt;
    if (this.idleCheckAt < t) t = this.idleCheckAt;
    this.timer.arm(now, t, t === this.idleCheckAt);
  }

  private onTimer(): void {
    if (this.closed) return;
    const now = this.clock();
    if (this.recovery.deadline() <= now && this.recovery.onTimeout(now)) {
      if (this.mtu !== null) {
        const oldest = this.recovery.oldestUnacked(); // a lost MTU probe says nothing about the size in use
        if (oldest !== undefined && oldest.probeSize === 0) this.mtu.onProbeTimeout(this.recovery.ptoCount, now, oldest.size, oldest.pn);
      }
      this.sender.onProbeTimeout();
    }
    if (now >= this.idleCheckAt) this.checkIdle(now);
    this.flush();
  }

  private checkIdle(now: number): void {
    this.idleCheckAt = Infinity;
    if (this.cfg.idleTimeoutMs <= 0) return;
    let next = Infinity;
    for (const s of this.streams.list()) {
      const due = s.lastActivity + this.cfg.idleTimeoutMs;
      if (due <= now) {
        s.abort(new PilotError('TIMEOUT', `stream idle for ${this.cfg.idleTimeoutMs} ms`, 'the peer may be gone; retry or raise the idle timeout'), true);
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
    this.timer.stop();
    const list = this.streams.clear();
    this.sender.clear();
    this.flow.takeBlocked();
    for (const s of list) s.abort(err, false);
    this.emit('close');
  }
}
