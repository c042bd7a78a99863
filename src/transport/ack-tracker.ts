// Receive side of acknowledgement: which packet numbers arrived (also our
// duplicate filter), when an ACK is owed, and encoding the ACK frame with
// selective ranges. Ack policy after RFC 9000 §13.2: ack every 2nd
// ack-eliciting packet or after max_ack_delay, at once on reordering/gaps or
// when the sender asks (IMMEDIATE_ACK, which it puts on the last packet of a
// flight). Past start-up we ack every 10th packet instead (ack decimation, as
// Chromium's QUIC does): each ACK costs the peer a packet, encryption and a
// syscall, and the flight-end IMMEDIATE_ACK keeps small windows responsive.
// The connection flushes once per event-loop turn, so one ACK covers a batch.
import { ACK_DELAY_EXPONENT, Frame } from './frames.ts';
import { RangeSet } from './range-set.ts';
import { varintLen, writeVarint } from './varint.ts';

/** Ranges remembered (for duplicate detection and ACKs); older ones are forgotten and treated as duplicates. */
const MAX_TRACKED_RANGES = 512;
/** Ranges reported in one ACK frame at most. */
const MAX_ACK_RANGES = 64;
/** Ack-eliciting packets received before switching from every 2nd to every 10th. */
const DECIMATION_AFTER = 100;
const DECIMATED_ACK_EVERY = 10;

export class AckTracker {
  readonly received = new RangeSet();
  /** Largest packet number received, and when (for the ack delay field). */
  largest = -1;
  largestTime = 0;
  /** Ack-eliciting packets received since the last ACK we sent. */
  pending = 0;
  /** Send an ACK at the next flush. */
  immediate = false;
  /** When a delayed ACK is due (Infinity: none owed). */
  deadline = Infinity;
  /** Any packet received since the last ACK (even non-eliciting ones get reported with the next ACK). */
  unreported = false;
  /** Packet numbers below this count as duplicates (their ranges were forgotten). */
  private floor = 0;
  /** Ranges wholly at or below this were in an ACK the peer has acknowledged: no need to repeat them. */
  private ackedUpTo = -1;
  readonly maxAckDelayMs: number;
  private ackEvery = 2;
  private elicitingSeen = 0;

  constructor(maxAckDelayMs: number) {
    this.maxAckDelayMs = maxAckDelayMs;
  }

  /** Records a packet; false if it is a duplicate (the caller then drops it). */
  onPacket(pn: number, ackEliciting: boolean, now: number, immediate = false): boolean {
    if (pn < this.floor || this.received.has(pn)) return false;
    const recv = this.received;
    recv.add(pn, pn + 1);
    if (recv.size > MAX_TRACKED_RANGES) {
      recv.shift();
      this.floor = recv.min();
    }
    if (pn > this.largest) {
      // a gap before this packet means loss (or reordering): tell the sender quickly
      if (this.largest >= 0 && pn !== this.largest + 1) this.immediate = true;
      this.largest = pn;
      this.largestTime = now;
    } else {
      this.immediate = true; // fills a hole
    }
    this.unreported = true;
    if (immediate) this.immediate = true;
    if (ackEliciting) {
      if (++this.elicitingSeen === DECIMATION_AFTER) this.ackEvery = DECIMATED_ACK_EVERY;
      if (++this.pending >= this.ackEvery) this.immediate = true;
      else if (this.deadline === Infinity) this.deadline = now + this.maxAckDelayMs;
    }
    return true;
  }

  /** True when an ACK must go out now (an ACK may also ride along on any other packet). */
  due(now: number): boolean {
    return this.unreported && (this.immediate || (this.pending > 0 && now >= this.deadline));
  }

  /** Writes an ACK frame of at most maxLen bytes; returns the new position (pos if nothing fits). */
  write(buf: Buffer, pos: number, maxLen: number, now: number): number {
    const recv = this.received;
    const n = recv.size;
    if (n === 0) return pos;
    const delay = Math.max(0, Math.floor(((now - this.largestTime) * 1000) / (1 << ACK_DELAY_EXPONENT)));
    const top = n - 1;
    const largest = recv.end(top) - 1;
    // pass 1: how many ranges fit
    let size = 1 + varintLen(largest) + varintLen(delay) + 1 + varintLen(largest - recv.start(top));
    if (size > maxLen) return pos;
    let count = 0; // extra ranges beyond the first
    let lo = recv.start(top);
    for (let i = top - 1; i >= 0 && count < MAX_ACK_RANGES - 1; i--) {
      const hi = recv.end(i) - 1;
      if (hi <= this.ackedUpTo) break;
      const s = varintLen(lo - hi - 2) + varintLen(hi - recv.start(i));
      if (size + s > maxLen) break; // count stays < 64: its varint is 1 byte
      size += s;
      count++;
      lo = recv.start(i);
    }
    // pass 2: write
    buf[pos++] = Frame.Ack;
    pos = writeVarint(buf, pos, largest);
    pos = writeVarint(buf, pos, delay);
    pos = writeVarint(buf, pos, count);
    pos = writeVarint(buf, pos, largest - recv.start(top));
    lo = recv.start(top);
    for (let i = top - 1, k = 0; k < count; i--, k++) {
      const hi = recv.end(i) - 1;
      pos = writeVarint(buf, pos, lo - hi - 2);
      pos = writeVarint(buf, pos, hi - recv.start(i));
      lo = recv.start(i);
    }
    return pos;
  }

  /** Call after an ACK frame went out. */
  onAckSent(): void {
    this.pending = 0;
    this.immediate = false;
    this.unreported = false;
    this.deadline = Infinity;
  }

  /** The peer acknowledged a packet that carried our ACK up to `largest`. */
  onAckAcked(largest: number): void {
    if (largest > this.ackedUpTo) this.ackedUpTo = largest;
  }
}
