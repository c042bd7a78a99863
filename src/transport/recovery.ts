// Loss detection after RFC 9002 §6 and Appendix A: processes ACK ranges,
// takes RTT samples, declares packets lost by packet threshold (3) or time
// threshold (9/8 RTT), runs the probe timeout with exponential backoff and
// detects persistent congestion. What a lost packet carried is requeued by the
// connection (handler), never the packet itself.
import { NewReno, DEFAULT_CONGESTION_ALGORITHM, type CongestionAlgorithm, type CongestionController } from './congestion.ts';
import { Bbr } from './bbr.ts';
import { Cubic } from './cubic.ts';
import { DeliveryRate } from './delivery-rate.ts';
import { RttEstimator, GRANULARITY_MS } from './rtt.ts';
import { SentLog, type SentPacket } from './sent-packets.ts';

const PACKET_THRESHOLD = 3;
const PERSISTENT_CONGESTION_THRESHOLD = 3;
/** Longest probe timeout after backoff. */
const MAX_PTO_MS = 60_000;

export function createCongestionController(algorithm: CongestionAlgorithm, mss: number): CongestionController {
  if (algorithm === 'newreno') return new NewReno(mss);
  if (algorithm === 'cubic') return new Cubic(mss);
  return new Bbr(mss);
}

export interface RecoveryHandler {
  onPacketAcked(p: SentPacket): void;
  onPacketLost(p: SentPacket): void;
}

export class Recovery {
  readonly rtt = new RttEstimator();
  readonly cc: CongestionController;
  readonly log = new SentLog();
  /** Per-packet delivery-rate sampling; only a model-based controller (BBR) reads it. */
  readonly rate = new DeliveryRate();
  readonly maxAckDelay: number;
  largestAcked = -1;
  /** Earliest time an outstanding packet will pass the time threshold. */
  lossTime = Infinity;
  ptoCount = 0;
  lastAckElicitingTime = 0;
  /** The newest ack-eliciting packet asked for an immediate ACK: the probe timeout need not allow for ack delay. */
  lastAckElicitingImmediate = false;
  ackElicitingInFlight = 0;
  packetsLost = 0;
  /** Packets declared lost that were acked after all (reordering, or a late ACK). */
  spuriousLosses = 0;
  /** Packet numbers declared lost since the last window reduction; all of them acked later = the reduction was spurious. */
  private reductionLost: number[] = [];
  private reductionSpurious = 0;
  private readonly handler: RecoveryHandler;

  constructor(mss: number, maxAckDelay: number, handler: RecoveryHandler, algorithm: CongestionAlgorithm = DEFAULT_CONGESTION_ALGORITHM) {
    this.cc = createCongestionController(algorithm, mss);
    this.maxAckDelay = maxAckDelay;
    this.handler = handler;
  }

  onPacketSent(p: SentPacket): void {
    this.log.push(p);
    if (p.inFlight) {
      this.rate.onSent(p, this.cc.bytesInFlight, p.time);
      this.cc.onSent(p.size);
    }
    if (p.ackEliciting) {
      this.ackElicitingInFlight++;
      this.lastAckElicitingTime = p.time;
      this.lastAckElicitingImmediate = p.immediate;
    }
  }

  /**
   * Applies one ACK frame. ranges holds [hi, lo] pairs (highest first) from index start, count pairs.
   * Returns false if it acknowledged a packet we never sent (a protocol violation; ignored otherwise).
   */
  onAck(ranges: number[], start: number, count: number, ackDelayMs: number, now: number): boolean {
    const log = this.log;
    let valid = true;
    const largest = ranges[start]!;
    if (largest >= log.next) valid = false;
    let newlyAcked = false;
    let elicitingAcked = false;
    const rate = this.rate;
    rate.begin();
    for (let k = 0; k < count; k++) {
      const hi = Math.min(ranges[start + 2 * k]!, log.next - 1);
      const lo = Math.max(ranges[start + 2 * k + 1]!, log.base);
      for (let pn = hi; pn >= lo; pn--) {
        const p = log.get(pn);
        if (p === undefined) continue;
        if (!newlyAcked) {
          newlyAcked = true;
          // RTT sample only from the largest acked packet, if newly acked (RFC 9002 §5.1)
          if (pn === largest && largest > this.largestAcked && p.ackEliciting) {
            this.rtt.update(now - p.time, ackDelayMs, this.maxAckDelay);
          }
        }
        if (p.ackEliciting) {
          this.ackElicitingInFlight--;
          elicitingAcked = true;
        }
        log.remove(pn);
        if (p.inFlight) {
          rate.onAcked(p, now);
          this.cc.onAcked(p.size, p.time, now, this.rtt.smoothed);
        }
        this.handler.onPacketAcked(p);
        log.release(p);
      }
    }
    if (this.reductionLost.length > 0) this.checkSpurious(ranges, start, count);
    if (valid && largest > this.largestAcked) this.largestAcked = largest;
    if (!newlyAcked) return valid;
    if (elicitingAcked) this.ptoCount = 0;
    this.detectLoss(now);
    if (this.cc.onRateSample !== undefined) {
      this.cc.onRateSample(rate.end(this.rtt.hasSample ? this.rtt.min : Infinity), now);
      rate.sample.newlyLost = 0;
    }
    return valid;
  }

