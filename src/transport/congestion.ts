// Congestion control: the interface the loss-recovery code drives, the window
// bookkeeping every algorithm shares (bytes in flight, recovery periods, the
// app-limited rule), and NewReno after RFC 9002 §7: slow start, congestion
// avoidance, one window reduction per recovery period (a loss of a packet sent
// before recovery started does not shrink the window again), persistent
// congestion collapsing to the minimum window. CUBIC lives in cubic.ts, BBR
// (the default: model-based, does not read random loss as congestion) in bbr.ts.
// Windows in bytes, times in ms.

import type { RateSample } from './delivery-rate.ts';

export type CongestionAlgorithm = 'bbr' | 'cubic' | 'newreno';
export const CONGESTION_ALGORITHMS: readonly CongestionAlgorithm[] = ['bbr', 'cubic', 'newreno'];
export const DEFAULT_CONGESTION_ALGORITHM: CongestionAlgorithm = 'bbr';

/** Initial window: RFC 9002 §7.2, 10 packets. */
export const INITIAL_PACKETS = 10;
/** Upper bound so an app-limited sender on a fast path does not grow without end. */
export const MAX_CWND = 64 * 1024 * 1024;

export interface CongestionController {
  readonly algorithm: CongestionAlgorithm;
  readonly mss: number;
  readonly cwnd: number;
  readonly ssthresh: number;
  readonly bytesInFlight: number;
  readonly congestionEvents: number;
  /** Set by the sender after each send round: it stopped for lack of data, not window; then the window must not grow. */
  appLimited: boolean;
  readonly minWindow: number;
  setMss(mss: number): void;
  inSlowStart(): boolean;
  available(): number;
  onSent(bytes: number): void;
  /** An in-flight packet sent at timeSent was acknowledged at now; srtt is the smoothed RTT (ms). */
  onAcked(bytes: number, timeSent: number, now: number, srtt: number): void;
  /** An in-flight packet left the network without an ack (lost or abandoned). */
  onRemoved(bytes: number): void;
  /** Loss detected; timeSent is the send time of the newest lost packet. */
  onCongestionEvent(timeSent: number, now: number): void;
  onPersistentCongestion(now: number): void;
  /** Every packet whose loss caused the last reduction was acked after all (reordering): take the reduction back. */
  undoLastReduction(): void;
  /** Model-based controllers (BBR): one delivery-rate sample per ACK frame, after its losses were detected. */
  onRateSample?(rs: RateSample, now: number): void;
  /** Model-based controllers pace at their own rate (bytes/ms); window-based ones leave it to the pacer's cwnd/srtt rule. */
  readonly pacingRate?: number;
}

/** What NewReno and CUBIC share; subclasses decide growth (grow) and the reduction (reduce). */
export abstract class WindowController implements CongestionController {
  abstract readonly algorithm: CongestionAlgorithm;
  mss: number;
  cwnd: number;
  ssthresh = Infinity;
  bytesInFlight = 0;
  /** Send time that started the current recovery period (packets sent before it do not cut the window again). */
  recoveryStart = -Infinity;
  appLimited = true;
  congestionEvents = 0;
  /** State before the last reduction, for undoLastReduction (null: nothing to undo). */
  private prior: { cwnd: number; ssthresh: number; recoveryStart: number; extra: unknown } | null = null;

  constructor(mss: number) {
    this.mss = mss;
    this.cwnd = INITIAL_PACKETS * mss;
  }

  setMss(mss: number): void {
    // keep the window in packets roughly constant across a path MTU change
    this.cwnd = Math.max(2 * mss, Math.round((this.cwnd / this.mss) * mss));
    this.mss = mss;
  }

  get minWindow(): number {
    return 2 * this.mss;
  }

  inSlowStart(): boolean {
    return this.cwnd < this.ssthresh;
  }

  available(): number {
    return this.cwnd - this.bytesInFlight;
  }

  onSent(bytes: number): void {
    this.bytesInFlight += bytes;
  }

  onAcked(bytes: number, timeSent: number, now: number, srtt: number): void {
    this.bytesInFlight -= bytes;
    if (this.bytesInFlight < 0) this.bytesInFlight = 0;
    // no growth in recovery (RFC 9002 §7.3.2)
    if (timeSent <= this.recoveryStart) return;
    if (this.appLimited) {
      this.onAppLimitedAck(now);
      return;
    }
    if (this.cwnd < this.ssthresh) this.cwnd += bytes;
    else this.grow(bytes, now, srtt);
    if (this.cwnd > MAX_CWND) this.cwnd = MAX_CWND;
  }

  onRemoved(bytes: number): void {
    this.bytesInFlight -= bytes;
    if (this.bytesInFlight < 0) this.bytesInFlight = 0;
  }

  onCongestionEvent(timeSent: number, now: number): void {
    if (timeSent <= this.recoveryStart) return;
    this.prior = { cwnd: this.cwnd, ssthresh: this.ssthresh, recoveryStart: this.recoveryStart, extra: this.saveState() };
    this.recoveryStart = now;
    this.congestionEvents++;
    this.reduce(now);
  }

  undoLastReduction(): void {
    const p = this.prior;
    if (p === null) return;
    this.prior = null;
    this.cwnd = Math.max(this.cwnd, p.cwnd);
    this.ssthresh = p.ssthresh;
    this.recoveryStart = p.recoveryStart;
    this.restoreState(p.extra);
  }

  onPersistentCongestion(now: number): void {
    this.cwnd = this.minWindow;
    this.prior = null; // a collapse is never taken back
    this.recoveryStart = now;
    this.congestionEvents++;
    this.collapsed(now);
  }

  /** Congestion avoidance growth for `bytes` newly acked (cwnd >= ssthresh, not app-limited). */
  protected abstract grow(bytes: number, now: number, srtt: number): void;
  /** Sets ssthresh and cwnd after a congestion event (once per recovery period). */
  protected abstract reduce(now: number): void;
  /** The window collapsed to the minimum (persistent congestion). */
  protected collapsed(_now: number): void {}
  /** An ack arrived while app-limited (the window did not grow). */
  protected onAppLimitedAck(_now: number): void {}
  /** Algorithm state to restore if the reduction about to happen turns out spurious. */
  protected saveState(): unknown {
    return undefined;
  }
  protected restoreState(_state: unknown): void {}
}

const RENO_REDUCTION = 0.5;

export class NewReno extends WindowController {
  readonly algorithm = 'newreno';

  protected grow(bytes: number): void {
    this.cwnd += Math.max(1, Math.floor((this.mss * bytes) / this.cwnd));
  }

  protected reduce(): void {
    this.ssthresh = Math.max(Math.floor(this.cwnd * RENO_REDUCTION), this.minWindow);
    this.cwnd = this.ssthresh;
  }
}
