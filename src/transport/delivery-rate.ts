// Delivery-rate sampling after draft-cheng-iccrg-delivery-rate-estimation (as
// Linux tcp_rate.c and the QUIC stacks quiche / msquic do for BBR): each packet
// remembers, when sent, how much had been delivered by then and when; the ack
// of a packet then yields a rate sample = data delivered between the two
// moments / the longer of the send and the ack intervals (the longer one, so
// ack compression or a send burst never inflates the estimate). A sample taken
// while the sender ran out of data is flagged app-limited: it may understate
// the path, so a max filter only takes it if it is a new maximum.
// Bytes and ms throughout.

/** Per-packet state written at send time (a subset of SentPacket). */
export interface RateStamp {
  time: number;
  size: number;
  /** connection's delivered bytes when sent */
  delivered: number;
  deliveredTime: number;
  firstSentTime: number;
  isAppLimited: boolean;
  /** bytes in flight right after it was sent (BBR's loss bound compares losses against it) */
  txInFlight: number;
  /** connection's lost bytes when sent */
  lostAtSend: number;
}

/** One sample per ACK frame that newly acknowledged something. */
export class RateSample {
  /** bytes per ms; 0 when the sample is not usable */
  rate = 0;
  /** bytes delivered over the interval */
  delivered = 0;
  interval = 0;
  isAppLimited = false;
  /** RTT of the newest packet acked by this ACK (ms), -1 if none */
  rtt = -1;
  /** bytes newly acked by this ACK */
  newlyAcked = 0;
  /** bytes declared lost since the last sample was consumed (a timer can declare losses between ACKs) */
  newlyLost = 0;
  /** of the packet the sample is taken from: bytes in flight when it was sent, and bytes lost since */
  txInFlight = 0;
  lost = 0;
  /** delivered of the packet the sample is taken from (round counting) */
  priorDelivered = 0;
  priorTime = 0;
  sendElapsed = 0;
  ackElapsed = 0;
  /** send time of the newest packet acked (ms) */
  newestSent = -Infinity;

  reset(): void {
    this.rate = 0;
    this.delivered = 0;
    this.interval = 0;
    this.isAppLimited = false;
    this.rtt = -1;
    this.newlyAcked = 0;
    this.txInFlight = 0;
    this.lost = 0;
    this.priorDelivered = -1;
    this.priorTime = 0;
    this.sendElapsed = 0;
    this.ackElapsed = 0;
    this.newestSent = -Infinity;
  }
}

export class DeliveryRate {
  /** total bytes acknowledged */
  delivered = 0;
  /** when `delivered` last grew */
  deliveredTime = 0;
  /** send time of the newest packet acked, the start of the next send interval */
  firstSentTime = 0;
  /** `delivered` value at which the current app-limited period ends; 0: not app-limited */
  appLimitedUntil = 0;
  /** total bytes declared lost */
  lost = 0;
  readonly sample = new RateSample();

  /** Stamps a packet about to be sent; bytesInFlight is before it. */
  onSent(p: RateStamp, bytesInFlight: number, now: number): void {
    if (bytesInFlight === 0) {
      // nothing in flight: the intervals restart here, idle time must not dilute the next sample
      this.firstSentTime = now;
      this.deliveredTime = now;
    }
    p.delivered = this.delivered;
    p.deliveredTime = this.deliveredTime;
    p.firstSentTime = this.firstSentTime;
    p.isAppLimited = this.appLimitedUntil !== 0;
    p.txInFlight = bytesInFlight + p.size;
    p.lostAtSend = this.lost;
  }

  /** The sender has nothing to send and is not window- or pacing-limited. */
  onAppLimited(bytesInFlight: number): void {
    this.appLimitedUntil = Math.max(this.delivered + bytesInFlight, 1);
  }

  /** Starts the sample of one ACK frame. */
  begin(): void {
    this.sample.reset();
  }

  onAcked(p: RateStamp, now: number): void {
    const rs = this.sample;
    this.delivered += p.size;
    this.deliveredTime = now;
    rs.newlyAcked += p.size;
    // the most recently sent packet of this ack carries the freshest state (delivered grows with send time)
    if (p.time >= rs.newestSent) {
      rs.newestSent = p.time;
      rs.rtt = now - p.time;
      rs.priorDelivered = p.delivered;
      rs.priorTime = p.deliveredTime;
      rs.isAppLimited = p.isAppLimited;
      rs.sendElapsed = p.time - p.firstSentTime;
      rs.ackElapsed = now - p.deliveredTime;
      rs.txInFlight = p.txInFlight;
      rs.lost = this.lost - p.lostAtSend;
      this.firstSentTime = p.time;
    }
  }

  onLost(bytes: number): void {
    this.lost += bytes;
    this.sample.newlyLost += bytes;
    this.sample.lost += bytes;
  }

  /** Finishes the sample; minRtt (ms, Infinity if unknown) rejects intervals too short to be real. */
  end(minRtt: number): RateSample {
    const rs = this.sample;
    if (this.appLimitedUntil !== 0 && this.delivered > this.appLimitedUntil) this.appLimitedUntil = 0;
    if (rs.priorDelivered < 0) return rs;
    rs.delivered = this.delivered - rs.priorDelivered;
    rs.interval = Math.max(rs.sendElapsed, rs.ackElapsed);
    // an interval shorter than the min RTT comes from a stretched ack or a bad clock: no sample (draft §3.3)
    if (rs.interval <= 0 || (minRtt !== Infinity && rs.interval < minRtt)) return rs;
    rs.rate = rs.delivered / rs.interval;
    return rs;
  }
}
