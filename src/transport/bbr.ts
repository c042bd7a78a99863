// BBR congestion control, v3 as in draft-ietf-ccwg-bbr (Linux tcp_bbr v3,
// quiche's and msquic's BBR in QUIC): instead of reading loss as congestion it
// keeps a model of the path, the bottleneck bandwidth (windowed max of the
// delivery-rate samples, delivery-rate.ts) and the propagation delay (windowed
// min RTT), paces at pacing_gain x bw and keeps cwnd_gain x BDP in flight. One
// random loss costs nothing: the window is not cut, so it does not collapse on
// a lossy link the way CUBIC does. Loss still bounds it where loss means a full
// queue or a policer: while probing for more bandwidth, a round losing more
// than 2% of what was in flight ends the probe and sets inflight_hi, the
// ceiling later probes start from (v2/v3 "loss bound"); a lossy Startup ends
// the same way. The probe's losses are counted over its round and must be
// at least two separate events (as Chromium's BBR2 does), and the 2% is on
// top of the loss rate the path shows while cruising (random loss, which
// probing does not cause): otherwise on a short path, where BBR probes every
// few milliseconds and a round holds a few dozen packets, every probe at 1%
// random loss ended at the first lost packet and inflight_hi pinned the
// window near one BDP, with nothing left to ride out ACK and scheduling
// jitter. States: STARTUP (double the rate per round until the bw stops
// growing) -> DRAIN (empty the queue Startup built) -> PROBE_BW, a cycle of
// DOWN (0.9 x bw, drain), CRUISE (1.0 x bw), REFILL (one round at 1.0 to fill
// the pipe) and UP (1.25 x bw, inflight_hi raised each round), with
// PROBE_RTT (cwnd halved for 200 ms) when the min RTT has not been refreshed
// for 5 s. Not implemented from v3: the lower bounds bw_lo / inflight_lo
// (they shrink the rate on every lossy round, which on a randomly lossy path
// is what we want to avoid; inflight_hi remains the loss guard) and ECN.
// Bytes and ms throughout.
import type { CongestionController } from './congestion.ts';
import { INITIAL_PACKETS, MAX_CWND } from './congestion.ts';
import type { RateSample } from './delivery-rate.ts';

export const BBR_STARTUP_PACING_GAIN = 2.77; // 2/ln 2: doubles the delivery rate each round
export const BBR_STARTUP_CWND_GAIN = 2;
export const BBR_DRAIN_PACING_GAIN = 0.35;
export const BBR_LOSS_THRESH = 0.02;
export const BBR_BETA = 0.7;
export const BBR_HEADROOM = 0.15;
export const BBR_PROBE_RTT_INTERVAL_MS = 5000;
export const BBR_MIN_RTT_FILTER_MS = 10_000;
export const BBR_PROBE_RTT_DURATION_MS = 200;
const MIN_PIPE_PACKETS = 4;
const PACING_MARGIN = 0.99;
const FULL_BW_ROUNDS = 3;
const FULL_BW_GROWTH = 1.25;
const STARTUP_FULL_LOSS_COUNT = 6;
/** Separate loss events a probing round needs before its loss rate counts (Chromium BBR2 probe_bw_full_loss_count). */
const PROBE_FULL_LOSS_COUNT = 2;
/** How many standard deviations (of a round's lost-packet count at the threshold rate) a probe's losses must clear. */
const LOSS_COUNT_MARGIN = 1.5;
/** The path's random loss is measured over about this many packets of cruising (older ones fade out). */
const RANDOM_LOSS_PACKETS = 1000;
/** ... and is taken as zero until this many were seen (one lost packet in a short round is no rate). */
const RANDOM_LOSS_MIN_PACKETS = 100;
/** Loss beyond this rate is not excused as random, however steady it is. */
const RANDOM_LOSS_CAP = 0.05;
const EXTRA_ACKED_ROUNDS = 10;

