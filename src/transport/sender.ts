// The send side of a connection: what waits to be sent (streams with data,
// control frames, stream credit, datagrams, probes), the send loop that turns
// it into packets as far as congestion control, pacing and flow control allow,
// and the packetizer that fills each packet (ACK first, then control frames,
// then datagrams and stream data round-robin). What a sent packet carried is
// remembered in its SentPacket record; on ACK or loss the record's contents are
// acknowledged or requeued here, never the packet itself.
//
// The connection decides *when* to send (one flush per event-loop turn, or at
// once for a lone packet); this decides *what* goes into each packet.
import type { AckTracker } from './ack-tracker.ts';
import { DatagramQueue } from './datagram-queue.ts';
import { Deque } from './deque.ts';
import type { ConnectionFlowControl } from './flow-control.ts';
import {
  datagramFrameLen,
  Frame,
  streamHeaderLen,
  writeConnectionClose,
  writeConnValue,
  writeDatagram,
  writeResetStream,
  writeStopSending,
  writeStreamHeader,
  writeStreamValue,
} from './frames.ts';
import type { MtuDiscoverer } from './mtu-discoverer.ts';
import { Pacer } from './pacer.ts';
import type { Recovery } from './recovery.ts';
import type { CtrlFrame, SentPacket, StreamFrag } from './sent-packets.ts';
import type { ConnectionCounters } from './stats.ts';
import type { Stream } from './stream.ts';
import { varintLen, writeVarint } from './varint.ts';

/** Worst-case packet number length: budget for it so a datagram that fits now always fits. */
export const PN_MAX_LEN = 8;
/** Room left in a packet below which no further frame is attempted. */
const MIN_FRAME_ROOM = 24;
/** Packets per flush before yielding to the event loop (so ACKs and other peers get a turn). */
export const FLUSH_BUDGET = 256;

/** What the sender needs from its connection. */
export interface SenderHost {
  /** Hands one packet to the session layer, which then owns the buffer (may throw: counted as a send error). */
  transmit(packet: Buffer): void;
}

/** The per-incarnation state the sender works with (a reset() builds a new sender with new parts). */
export interface SenderParts {
  recovery: Recovery;
  acks: AckTracker;
  flow: ConnectionFlowControl<Stream>;
  /** Shared with the receive side, and kept across reset(). */
  counters: ConnectionCounters;
  maxPacket: number;
  /** Bytes reserved before / after each packet inside the same memory (in-place encryption). */
  headroom: number;
  tailroom: number;
}

export class Sender {
  /** Packet size for packets built from now on. */
  maxPacket: number;
  /** When pacing lets the next data packet go (Infinity: not held back by pacing). */
  pacingAt = Infinity;
  readonly datagrams = new DatagramQueue();
  /** Path MTU discovery (null: the packet size is fixed). */
  mtu: MtuDiscoverer | null = null;
  /** First packet number sent on the current path: probing waits for an ACK of one of ours from there on. */
  mtuFromPn = 0;

  private readonly host: SenderHost;
  private readonly recovery: Recovery;
  private readonly acks: AckTracker;
  private readonly flow: ConnectionFlowControl<Stream>;
  private readonly counters: ConnectionCounters;
  private readonly headroom: number;
  private readonly tailroom: number;
  private readonly pacer: Pacer;

  /** Streams with something to send, round-robin. */
  private readonly sendQueue = new Deque<Stream>();
  /** RESET_STREAM / STOP_SENDING, sent outside congestion control. */
  private ctrlQueue: CtrlFrame[] = [];
  /** Streams owed a MAX_STREAM_DATA. */
  private readonly creditQueue = new Deque<Stream>();
  /** Ack-eliciting probes owed after a probe timeout. */
  private probes = 0;
  /** Streams whose new bytes went out in this flush: their held write callbacks may be released. */
  private writers: Stream[] = [];
  /** A full-size packet buffer nobody holds (a small packet was copied out of it): the next packet is built in it. */
  private spare: Buffer | null = null;

  constructor(host: SenderHost, parts: SenderParts) {
    this.host = host;
    this.recovery = parts.recovery;
    this.acks = parts.acks;
    this.flow = parts.flow;
    this.counters = parts.counters;
    this.maxPacket = parts.maxPacket;
    this.headroom = parts.headroom;
    this.tailroom = parts.tailroom;
    this.pacer = new Pacer(parts.maxPacket);
  }

  // ================= queueing =================

  /** The stream has something to send (idempotent). */
  enqueueStream(s: Stream): void {
    if (!s.queued && !s.sendDone) {
      s.queued = true;
      this.sendQueue.push(s);
    }
  }

  queueControl(type: number, id: number, code: number, finalSize: number): void {
    this.ctrlQueue.push({ type, id, code, finalSize });
  }

  /** Queue a MAX_STREAM_DATA for the stream; false if one already is. */
  queueCredit(s: Stream): boolean {
    if (s.creditQueued) return false;
    s.creditQueued = true;
    this.creditQueue.push(s);
    return true;
  }

