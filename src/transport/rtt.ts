// RTT estimation after RFC 9002 §5: min RTT over the connection, smoothed RTT
// and variance as EWMAs of samples corrected by the peer's reported ack delay
// (never below min RTT). All in milliseconds.

/** Before any sample. RFC 9002 says 333 ms; a session handshake has already proven a path, so we start lower. */
export const INITIAL_RTT_MS = 100;
/** Timer granularity (RFC 9002 kGranularity). */
export const GRANULARITY_MS = 1;

export class RttEstimator {
  latest = 0;
  smoothed = INITIAL_RTT_MS;
  variance = INITIAL_RTT_MS / 2;
  min = Infinity;
  hasSample = false;

  /** sample: time from sending to receiving the ACK; ackDelay: what the peer said it held the ACK for. */
  update(sample: number, ackDelay: number, maxAckDelay: number): void {
    if (!(sample >= 0)) return;
    this.latest = sample;
    if (sample < this.min) this.min = sample;
    if (!this.hasSample) {
      this.hasSample = true;
      this.smoothed = sample;
      this.variance = sample / 2;
      return;
    }
    const delay = Math.min(ackDelay, maxAckDelay);
    const adjusted = sample - delay >= this.min ? sample - delay : sample;
    this.variance = 0.75 * this.variance + 0.25 * Math.abs(this.smoothed - adjusted);
    this.smoothed = 0.875 * this.smoothed + 0.125 * adjusted;
  }

  /** Probe timeout before backoff (RFC 9002 §6.2.1). */
  pto(maxAckDelay: number): number {
    return this.smoothed + Math.max(4 * this.variance, GRANULARITY_MS) + maxAckDelay;
  }

  /** How long after a later packet was acked an unacked one counts as lost (9/8 RTT). */
  lossDelay(): number {
    return Math.max((9 / 8) * Math.max(this.smoothed, this.latest), GRANULARITY_MS);
  }
}
