// A connection's counters and the stats() snapshot built from them. The
// counters are plain fields bumped on the hot path (send and receive share one
// object, which survives reset()); everything else in the snapshot is read from
// loss recovery and congestion control at the time of the call.
import type { CongestionAlgorithm } from './congestion.ts';
import type { Recovery } from './recovery.ts';

export interface ConnectionStats {
  congestionControl: CongestionAlgorithm;
  srttMs: number;
  rttVarMs: number;
  minRttMs: number;
  cwnd: number;
  ssthresh: number;
  bytesInFlight: number;
  packetsSent: number;
  packetsReceived: number;
  packetsLost: number;
  /** Packets declared lost and acked later (reordering); when all behind a window reduction were, it was undone. */
  spuriousLosses: number;
  retransmittedBytes: number;
  bytesSent: number;
  bytesReceived: number;
  streamsOpen: number;
  malformed: number;
  duplicates: number;
  congestionEvents: number;
  ptoCount: number;
  datagramsSent: number;
  datagramsReceived: number;
  sendErrors: number;
  maxPacketSize: number;
}

export class ConnectionCounters {
  packetsSent = 0;
  packetsReceived = 0;
  retransmittedBytes = 0;
  bytesSent = 0;
  bytesReceived = 0;
  /** Packets or frames dropped for breaking the protocol (bad encoding, flow control, final size, bogus ACK). */
  malformed = 0;
  duplicates = 0;
  datagramsSent = 0;
  datagramsReceived = 0;
  /** The session layer threw from sendPacket (the packet then counts as lost when its ACK never comes). */
  sendErrors = 0;

  /** Counters plus what recovery and congestion control know now. */
  snapshot(r: Recovery, congestionControl: CongestionAlgorithm, streamsOpen: number, maxPacketSize: number): ConnectionStats {
    return {
      congestionControl,
      srttMs: r.rtt.smoothed,
      rttVarMs: r.rtt.variance,
      minRttMs: r.rtt.min === Infinity ? 0 : r.rtt.min,
      cwnd: r.cc.cwnd,
      ssthresh: r.cc.ssthresh,
      bytesInFlight: r.cc.bytesInFlight,
      packetsSent: this.packetsSent,
      packetsReceived: this.packetsReceived,
      packetsLost: r.packetsLost,
      spuriousLosses: r.spuriousLosses,
      retransmittedBytes: this.retransmittedBytes,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      streamsOpen,
      malformed: this.malformed,
      duplicates: this.duplicates,
      congestionEvents: r.cc.congestionEvents,
      ptoCount: r.ptoCount,
      datagramsSent: this.datagramsSent,
      datagramsReceived: this.datagramsReceived,
      sendErrors: this.sendErrors,
      maxPacketSize,
    };
  }
}
