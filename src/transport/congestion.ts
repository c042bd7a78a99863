// NewReno congestion control after RFC 9002 §7: slow start, congestion
// avoidance, one window reduction per recovery period (a loss of a packet sent
// before recovery started does not shrink the window again), persistent
// congestion collapsing to the minimum window. Window in bytes.

/** Initial window: RFC 9002 §7.2, 10 packets. */
const INITIAL_PACKETS = 10;
/** Upper bound so an app-limited sender on a fast path does not grow without end. */
const MAX_CWND = 64 * 1024 * 1024;
const LOSS_REDUCTION = 0.5;

export class NewReno {
  mss: number;
  cwnd: number;
  ssthresh = Infinity;
  bytesInFlight = 0;
  /** Send time that started the current recovery period (packets sent before it do not cut the window again). */
  recoveryStart = -Infinity;
  /** Set by the sender: the last send round stopped for lack of data, not window; then the window must not grow. */
  appLimited = true;
  congestionEvents = 0;

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

  /** An in-flight packet was acknowledged. */
  onAcked(bytes: number, timeSent: number): void {
    this.bytesInFlight -= bytes;
    if (timeSent <= this.recoveryStart || this.appLimited) return;
    if (this.cwnd < this.ssthresh) {
      this.cwnd += bytes;
    } else {
      this.cwnd += Math.max(1, Math.floor((this.mss * bytes) / this.cwnd));
    }
    if (this.cwnd > MAX_CWND) this.cwnd = MAX_CWND;
  }

  /** An in-flight packet left the network without an ack (lost or abandoned). */
  onRemoved(bytes: number): void {
    this.bytesInFlight -= bytes;
    if (this.bytesInFlight < 0) this.bytesInFlight = 0;
  }

  /** Loss detected; timeSent is the send time of the newest lost packet. */
  onCongestionEvent(timeSent: number, now: number): void {
    if (timeSent <= this.recoveryStart) return;
    this.recoveryStart = now;
    this.congestionEvents++;
    this.ssthresh = Math.max(Math.floor(this.cwnd * LOSS_REDUCTION), this.minWindow);
    this.cwnd = this.ssthresh;
  }

  onPersistentCongestion(now: number): void {
    this.cwnd = this.minWindow;
    this.recoveryStart = now;
    this.congestionEvents++;
  }
}
