// Token-bucket pacer (RFC 9002 §7.7): spreads a window's worth of packets over
// the RTT instead of bursting it, so a socket buffer or a shallow router queue
// is not overrun. Rate = N * cwnd / srtt (N = 2 in slow start, 1.25 after), or
// the controller's own rate when it has one (BBR: pacing_gain x bottleneck bw)
// and the RTT is at least 1 ms;
// the bucket holds a couple of milliseconds of sending, at least 10 packets, so
// timer granularity (~1 ms in Node) never caps the rate.
const BURST_MS = 2;
const MIN_BURST_PACKETS = 10;
/**
 * A sender that waited on the pacer and was woken late (a busy or shared CPU: Node's timers and
 * immediates run when the process gets the core) keeps the sending time it lost, up to this much,
 * instead of the 2 ms bucket: otherwise every late wake-up is throughput thrown away, and on a
 * loaded box the pacer, not the path, sets the rate. msquic does the same (its send allowance is
 * the time since the last send times the rate, capped by the window); the congestion window still
 * caps what is in flight. An idle (app-limited) sender gets no such credit: no burst after idle.
 */
export const LATE_CREDIT_MS = 10;
/** Below this smoothed RTT (ms) a controller's model rate is not used (the cwnd rule paces). */
export const MIN_MODEL_PACING_RTT_MS = 1;

export class Pacer {
  private tokens: number;
  private capacity: number;
  /** bytes per ms */
  private rate = Infinity;
  private last = 0;
  /** When the sender, held back by pacing, wanted to send next (Infinity: it was not waiting on us). */
  private wantedAt = Infinity;

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
    const elapsed = now - this.last;
    this.last = now;
    const late = now - this.wantedAt;
    this.wantedAt = Infinity;
    const cap = late > 0 ? Math.max(this.capacity, this.rate * Math.min(elapsed, LATE_CREDIT_MS)) : this.capacity;
    if (elapsed > 0) this.tokens = Math.min(cap, this.tokens + elapsed * this.rate);
  }

  canSend(bytes: number): boolean {
    return this.tokens >= bytes;
  }

  consume(bytes: number): void {
    this.tokens -= bytes;
  }

  /** When enough tokens for `bytes` will have accrued. */
  nextSendTime(bytes: number): number {
    this.wantedAt = this.last + Math.max(0, bytes - this.tokens) / this.rate;
    return this.wantedAt;
  }
}