export type BbrState = 'startup' | 'drain' | 'probe_bw_down' | 'probe_bw_cruise' | 'probe_bw_refill' | 'probe_bw_up' | 'probe_rtt';

export class Bbr implements CongestionController {
  readonly algorithm = 'bbr';
  mss: number;
  cwnd: number;
  bytesInFlight = 0;
  congestionEvents = 0;
  appLimited = true;
  state: BbrState = 'startup';
  pacingGain = BBR_STARTUP_PACING_GAIN;
  cwndGain = BBR_STARTUP_CWND_GAIN;
  /** bytes per ms */
  pacingRate: number;
  /** max bandwidth over the current and the previous PROBE_BW cycle (bytes/ms) */
  private bwSlots = [0, 0];
  minRtt = Infinity;
  private minRttStamp = 0;
  private probeRttMinDelay = Infinity;
  private probeRttMinStamp = 0;
  private probeRttDoneStamp = 0;
  private probeRttRoundDone = false;
  /** the 5 s min-RTT window ran out before this ack's sample refreshed it: time for PROBE_RTT */
  private probeRttExpired = false;
  private priorCwnd = 0;
  /** ceiling on inflight learned from loss while probing; Infinity until a probe lost too much */
  inflightHi = Infinity;
  // round trips, counted by delivered bytes (a round ends when a packet sent after it began is acked)
  roundCount = 0;
  private roundStart = false;
  private nextRoundDelivered = 0;
  private delivered = 0;
  // Startup's full-pipe detection
  filledPipe = false;
  private fullBw = 0;
  private fullBwCount = 0;
  private lossInRound = 0;
  private lossEventsInRound = 0;
  private deliveredInRound = 0;
  /** loss rate while cruising (no probe running): the path's random loss, which a probe is not blamed for */
  randomLoss = 0;
  private cruiseLost = 0;
  private cruiseBytes = 0;
  // PROBE_BW cycle
  private cycleStamp = 0;
  private bwProbeWait = 0;
  private roundsSinceProbe = 0;
  private probeUpCount = Infinity;
  private probeUpAcks = 0;
  private probeUpRounds = 0;
  private bwProbeSamples = false;
  // ack aggregation (extra_acked): what arrives beyond bw x elapsed, max over 10 rounds in two buckets
  private extraStart = 0;
  private extraDelivered = 0;
  private extraSlots = [0, 0];
  private recoveryStart = -Infinity;
  private readonly random: () => number;

  constructor(mss: number, random: () => number = Math.random) {
    this.mss = mss;
    this.cwnd = INITIAL_PACKETS * mss;
    this.pacingRate = (BBR_STARTUP_PACING_GAIN * this.cwnd) / 1; // no RTT yet: assume 1 ms (draft §5.6.2)
    this.random = random;
  }

  get ssthresh(): number {
    return this.filledPipe ? this.cwnd : Infinity;
  }

  get minWindow(): number {
    return MIN_PIPE_PACKETS * this.mss;
  }

  get maxBw(): number {
    return Math.max(this.bwSlots[0]!, this.bwSlots[1]!);
  }

  get extraAcked(): number {
    return Math.max(this.extraSlots[0]!, this.extraSlots[1]!);
  }

  setMss(mss: number): void {
    this.cwnd = Math.max(this.minWindow, Math.round((this.cwnd / this.mss) * mss));
    this.mss = mss;
  }

  inSlowStart(): boolean {
    return this.state === 'startup';
  }

  available(): number {
    return this.cwnd - this.bytesInFlight;
  }

  onSent(bytes: number): void {
    this.bytesInFlight += bytes;
  }

  onAcked(bytes: number): void {
    this.bytesInFlight = Math.max(0, this.bytesInFlight - bytes);
  }

  onRemoved(bytes: number): void {
    this.bytesInFlight = Math.max(0, this.bytesInFlight - bytes);
  }

