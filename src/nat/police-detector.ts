// Is a direct UDP path policed (issue 19)? Some networks rate-limit UDP per
// address pair (a token bucket in packets per second): a stream then loses
// everything above the policer's rate, and congestion control cannot fix it,
// since the loss is not a full queue. Measured: 0.24 MB/s direct where kernel TCP
// on the same link moved 607 MB/s. The signature, per window of a busy sender:
//   - heavy loss (>= 10% of the packets sent),
//   - a delivery rate (packets sent minus lost, per second) that stays flat
//     across windows whatever the sender tried (within 25% of its median),
//   - no queue: the smoothed RTT stays near the minimum (congestion loss comes
//     with a filled buffer, so an inflated RTT; random loss is not this heavy).
// Seen in 3 of the last 4 windows: policed. Like QUIC's and BBR's delivery-rate
// sampling, it only reads what the transport already counts; it sends nothing.
//
// What to do about it is the caller's (prefer the TCP relay, re-probe later):
// this class only tells, and remembers per peer, within a bounded table.

export interface PathSample {
  packetsSent: number;
  packetsLost: number;
  srttMs: number;
  minRttMs: number;
}

export interface PoliceVerdict {
  policed: boolean;
  /** Median delivery rate of the recent windows (packets per second). */
  deliveredPps: number;
  /** Loss fraction of the last window. */
  loss: number;
}

/** One window of sending. */
const WINDOW_MS = 1_000;
/** A window counts only with at least this many packets sent (a busy sender). */
const MIN_PACKETS = 100;
const MIN_LOSS = 0.1;
const FLAT = 0.25;
const HISTORY = 4;
const NEEDED = 3;
/** Peers tracked at once (the daemon's peer table bounds it too). */
const MAX_PEERS = 4096;

interface Track {
  at: number;
  sent: number;
  lost: number;
  /** Recent windows: delivered pps, loss fraction, and whether the RTT showed no queue. */
  windows: { pps: number; loss: number; noQueue: boolean }[];
}

export class PoliceDetector {
  private readonly tracks = new Map<number, Track>();

  /**
   * Feed the peer's cumulative counters (call about once a second while the peer is on a direct path).
   * Returns a verdict when a window closed, undefined otherwise.
   */
  sample(peerKey: number, now: number, s: PathSample): PoliceVerdict | undefined {
    const t = this.tracks.get(peerKey);
    if (t === undefined) {
      if (this.tracks.size >= MAX_PEERS) this.tracks.delete(this.tracks.keys().next().value!);
      this.tracks.set(peerKey, { at: now, sent: s.packetsSent, lost: s.packetsLost, windows: [] });
      return undefined;
    }
    const dt = now - t.at;
    if (dt < WINDOW_MS) return undefined;
    const sent = s.packetsSent - t.sent;
    const lost = Math.max(0, s.packetsLost - t.lost);
    t.at = now;
    t.sent = s.packetsSent;
    t.lost = s.packetsLost;
    if (sent < MIN_PACKETS || sent < 0) {
      t.windows = []; // idle or light: what came before says nothing about a flat rate now
      return { policed: false, deliveredPps: 0, loss: 0 };
    }
    const loss = Math.min(1, lost / sent);
    t.windows.push({ pps: ((sent - lost) * 1000) / dt, loss, noQueue: s.srttMs <= 2 * s.minRttMs + 20 });
    if (t.windows.length > HISTORY) t.windows.shift();
    const pps = median(t.windows.map((w) => w.pps));
    const hits = t.windows.filter((w) => w.loss >= MIN_LOSS && w.noQueue && Math.abs(w.pps - pps) <= FLAT * pps).length;
    return { policed: hits >= NEEDED, deliveredPps: pps, loss };
  }

  /** Start over for the peer (its path changed: old windows describe another path). */
  reset(peerKey: number): void {
    this.tracks.delete(peerKey);
  }

  get size(): number {
    return this.tracks.size;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
