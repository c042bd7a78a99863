// CUBIC congestion control after RFC 9438. After a congestion event the window
// follows W_cubic(t) = C*(t-K)^3 + W_max (segments, t in seconds since the
// congestion avoidance stage began): concave up to the window where the last
// loss happened, flat around it, convex beyond. Next to it runs W_est, the
// window an AIMD sender with the same beta would have (the "Reno-friendly"
// region), so on short RTTs or small windows CUBIC is never slower than Reno.
// A reduction multiplies the window by beta = 0.7 (Reno: 0.5), so one random
// loss costs less. Slow start, recovery periods and the app-limited rule are
// shared with NewReno (congestion.ts).
import { WindowController } from './congestion.ts';

/** RFC 9438 §4.1.1. */
export const CUBIC_C = 0.4;
export const CUBIC_BETA = 0.7;
/** Reno-friendly additive increase: same average throughput as Reno with beta 0.7 (RFC 9438 §4.3). */
export const CUBIC_ALPHA = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);

export class Cubic extends WindowController {
  readonly algorithm = 'cubic';
  /** Window (bytes) where the last congestion event happened, lowered by fast convergence. */
  wMax = 0;
  /** Window just before the last reduction (bytes). */
  cwndPrior = 0;
  /** Seconds W_cubic needs to climb back to wMax. */
  k = 0;
  /** When the current congestion avoidance stage began (ms); -1: starts with the next growing ack. */
  epochStart = -1;
  /** Window at epochStart (bytes). */
  cwndEpoch = 0;
  /** Reno-friendly estimate (bytes) and its additive factor. */
  wEst = 0;
  alpha = CUBIC_ALPHA;
  /** Since when acks arrive app-limited (ms, -1: not): that time is cut out of t (RFC 9438 §4.2, §5.8). */
  private limitedSince = -1;
  /** The window collapsed (persistent congestion): the next stage starts with K = 0 at its own window (§4.8). */
  private collapsedWindow = false;

  /** W_cubic(t) in bytes for t seconds into the current stage. */
  wCubic(t: number): number {
    const d = t - this.k;
    return (CUBIC_C * d * d * d + this.wMax / this.mss) * this.mss;
  }

  protected grow(bytes: number, now: number, srtt: number): void {
    if (this.epochStart < 0) this.startEpoch(now);
    else if (this.limitedSince >= 0) this.epochStart += now - this.limitedSince;
    this.limitedSince = -1;
    const t = (now - this.epochStart) / 1000;
    const cwnd = this.cwnd;
    // Reno-friendly estimate: alpha segments per window of acked data
    this.wEst += (this.alpha * this.mss * bytes) / cwnd;
    if (this.alpha !== 1 && this.wEst >= this.cwndPrior) this.alpha = 1;
    if (this.wCubic(t) < this.wEst) {
      if (this.wEst > cwnd) this.cwnd = this.wEst;
      return;
    }
    // concave / convex: close (target - cwnd) / cwnd of the gap per segment acked, target within [cwnd, 1.5 cwnd]
    const target = Math.min(Math.max(this.wCubic(t + srtt / 1000), cwnd), 1.5 * cwnd);
    this.cwnd = cwnd + ((target - cwnd) * bytes) / cwnd;
  }

  private startEpoch(now: number): void {
    this.epochStart = now;
    this.cwndEpoch = this.cwnd;
    this.wEst = this.cwnd;
    if (this.collapsedWindow || this.wMax <= this.cwnd) {
      // no loss to climb back to (first stage, after a collapse, or slow start went past it): plateau here
      this.wMax = this.cwnd;
      this.k = 0;
    } else {
      this.k = Math.cbrt((this.wMax - this.cwndEpoch) / this.mss / CUBIC_C);
    }
    this.collapsedWindow = false;
  }

  protected reduce(): void {
    const cwnd = this.cwnd;
    this.cwndPrior = cwnd;
    // fast convergence (§4.7): losing below the previous maximum means a new flow wants room, give it up sooner
    this.wMax = cwnd < this.wMax ? (cwnd * (1 + CUBIC_BETA)) / 2 : cwnd;
    this.ssthresh = Math.max(cwnd * CUBIC_BETA, this.minWindow);
    this.cwnd = this.ssthresh;
    this.alpha = CUBIC_ALPHA;
    this.epochStart = -1;
    this.limitedSince = -1;
  }

  protected override saveState(): unknown {
    return {
      wMax: this.wMax,
      cwndPrior: this.cwndPrior,
      k: this.k,
      epochStart: this.epochStart,
      cwndEpoch: this.cwndEpoch,
      wEst: this.wEst,
      alpha: this.alpha,
    };
  }

  protected override restoreState(state: unknown): void {
    // RFC 9438 §4.9: back to the curve the spurious event interrupted
    Object.assign(this, state as Pick<Cubic, 'wMax' | 'cwndPrior' | 'k' | 'epochStart' | 'cwndEpoch' | 'wEst' | 'alpha'>);
    this.limitedSince = -1;
  }

  protected override collapsed(): void {
    this.epochStart = -1;
    this.limitedSince = -1;
    this.collapsedWindow = true;
  }

  protected override onAppLimitedAck(now: number): void {
    if (this.epochStart >= 0 && this.limitedSince < 0 && this.cwnd >= this.ssthresh) this.limitedSince = now;
  }
}