  onCongestionEvent(timeSent: number, now: number): void {
    // the model reacts to loss rates in onRateSample; this only counts recovery periods for the stats
    if (timeSent <= this.recoveryStart) return;
    this.recoveryStart = now;
    this.congestionEvents++;
  }

  onPersistentCongestion(now: number): void {
    // RFC 9002 §7.6 / draft §5.6.4.4: everything in flight was lost; restart from a minimal window, the model regrows it
    this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
    this.cwnd = this.minWindow;
    this.recoveryStart = now;
    this.congestionEvents++;
  }

  undoLastReduction(): void {} // nothing was reduced

  /** Bandwidth-delay product at gain (bytes); the initial window until there is an RTT sample. */
  bdp(gain: number, bw = this.maxBw): number {
    if (this.minRtt === Infinity || bw === 0) return INITIAL_PACKETS * this.mss;
    return gain * bw * this.minRtt;
  }

  /** One ACK frame's worth of delivery: the whole model update (draft §5.2 BBRUpdateOnACK). */
  onRateSample(rs: RateSample, now: number): void {
    this.delivered += rs.newlyAcked;
    this.updateRound(rs);
    this.updateLossCounters(rs);
    if (rs.rate > 0 && (rs.rate >= this.maxBw || !rs.isAppLimited)) {
      if (rs.rate > this.bwSlots[0]!) this.bwSlots[0] = rs.rate;
    }
    if (this.filledPipe) this.updateAckAggregation(rs, now);
    this.checkStartupDone(rs);
    this.checkDrain(now);
    this.updateProbeBw(rs, now);
    this.updateMinRtt(rs, now);
    this.checkProbeRtt(now);
    if (this.roundStart) {
      if (this.state === 'probe_bw_cruise') this.updateRandomLoss();
      this.lossInRound = 0;
      this.lossEventsInRound = 0;
      this.deliveredInRound = 0;
    }
    this.setPacingRate();
    this.setCwnd(rs);
  }

  private updateRound(rs: RateSample): void {
    this.roundStart = false;
    if (rs.newlyAcked > 0 && rs.priorDelivered >= this.nextRoundDelivered) {
      this.nextRoundDelivered = this.delivered;
      this.roundCount++;
      this.roundsSinceProbe++;
      this.roundStart = true;
    }
  }

  private updateLossCounters(rs: RateSample): void {
    this.deliveredInRound += rs.newlyAcked;
    if (rs.newlyLost > 0) {
      this.lossInRound += rs.newlyLost;
      this.lossEventsInRound++;
    }
  }

  /**
   * The probe's round lost more than 2% (beyond the path's random loss) of what was in flight when the sampled
   * packet left, in at least two separate events (draft §5.3.3.6 IsInflightTooHigh, counted per round as
   * Chromium's BBR2 does: one sample's losses since its packet left are a handful of packets on a short path).
   */
  private inflightTooHigh(rs: RateSample): boolean {
    if (rs.txInFlight <= 0 || this.lossEventsInRound < PROBE_FULL_LOSS_COUNT) return false;
    // in packets: a round of n packets losing at the threshold rate p loses n p +- sqrt(n p) of them; a short
    // round's count must clear that spread too before it says the true rate is above the threshold
    const expected = (rs.txInFlight / this.mss) * (BBR_LOSS_THRESH + this.randomLoss);
    return this.lossInRound / this.mss > expected + LOSS_COUNT_MARGIN * Math.sqrt(expected);
  }

  /** A cruising round ended: add its losses to the random-loss estimate (byte-weighted, older rounds fading). */
  private updateRandomLoss(): void {
    const total = this.deliveredInRound + this.lossInRound;
    if (total <= 0) return;
    const keep = Math.exp(-total / (RANDOM_LOSS_PACKETS * this.mss));
    this.cruiseLost = this.cruiseLost * keep + this.lossInRound;
    this.cruiseBytes = this.cruiseBytes * keep + total;
    this.randomLoss = this.cruiseBytes < RANDOM_LOSS_MIN_PACKETS * this.mss ? 0 : Math.min(this.cruiseLost / this.cruiseBytes, RANDOM_LOSS_CAP);
  }