  /** Counts acks of packets we declared lost; if every loss behind the last reduction was one, undo it (RFC 9438 §4.9). */
  private checkSpurious(ranges: number[], start: number, count: number): void {
    const lost = this.reductionLost;
    for (let i = 0; i < lost.length; i++) {
      const pn = lost[i]!;
      if (pn < 0) continue;
      for (let k = 0; k < count; k++) {
        if (pn <= ranges[start + 2 * k]! && pn >= ranges[start + 2 * k + 1]!) {
          lost[i] = -1;
          this.spuriousLosses++;
          this.reductionSpurious++;
          break;
        }
      }
    }
    if (this.reductionSpurious === lost.length) {
      this.cc.undoLastReduction();
      this.reductionLost = [];
      this.reductionSpurious = 0;
    }
  }

  /** Declares lost what passed the packet or time threshold; sets lossTime for the rest. */
  detectLoss(now: number): void {
    const log = this.log;
    const lossDelay = this.rtt.lossDelay();
    const lostBefore = now - lossDelay;
    this.lossTime = Infinity;
    const end = Math.min(this.largestAcked, log.next - 1);
    let newestLostTime = -Infinity;
    let firstLostTime = Infinity;
    let contiguous = true;
    let sawLost = false;
    const lostNow: number[] = [];
    for (let pn = log.base; pn < end; pn++) {
      const p = log.get(pn);
      if (p === undefined) {
        if (sawLost) contiguous = false; // acked in between: not one long outage
        continue;
      }
      if (p.time <= lostBefore || this.largestAcked >= pn + PACKET_THRESHOLD) {
        log.remove(pn);
        if (p.ackEliciting) this.ackElicitingInFlight--;
        if (p.inFlight) {
          this.packetsLost++; // (an unacknowledged ACK-only packet is not a loss)
          this.cc.onRemoved(p.size);
          this.rate.onLost(p.size);
          sawLost = true;
          lostNow.push(pn);
          if (p.time > newestLostTime) newestLostTime = p.time;
          if (p.time < firstLostTime) firstLostTime = p.time;
        }
        this.handler.onPacketLost(p);
        log.release(p);
      } else {
        if (sawLost) contiguous = false;
        const t = p.time + lossDelay;
        if (t < this.lossTime) this.lossTime = t;
      }
    }
    if (!sawLost) return;
    const events = this.cc.congestionEvents;
    this.cc.onCongestionEvent(newestLostTime, now);
    if (this.cc.congestionEvents !== events) {
      this.reductionLost = lostNow;
      this.reductionSpurious = 0;
    } else if (this.reductionLost.length < 256) {
      for (const pn of lostNow) this.reductionLost.push(pn); // same recovery period: part of the same reduction
    } else {
      this.reductionLost = []; // too many to watch: the reduction stands
    }
    const pcDuration = (this.rtt.smoothed + Math.max(4 * this.rtt.variance, GRANULARITY_MS) + this.maxAckDelay) * PERSISTENT_CONGESTION_THRESHOLD;
    if (contiguous && this.rtt.hasSample && newestLostTime - firstLostTime > pcDuration) {
      this.cc.onPersistentCongestion(now);
      this.reductionLost = [];
    }
  }

  /** When the loss-detection timer wants to run (Infinity: not armed). */
  deadline(): number {
    if (this.lossTime !== Infinity) return this.lossTime;
    if (this.ackElicitingInFlight <= 0) return Infinity;
    return this.lastAckElicitingTime + this.ptoInterval();
  }

  ptoInterval(): number {
    const ackDelay = this.lastAckElicitingImmediate ? 0 : this.maxAckDelay;
    return Math.min(this.rtt.pto(ackDelay) * 2 ** Math.min(this.ptoCount, 16), MAX_PTO_MS);
  }

  /** Runs the loss-detection timer; true when a probe timeout fired (the caller sends probes). */
  onTimeout(now: number): boolean {
    if (this.lossTime !== Infinity) {
      if (now >= this.lossTime) this.detectLoss(now);
      return false;
    }
    if (this.ackElicitingInFlight <= 0 || now < this.lastAckElicitingTime + this.ptoInterval()) return false;
    this.ptoCount++;
    return true;
  }

  /** Oldest outstanding ack-eliciting packet (what a probe should repeat). */
  oldestUnacked(): SentPacket | undefined {
    const log = this.log;
    for (let pn = log.base; pn < log.next; pn++) {
      const p = log.get(pn);
      if (p?.ackEliciting) return p;
    }
    return undefined;
  }
}
