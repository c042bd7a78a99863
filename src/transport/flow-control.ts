// Connection-level flow control, both directions (per-stream credit lives on
// the Stream). Sending: the peer's MAX_DATA limits new stream bytes across all
// streams; a stream held back only by it waits in `blocked` until the limit
// rises. Receiving: we advertise `maxData` = bytes consumed + window, and the
// window doubles (up to maxWindow) when the peer used up the credit within two
// RTTs, i.e. when the window and not the peer limited throughput.
//
// Both ends start from INITIAL_CONN_CREDIT: there is no parameter exchange.

/** Connection-level credit each side may use before any MAX_DATA (a protocol constant). */
export const INITIAL_CONN_CREDIT = 1024 * 1024;

export class ConnectionFlowControl<S> {
  // ---- send: what the peer lets us send ----
  /** The peer's limit on new stream bytes (MAX_DATA). */
  private peerMaxData = INITIAL_CONN_CREDIT;
  /** New (not retransmitted) stream bytes sent. */
  private sent = 0;
  /** Streams with new bytes that only this connection's credit holds back. */
  private blocked: S[] = [];

  // ---- receive: what we let the peer send ----
  /** The limit we advertise (MAX_DATA). */
  maxData = INITIAL_CONN_CREDIT;
  /** A MAX_DATA frame should go out (raised, lost, or the peer said it is blocked). */
  pending = false;
  private window: number;
  private readonly maxWindow: number;
  /** Highest offsets received, summed over streams (what counts against maxData). */
  private received = 0;
  /** Bytes handed to (or discarded for) the application. */
  private consumed = 0;
  private lastRaiseAt = -Infinity;

  constructor(window: number, maxWindow: number) {
    this.window = window;
    this.maxWindow = maxWindow;
  }

  // ---------- send ----------

  /** New stream bytes we may still send (negative never happens, callers clamp anyway). */
  sendRoom(): number {
    return this.peerMaxData - this.sent;
  }

  onSent(freshBytes: number): void {
    this.sent += freshBytes;
  }

  /** The peer's MAX_DATA; true if it raised the limit (then wake the blocked streams: takeBlocked). */
  onMaxData(max: number): boolean {
    if (max <= this.peerMaxData) return false;
    this.peerMaxData = max;
    return true;
  }

  /** A stream waits for more connection credit (idempotent). */
  block(s: S): void {
    if (!this.blocked.includes(s)) this.blocked.push(s);
  }

  /** The waiting streams, handed over once (null if none). */
  takeBlocked(): S[] | null {
    if (this.blocked.length === 0) return null;
    const list = this.blocked;
    this.blocked = [];
    return list;
  }

  // ---------- receive ----------

  /** A frame raises the highest received offset of its stream by `grow`: false if that breaks our limit (drop it). */
  onReceived(grow: number): boolean {
    if (this.received + grow > this.maxData) return false;
    this.received += grow;
    return true;
  }

  /**
   * Bytes handed to the application. True when less than half the window is left: call raise() then
   * (split so the common case reads no clock).
   */
  onConsumed(bytes: number): boolean {
    this.consumed += bytes;
    return this.maxData - this.consumed < this.window / 2;
  }

  /** Advertises consumed + window; credit used within two RTTs means the window is the limit, so it doubles. */
  raise(now: number, srttMs: number): void {
    if (now - this.lastRaiseAt < 2 * srttMs && this.window < this.maxWindow) {
      this.window = Math.min(this.window * 2, this.maxWindow);
    }
    this.lastRaiseAt = now;
    this.maxData = this.consumed + this.window;
    this.pending = true;
  }
}