  private checkStartupDone(rs: RateSample): void {
    if (this.state !== 'startup') return;
    if (this.roundStart && !rs.isAppLimited) {
      if (this.maxBw >= this.fullBw * FULL_BW_GROWTH) {
        this.fullBw = this.maxBw;
        this.fullBwCount = 0;
      } else if (++this.fullBwCount >= FULL_BW_ROUNDS) {
        this.filledPipe = true;
      }
    }
    // v3: a Startup round with many separate losses above the threshold means the buffer is full (or policed).
    // Unlike v3 we also ask that the bandwidth stopped growing in the last round: random loss comes with a
    // still-doubling delivery rate and must not end Startup at a fraction of the path (v3 would, at 5% loss)
    if (
      !this.filledPipe &&
      this.roundStart &&
      this.fullBwCount >= 1 &&
      this.lossEventsInRound >= STARTUP_FULL_LOSS_COUNT &&
      this.lossInRound > (this.deliveredInRound + this.lossInRound) * BBR_LOSS_THRESH
    ) {
      this.filledPipe = true;
      this.inflightHi = Math.max(this.modelFloor(), rs.txInFlight);
    }
    if (this.filledPipe) {
      this.state = 'drain';
      this.pacingGain = BBR_DRAIN_PACING_GAIN;
      this.cwndGain = BBR_STARTUP_CWND_GAIN;
    }
  }

  private checkDrain(now: number): void {
    if (this.state === 'drain' && this.bytesInFlight <= this.bdp(1)) this.startProbeBwDown(now);
  }

  private startProbeBwDown(now: number): void {
    this.bwProbeSamples = false;
    this.probeUpCount = Infinity;
    // next probe in 2-3 s (randomised so flows sharing a bottleneck do not probe in lockstep)
    this.roundsSinceProbe = Math.floor(this.random() * 2);
    this.bwProbeWait = 2000 + this.random() * 1000;
    this.cycleStamp = now;
    this.state = 'probe_bw_down';
    this.pacingGain = 0.9;
    this.cwndGain = 2;
    // one cycle ends: the bw filter forgets the cycle before last
    this.bwSlots[1] = this.bwSlots[0]!;
    this.bwSlots[0] = 0;
  }

  private updateProbeBw(rs: RateSample, now: number): void {
    if (this.cycleStamp === 0) this.cycleStamp = now;
    if (!this.state.startsWith('probe_bw')) return;
    // the loss bound: only while probing do losses set the ceiling (cruising through random loss keeps the model)
    if (this.bwProbeSamples && this.inflightTooHigh(rs)) {
      this.bwProbeSamples = false;
      if (!rs.isAppLimited) this.inflightHi = Math.max(rs.txInFlight, this.modelFloor());
      if (this.state === 'probe_bw_up') this.startProbeBwDown(now);
      return;
    }
    switch (this.state) {
      case 'probe_bw_down':
        if (this.timeToProbe(now)) return;
        if (this.bytesInFlight <= Math.min(this.inflightWithHeadroom(), this.bdp(1))) {
          this.state = 'probe_bw_cruise';
          this.pacingGain = 1;
        }
        return;
      case 'probe_bw_cruise':
        this.timeToProbe(now);
        return;
      case 'probe_bw_refill':
        if (this.roundStart) {
          this.bwProbeSamples = true;
          this.state = 'probe_bw_up';
          this.pacingGain = 1.25;
          this.cwndGain = 2.25;
          this.cycleStamp = now;
          this.raiseInflightHiSlope();
        }
        return;
      case 'probe_bw_up':
        if (this.roundStart) this.raiseInflightHiSlope();
        this.probeInflightHiUpward(rs);
        // while inflight_hi is what holds the window back the probe goes on raising it (1, 2, 4... packets a
        // round, v3's IsTimeToGoDown) until a round loses too much: one bound set by an unlucky round of random
        // loss is undone in a few rounds instead of staying for good (each probe ended after one round)
        if (this.inflightHi !== Infinity && this.cwnd >= this.inflightHi && !rs.isAppLimited) return;
        // a full round at 1.25 x bw with the queue it builds: the probe has shown what there is
        if (now - this.cycleStamp > this.minRtt && this.bytesInFlight > this.bdp(1.25)) this.startProbeBwDown(now);
        return;
    }
  }

