// Token-bucket pacer (RFC 9002 §7.7): spreads a window's worth of packets over
// the RTT instead of bursting it, so a socket buffer or a shallow router queue
// is not overrun. Rate = N * cwnd / srtt (N = 2 in slow start, 1.25 after), or
// the controller's own rate when it has one (BBR: pacing_gain x bottleneck bw)
// and the RTT is at least 1 ms;
// the bucket holds a couple of milliseconds of sending, at least 10 packets, so
// timer granularity (~1 ms in Node) never caps the rate. When the send loop
// was held back by pacing and comes back late (a busy event loop or a busy CPU
// delayed the timer), the time it missed is credited on top, up to a quarter
// of the RTT: otherwise every stall is throughput lost for good, and on a long
// path a model-paced controller (BBR, which keeps no standing queue to cover
// for it) falls behind a kernel stack. Linux TCP credits timer lateness the
// same way (tcp_update_skb_after_send: "take into account OS jitter").
const BURST_MS = 2;
const LATE_CREDIT_RTT_FRACTION = 0.25;
const MIN_BURST_PACKETS = 10;
/** Below this smoothed RTT (ms) a controller's model rate is not used (the cwnd rule paces). */
export const MIN_MODEL_PACING_RTT_MS = 1;

export class Pacer {
  private tokens: number;
  private capacity: number;
  /** bytes per ms */
  private rate = Infinity;
  private last = 0;
  /** When nextSendTime() said the next packet may go (Infinity: the send loop was not waiting on pacing). */
  private due = Infinity;

  constructor(mss: number) {
    this.capacity = MIN_BURST_PACKETS * mss;
    this.tokens = this.capacity;
  }

  /** Refreshes the rate and adds the tokens earned since the last call. */
  refill(now: number, cwnd: number, srtt: number, mss: number, slowStart: boolean, modelRate?: number): void {
    // below 1 ms of RTT the window alone paces well enough and timer granularity would make a model rate
    // the limit (msquic skips pacing below QUIC_MIN_PACING_RTT = 1 ms for the same reason)
    const useModel = modelRate !== undefined && srtt >= MIN_MODEL_PACING_RTT_MS;
    this.rate = useModel ? modelRate : ((slowStart ? 2 : 1.25) * cwnd) / Math.max(srtt, 0.001);
    this.capacity = Math.max(MIN_BURST_PACKETS * mss, this.rate * BURST_MS);
    const late = Math.min(Math.max(0, now - this.due), LATE_CREDIT_RTT_FRACTION * srtt);
    this.due = Infinity;
    const elapsed = now - this.last;
    this.last = now;
    if (elapsed > 0) this.tokens = Math.min(this.capacity + late * this.rate, this.tokens + elapsed * this.rate);
  }

  canSend(bytes: number): boolean {
    return this.tokens >= bytes;
  }

  consume(bytes: number): void {
    this.tokens -= bytes;
  }

  /** When enough tokens for `bytes` will have accrued. */
  nextSendTime(bytes: number): number {
    this.due = this.last + Math.max(0, bytes - this.tokens) / this.rate;
    return this.due;
  }
}