  hasQueued(): boolean {
    return (
      this.sendQueue.length > 0 || this.ctrlQueue.length > 0 || this.creditQueue.length > 0 || this.flow.pending || this.datagrams.length > 0 || this.probes > 0
    );
  }

  /** Drops everything queued (connection closed). */
  clear(): void {
    this.sendQueue.clear();
    this.creditQueue.clear();
    this.datagrams.clear();
    this.ctrlQueue = [];
  }

  // ================= the send loop =================

  /**
   * Sends as much as congestion control, pacing and flow control allow, then an ACK if one is due
   * and nothing carried it. True if the flush budget ran out with more to send (continue after I/O
   * had a turn).
   */
  flush(now: number): boolean {
    const cc = this.recovery.cc;
    this.pacer.refill(now, cc.cwnd, this.recovery.rtt.smoothed, this.maxPacket, cc.inSlowStart(), cc.pacingRate);
    this.pacingAt = Infinity;
    let budget = FLUSH_BUDGET;
    let windowLimited = false;
    while (budget > 0) {
      const probe = this.probes > 0;
      const ctrl = this.ctrlQueue.length > 0 || this.flow.pending || this.creditQueue.length > 0;
      const data = this.sendQueue.length > 0 || this.datagrams.length > 0;
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
    // once the peer acked a packet we sent on this path (it wants our packets, and the path carries them:
    // a NAT on a path just punched may still drop them), one probe at a time, outside the window
    if (this.mtu !== null && this.recovery.largestAcked >= this.mtuFromPn) {
      const size = this.mtu.probeSize(now, this.recovery.rtt.smoothed, this.recovery.ptoInterval());
      if (size > 0) this.sendMtuProbe(now, size);
    }
    cc.appLimited = !windowLimited;
    // ran out of data (not window, pacing or budget): rate samples until this data is acked understate the path
    if (!windowLimited && budget > 0) this.recovery.rate.onAppLimited(cc.bytesInFlight);
    if (this.acks.due(now)) this.buildPacket(now, false, false); // nothing carried the ACK: ack-only packet
    if (this.writers.length > 0) this.releaseWriters();
    return budget === 0;
  }

  /** An ACK (with any control frames) now, without data: a long receive burst keeps the peer's ACK clock ticking. */
  sendAck(now: number): void {
    this.buildPacket(now, false, false);
  }

  /** CONNECTION_CLOSE in a packet of its own (may throw from the session layer: the caller decides). */
  sendClose(code: number): void {
    const buf = this.allocPacket(this.maxPacket);
    let pos = writeVarint(buf, 0, this.recovery.log.next);
    pos = writeConnectionClose(buf, pos, code, Buffer.alloc(0));
    this.counters.packetsSent++;
    this.counters.bytesSent += pos;
    this.host.transmit(buf.subarray(0, pos));
  }

  /** A path MTU probe: IMMEDIATE_ACK padded to `size`, remembered but not in flight (no congestion window, no PTO). */
  private sendMtuProbe(now: number, size: number): void {
    const buf = this.allocPacket(size);
    const log = this.recovery.log;
    const p = log.alloc();
    p.pn = log.next;
    let pos = writeVarint(buf, 0, p.pn);
    buf[pos++] = Frame.ImmediateAck;
    buf.fill(Frame.Padding, pos, size);
    p.time = now;
    p.size = size;
    p.probeSize = size;
    this.recovery.onPacketSent(p);
    this.mtu!.onProbeSent(size, now);
    this.counters.packetsSent++;
    this.counters.bytesSent += size;
    try {
      this.host.transmit(buf);
    } catch {
      this.counters.sendErrors++;
    }
  }

  // ================= what sent packets carried =================

  /** PTO: send up to two ack-eliciting probes; with no new data, repeat the oldest unacked data. */
  onProbeTimeout(): void {
    this.probes = 2;
    if (this.sendQueue.length > 0 || this.datagrams.length > 0) return;
    const p = this.recovery.oldestUnacked();
    if (p === undefined) return;
    if (p.stream !== null) p.stream.onLost(p.off, p.len, p.fin, p.open);
    if (p.more !== null) for (const m of p.more) m.stream.onLost(m.off, m.len, m.fin, m.open);
    if (p.ctrl !== null) for (const c of p.ctrl) this.ctrlQueue.push(c);
  }

  onPacketAcked(p: SentPacket): void {
    if (p.stream !== null) p.stream.onAcked(p.off, p.len, p.fin, p.open);
    if (p.more !== null) for (const m of p.more) m.stream.onAcked(m.off, m.len, m.fin, m.open);
    if (p.ackLargest >= 0) this.acks.onAckAcked(p.ackLargest);
  }

  /** Requeues what a lost packet carried (streams requeue their own ranges); true if stream credit was queued. */
  onPacketLost(p: SentPacket): boolean {
    if (p.stream !== null) p.stream.onLost(p.off, p.len, p.fin, p.open);
    if (p.more !== null) for (const m of p.more) m.stream.onLost(m.off, m.len, m.fin, m.open);
    if (p.ctrl !== null) for (const c of p.ctrl) this.ctrlQueue.push(c);
    if (p.maxData) this.flow.pending = true;
    let credit = false;
    if (p.maxStreamData !== null) for (const s of p.maxStreamData) if (this.queueCredit(s)) credit = true;
    return credit;
  }

  // ================= the packetizer =================

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
    if (this.flow.pending && size - pos >= 9) {
      pos = writeConnValue(buf, pos, Frame.MaxData, this.flow.maxData);
      this.flow.pending = false;
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
      const dq = this.datagrams;
      while (dq.length > 0) {
        const d = dq.peek()!;
        const need = datagramFrameLen(d.data.length);
        if (need > size - start - 1) {
          dq.shift(); // no longer fits any packet (packet size shrank): drop it
          continue;
        }
        if (need > size - pos) break;
        pos = writeDatagram(buf, pos, d.srcPort, d.dstPort, d.data);
        dq.shift();
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
      this.spare = buf;
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
      this.host.transmit(pos <= size >>> 1 ? this.compact(buf, pos) : buf.subarray(0, pos));
    } catch {
      this.counters.sendErrors++; // the session layer failed: the packet counts as lost when its ACK never comes
    }
    return true;
  }

  /** A packet buffer of `size` bytes with the configured head- and tailroom around it (one allocation). */
  private allocPacket(size: number): Buffer {
    const spare = this.spare;
    if (spare !== null) {
      this.spare = null;
      if (spare.length === size) return spare;
    }
    if (this.headroom === 0 && this.tailroom === 0) return Buffer.allocUnsafe(size);
    return Buffer.allocUnsafe(this.headroom + size + this.tailroom).subarray(this.headroom, this.headroom + size);
  }

  /**
   * A small packet (a request, a reply, an ACK) leaves in an allocation of its own size, and the
   * full-size buffer it was built in is kept for the next packet: otherwise each one takes a
   * full-size slice of Buffer's pool (64 KiB) for a few dozen bytes: a new pool every ~45 packets of
   * request/response traffic instead of every ~900, and collector work for each. A bulk packet is
   * sent from the buffer it was built in (no copy).
   */
  private compact(buf: Buffer, pos: number): Buffer {
    const head = this.headroom;
    const out = Buffer.allocUnsafe(head + pos + this.tailroom);
    buf.copy(out, head, 0, pos);
    this.spare = buf;
    return head === 0 && this.tailroom === 0 ? out : out.subarray(head, head + pos);
  }

  /** Fills the packet with STREAM frames, round-robin over streams with something to send. */
  private writeStreamFrames(buf: Buffer, pos: number, size: number, p: SentPacket): number {
    const q = this.sendQueue;
    const flow = this.flow;
    while (q.length > 0 && size - pos >= MIN_FRAME_ROOM) {
      const s = q.peek()!;
      if (s.sendDone) {
        q.shift();
        s.queued = false;
        continue;
      }
      const sb = s.sendBuf;
      const connRoom = flow.sendRoom();
      const limit = Math.min(s.peerMaxStreamData, sb.sentOffset + Math.max(0, connRoom));
      const open = !s.openAcked;
      const room = size - pos;
      const hdrMax = 1 + varintLen(s.id) + (open ? 4 : 0) + varintLen(sb.writeOffset);
      if (!sb.peek(room - hdrMax, limit)) {
        if (s.needOpen) {
          // nothing to send yet: an empty frame still tells the peer the stream exists
          pos = writeStreamHeader(buf, pos, s.id, 0, 0, false, true, s.remotePort, s.localPort, true);
          recordFrag(p, s, 0, 0, false, true);
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
        flow.onSent(fresh);
        if (!s.writerQueued) {
          s.writerQueued = true;
          this.writers.push(s);
        }
      }
      if (fresh < len) this.counters.retransmittedBytes += len - fresh;
      if (open) s.needOpen = false;
      recordFrag(p, s, off, len, fin, open);
      // round-robin: the next packet starts with the next stream
      q.shift();
      const connLeft = flow.sendRoom();
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
   * waits for MAX_DATA (the connection requeues it); one held by its own credit waits for MAX_STREAM_DATA.
   * Missing this when the stream's own frame used up the last credit left it stalled for good
   * once its writer had finished (nothing else re-queues it).
   */
  private parkIfConnBlocked(s: Stream, connRoom: number): void {
    if (connRoom > 0) return;
    const limit = Math.min(s.peerMaxStreamData, s.sendBuf.sentOffset);
    if (s.sendBuf.blockedAt(limit)) this.flow.block(s);
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
}

/** Records a STREAM frame in the packet's record: the first inline, further ones in `more`. */
function recordFrag(p: SentPacket, s: Stream, off: number, len: number, fin: boolean, open: boolean): void {
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

/** Does the peer's answer to this packet matter at once (stream opening or end, flow control, resets)? */
function needsPromptAck(p: SentPacket): boolean {
  if (p.ctrl !== null || p.maxData || p.maxStreamData !== null) return true;
  if (p.stream !== null && (p.open || p.fin)) return true;
  if (p.more !== null) for (const m of p.more) if (m.open || m.fin) return true;
  return false;
}