  /** Time for the next bandwidth probe: wall-clock wait, or as many rounds as Reno would need (coexistence). */
  private timeToProbe(now: number): boolean {
    const renoRounds = Math.min(this.bdp(1) / this.mss, 63);
    if (now - this.cycleStamp > this.bwProbeWait || this.roundsSinceProbe >= renoRounds) {
      this.state = 'probe_bw_refill';
      this.pacingGain = 1;
      this.cwndGain = 2;
      this.probeUpRounds = 0;
      this.probeUpAcks = 0;
      this.nextRoundDelivered = this.delivered; // refill lasts one round from now
      return true;
    }
    return false;
  }

  private raiseInflightHiSlope(): void {
    // inflight_hi grows by 1, 2, 4... packets per round: one packet per probeUpCount bytes acked
    const growth = 2 ** this.probeUpRounds;
    this.probeUpRounds = Math.min(this.probeUpRounds + 1, 30);
    this.probeUpCount = Math.max(this.cwnd / growth, this.mss);
  }

  private probeInflightHiUpward(rs: RateSample): void {
    if (this.inflightHi === Infinity || this.appLimited || this.cwnd < this.inflightHi) return;
    this.probeUpAcks += rs.newlyAcked;
    if (this.probeUpAcks >= this.probeUpCount) {
      const delta = Math.floor(this.probeUpAcks / this.probeUpCount);
      this.probeUpAcks -= delta * this.probeUpCount;
      this.inflightHi += delta * this.mss;
    }
  }

  private inflightWithHeadroom(): number {
    if (this.inflightHi === Infinity) return Infinity;
    return Math.max(this.inflightHi * (1 - BBR_HEADROOM), this.modelFloor());
  }

  /**
   * The least inflight_hi may say: one BDP plus the ack aggregation the path showed (extra_acked). v3 lets a
   * lossy probe set it to 0.7 x BDP; where the BDP is tiny next to the ack clock (a userspace stack on a fast
   * link: min RTT 0.2 ms, acks every 10 packets) or loss is random, that starved the pipe (cwnd of 2 packets
   * at 10% loss). The bound still stops probes above what the model has measured from building queues.
   */
  private modelFloor(): number {
    return Math.max(this.bdp(1) + (this.filledPipe ? this.extraAcked : 0), this.minWindow);
  }

  private updateAckAggregation(rs: RateSample, now: number): void {
    if (this.roundStart && this.roundCount % (EXTRA_ACKED_ROUNDS / 2) === 0) {
      this.extraSlots[1] = this.extraSlots[0]!;
      this.extraSlots[0] = 0;
    }
    let expected = this.maxBw * (now - this.extraStart);
    if (this.extraDelivered <= expected) {
      this.extraDelivered = 0;
      this.extraStart = now;
      expected = 0;
    }
    this.extraDelivered += rs.newlyAcked;
    const extra = Math.min(this.extraDelivered - expected, this.cwnd);
    if (extra > this.extraSlots[0]!) this.extraSlots[0] = extra;
  }

  private updateMinRtt(rs: RateSample, now: number): void {
    const expired = now > this.probeRttMinStamp + BBR_PROBE_RTT_INTERVAL_MS;
    this.probeRttExpired = expired && this.probeRttMinDelay !== Infinity;
    if (rs.rtt >= 0 && (rs.rtt < this.probeRttMinDelay || expired)) {
      this.probeRttMinDelay = rs.rtt;
      this.probeRttMinStamp = now;
    }
    if (this.minRtt === Infinity && this.probeRttMinDelay !== Infinity) {
      // the first RTT sample replaces the 1 ms guess in the initial pacing rate (draft §5.6.2 uses SRTT when it has one)
      this.pacingRate = (BBR_STARTUP_PACING_GAIN * this.cwnd) / Math.max(this.probeRttMinDelay, 1);
    }
    if (this.probeRttMinDelay < this.minRtt || now > this.minRttStamp + BBR_MIN_RTT_FILTER_MS) {
      this.minRtt = this.probeRttMinDelay;
      this.minRttStamp = this.probeRttMinStamp;
    }
  }

  private checkProbeRtt(now: number): void {
    if (this.state !== 'probe_rtt' && this.probeRttExpired) {
      this.state = 'probe_rtt';
      this.pacingGain = 1;
      this.cwndGain = 0.5;
      this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
      this.probeRttDoneStamp = 0;
    }
    if (this.state !== 'probe_rtt') return;
    if (this.probeRttDoneStamp === 0 && this.bytesInFlight <= this.probeRttCwnd()) {
      this.probeRttDoneStamp = now + BBR_PROBE_RTT_DURATION_MS;
      this.probeRttRoundDone = false;
      this.nextRoundDelivered = this.delivered;
    } else if (this.probeRttDoneStamp !== 0) {
      if (this.roundStart) this.probeRttRoundDone = true;
      if (this.probeRttRoundDone && now > this.probeRttDoneStamp) {
        this.probeRttMinStamp = now;
        this.cwnd = Math.max(this.cwnd, this.priorCwnd);
        this.priorCwnd = 0;
        if (this.filledPipe) {
          this.startProbeBwDown(now);
          this.state = 'probe_bw_cruise';
          this.pacingGain = 1;
        } else {
          this.state = 'startup';
          this.pacingGain = BBR_STARTUP_PACING_GAIN;
          this.cwndGain = BBR_STARTUP_CWND_GAIN;
        }
      }
    }
  }

  private probeRttCwnd(): number {
    return Math.max(this.bdp(0.5), this.minWindow);
  }

  private setPacingRate(): void {
    const bw = this.maxBw;
    if (bw === 0) return;
    const rate = this.pacingGain * bw * PACING_MARGIN;
    // Startup never slows below the initial rate (its samples lag while the rate doubles)
    if (this.filledPipe || rate > this.pacingRate) this.pacingRate = rate;
  }

  private setCwnd(rs: RateSample): void {
    const quantum = Math.min(Math.max(this.pacingRate * 1, 2 * this.mss), 64 * 1024);
    // ack aggregation (extra_acked) is only measured once the bw estimate is settled: in Startup the ack rate outruns the lagging max-bw filter
    let target = this.bdp(this.cwndGain) + (this.filledPipe ? this.extraAcked : 0) + 3 * quantum;
    if (this.state === 'probe_bw_up') target += 2 * this.mss;
    if (this.filledPipe) this.cwnd = Math.min(this.cwnd + rs.newlyAcked, target);
    else if (this.cwnd < target || this.delivered < INITIAL_PACKETS * this.mss) this.cwnd += rs.newlyAcked;
    this.cwnd = Math.max(this.cwnd, this.minWindow);
    // model bounds: inflight_hi while probing, with headroom when cruising; half a BDP in PROBE_RTT
    if (this.state.startsWith('probe_bw') && this.state !== 'probe_bw_cruise') this.cwnd = Math.min(this.cwnd, Math.max(this.inflightHi, this.modelFloor()));
    else if (this.state === 'probe_bw_cruise') this.cwnd = Math.min(this.cwnd, this.inflightWithHeadroom());
    if (this.state === 'probe_rtt') this.cwnd = Math.min(this.cwnd, this.probeRttCwnd());
    if (this.cwnd > MAX_CWND) this.cwnd = MAX_CWND;
  }
}
