// Datagram packetization-layer path MTU discovery (RFC 8899 DPLPMTUD), one per
// connection, as QUIC stacks do it (quic-go's mtuDiscoverer): once the peer has
// acked a packet we sent on the current path, padded probe packets of growing
// size go out (one at a time, ack-eliciting, outside congestion control); an acked probe raises the
// packet size, a probe lost MAX_PROBES times lowers the search ceiling. The
// ceiling itself is tried first, up to twice (most paths carry a full 1500 bytes:
// one probe then), then a binary search between the base (always safe) and the
// ceiling, finished when the window is under SEARCH_DONE bytes. Then a fresh
// search every RAISE_MS.
//
// Why a confirmation hook: Node cannot set IP_PMTUDISC_PROBE/DO. Linux sends UDP
// with DF only while a packet fits the route's cached PMTU (IP_PMTUDISC_WANT);
// once an ICMP "fragmentation needed" taught the kernel a smaller PMTU, a bigger
// probe is fragmented locally and its ACK proves nothing. So an acked probe is
// only taken after the host confirmed the kernel's view of the path still allows
// it (the daemon reads the route cache); where no such check exists the host
// keeps the base (no discoverer at all).
//
// Black hole (ICMP filtered, a link's MTU dropped mid-connection): full-size
// packets vanish while small ones pass. Two probe timeouts in a row with the
// packet size above the base (about a big packet), or BLACK_HOLE_LOSSES losses of big packets with no
// big packet acked since, drop to the base at once. A lost big packet counts only
// if no big packet sent after it was acked (quinn's black-hole detector reasons
// the same way): a later big packet that got through proves the size passes, so
// that loss was random or congestion. Two probe timeouts in a row also happen
// under random loss (a lost ACK, then a lost probe): so a black hole is undone
// at once when a big packet sent after the one that raised it is acked (the
// path carried the size after all), as TCP undoes a spurious retransmission
// timeout (F-RTO, RFC 5682) and RACK a spurious loss. Without both, 5% random
// loss in the NAT lab raised a false black hole every 1-3 s: 1253-byte packets
// for seconds at a time, 5-18% more packets per MB, with the retry backing off. Congestion and a starved
// receiver look the same from here (measured: a false alarm in the NAT lab at
// load 15 on 2 cores), so the search restarts soon, BLACK_HOLE_RETRY_MS later,
// ceiling first: after a false alarm one probe restores the size; after a real
// black hole the search finds the new, smaller size. Repeated alarms back off
// (doubling up to RAISE_MS) so a path that keeps losing costs few probes.

/** Probes of one size before it counts as too big (RFC 8899 MAX_PROBES). */
export const MAX_PROBES = 3;
/** Tries of the ceiling before the binary search (a full 1500-byte path is the common case). */
export const TOP_TRIES = 2;
/** Stop searching once ceiling - confirmed is below this many bytes. */
export const SEARCH_DONE = 20;
/** Search again after this long (RFC 8899 PMTU_RAISE_TIMER, 600 s). */
export const RAISE_MS = 600_000;
/** After a black hole, search again after this long (doubled for each further one within RAISE_MS). */
export const BLACK_HOLE_RETRY_MS = 1_000;
/** Lost big packets, with no big packet acked since, that mean a black hole. */
export const BLACK_HOLE_LOSSES = 12;
/** A probe not acked within this long is lost (floor; otherwise 3 probe timeouts). */
const MIN_PROBE_WAIT_MS = 100;
/** Gap between probes (floor; otherwise one smoothed RTT). */
const MIN_PROBE_GAP_MS = 5;
/** A big packet lost asks the host to re-check the path at most this often. */
const RECHECK_GAP_MS = 2_000;

/** Why the packet size changed: a probe passed, a black hole, or the kernel's route cache said less. */
export type MtuChange = 'probe' | 'black-hole' | 'route' | 'undo';

export interface MtuDiscovererHost {
  /** Apply a new packet size to packets built from now on. */
  setPacketSize(size: number, why: MtuChange): void;
  /**
   * Does the path still carry `size` unfragmented (the kernel's cached PMTU for it)? Calls done with
   * the verdict and, when known, the largest packet size the path allows now.
   */
  confirm(size: number, done: (ok: boolean, ceiling?: number) => void): void;
}

export interface MtuStatus {
  /** Packet size in use now. */
  current: number;
  base: number;
  ceiling: number;
  state: 'disabled' | 'searching' | 'done' | 'black-hole';
  probesSent: number;
  probesAcked: number;
  probesLost: number;
  blackHoles: number;
  /** Black holes undone: a big packet sent after the suspect one was acked. */
  blackHolesUndone: number;
}

/** A black hole raised by the packet `suspectPn`, and the state to go back to if it was a false alarm. */
interface BlackHoleUndo {
  suspectPn: number;
  size: number;
  confirmed: number;
  ceiling: number;
  state: MtuStatus['state'];
  nextProbeAt: number;
}

export class MtuDiscoverer {
  private base: number;
  /** Largest size the path is believed to allow (search ceiling, inclusive). */
  private ceiling: number;
  /** The ceiling the path started with: a new search starts from it again. */
  private pathCeiling: number;
  /** Largest size confirmed (acked probe, or the base). */
  private confirmed: number;
  private current: number;
  private state: MtuStatus['state'];
  private nextProbeAt = 0;
  private inFlight: { size: number; sentAt: number; top: boolean } | null = null;
  /** Probes of the size being tried that were lost. */
  private losses = 0;
  /** Tries of the ceiling itself in this search (TOP_TRIES at most: one lost probe is no verdict). */
  private topTries = 0;
  private confirming = false;
  private bigLosses = 0;
  /** Highest packet number of a big (above the base) regular packet acked: losses below it are not the size's fault. */
  private bigAckedPn = -1;
  private lastRecheck = -Infinity;
  /** Black holes in a row (each within RAISE_MS of the last): the retry backs off. */
  private holeStreak = 0;
  private lastHole = -Infinity;
  /** The first lost big packet counted toward BLACK_HOLE_LOSSES. */
  private firstBigLossPn = -1;
  /** A black hole raised by the packet `suspectPn`, and what to go back to if it was a false alarm. */
  private undo: BlackHoleUndo | null = null;
  /** Bumped on every reset: an answer from confirm() for an older path is ignored. */
  private epoch = 0;
  private readonly host: MtuDiscovererHost;
  private readonly counts = { probesSent: 0, probesAcked: 0, probesLost: 0, blackHoles: 0, blackHolesUndone: 0 };

  constructor(host: MtuDiscovererHost, base: number, ceiling: number) {
    this.host = host;
    this.base = base;
    this.ceiling = ceiling;
    this.pathCeiling = ceiling;
    this.confirmed = base;
    this.current = base;
    this.state = ceiling > base ? 'searching' : 'disabled';
  }

  /** A new path (roaming, another endpoint, relay <-> direct): start from the base again. */
  reset(base: number, ceiling: number, now: number): void {
    this.epoch++;
    this.base = base;
    this.ceiling = ceiling;
    this.pathCeiling = ceiling;
    this.confirmed = base;
    this.inFlight = null;
    this.losses = 0;
    this.topTries = 0;
    this.confirming = false;
    this.bigLosses = 0;
    this.undo = null;
    this.state = ceiling > base ? 'searching' : 'disabled';
    this.nextProbeAt = now;
    this.holeStreak = 0;
    this.apply(base, 'probe');
  }

  get packetSize(): number {
    return this.current;
  }

  status(): MtuStatus {
    return { current: this.current, base: this.base, ceiling: this.ceiling, state: this.state, ...this.counts };
  }

  /**
   * Size of the probe to send now, or 0. `rttMs`: smoothed RTT; `ptoMs`: the connection's probe timeout
   * (how long an ACK may take). Also retires a probe whose ACK is overdue.
   */
  probeSize(now: number, rttMs: number, ptoMs: number): number {
    if (this.state === 'disabled') return 0;
    const f = this.inFlight;
    if (f !== null) {
      if (now - f.sentAt < Math.max(MIN_PROBE_WAIT_MS, 3 * ptoMs)) return 0;
      this.lost(f, now, rttMs);
    }
    if (this.confirming || now < this.nextProbeAt) return 0;
    if (this.state === 'done' || this.state === 'black-hole') {
      // periodic re-search (RFC 8899 §4.3): the path may carry more now
      this.state = 'searching';
      this.ceiling = this.pathCeiling;
      this.topTries = 0;
    }
    if (this.topTries < TOP_TRIES && this.ceiling > this.confirmed) return this.ceiling;
    if (this.ceiling - this.confirmed < SEARCH_DONE) {
      this.finish(now);
      return 0;
    }
    return Math.ceil((this.confirmed + this.ceiling + 1) / 2);
  }

  onProbeSent(size: number, now: number): void {
    const top = this.topTries < TOP_TRIES && size === this.ceiling;
    if (top) this.topTries++;
    this.inFlight = { size, sentAt: now, top };
    this.counts.probesSent++;
  }

  /** The peer acked a probe of `size` (late ACKs of a probe already given up on count too: they are proof). */
  onProbeAcked(size: number, now: number): void {
    if (this.inFlight?.size === size) this.inFlight = null;
    this.counts.probesAcked++;
    if (size <= this.confirmed || this.state === 'disabled' || this.confirming) return;
    const epoch = this.epoch;
    this.confirming = true;
    this.host.confirm(size, (ok, ceiling) => {
      if (epoch !== this.epoch || !this.confirming) return; // another path by now, or a second answer
      this.confirming = false;
      if (ceiling !== undefined && ceiling < this.ceiling) {
        // the kernel learned the path MTU (ICMP): try exactly that next, once
        this.ceiling = Math.max(ceiling, this.base);
        this.topTries = 0;
      }
      this.losses = 0;
      if (ok && size <= this.pathCeiling) {
        // a late ACK of a probe already counted lost (a slow, loaded peer) still proves the size
        if (size > this.ceiling) this.ceiling = size;
        this.confirmed = size;
        this.bigLosses = 0;
        this.undo = null;
        this.apply(size, 'probe');
      }
      this.nextProbeAt = now;
    });
  }

  /** A probe the connection's loss detection gave up on. */
  onProbeLost(size: number, now: number, rttMs: number): void {
    const f = this.inFlight;
    if (f?.size !== size) return;
    this.lost(f, now, rttMs);
  }

  /** An ACK for a regular (non-probe) packet `pn` of `size`: big ones prove the current size still passes. */
  onPacketAcked(size: number, pn: number): void {
    if (size <= this.base) return;
    this.bigLosses = 0;
    if (pn > this.bigAckedPn) this.bigAckedPn = pn;
    const u = this.undo;
    if (u !== null && pn > u.suspectPn) this.undoBlackHole(u);
  }

  /** A regular packet `pn` of `size` declared lost. */
  onPacketLost(size: number, pn: number, now: number): void {
    if (size <= this.base || this.current <= this.base) return;
    if (pn > this.bigAckedPn) {
      if (this.bigLosses === 0) this.firstBigLossPn = pn;
      if (++this.bigLosses >= BLACK_HOLE_LOSSES) {
        this.blackHole(now, this.firstBigLossPn);
        return;
      }
    }
    // with ICMP reaching the kernel, a lowered PMTU shows in its route cache: shrink before fragmenting
    if (now - this.lastRecheck >= RECHECK_GAP_MS && !this.confirming) {
      this.lastRecheck = now;
      this.recheck(now);
    }
  }

  /**
   * The connection's probe timeout fired (`count` in a row); `oldestSize` and `oldestPn`: the oldest
   * packet still unacked (the one the timeout is about). Only a big one can be the size's fault: a
   * peer that sends little (ACKs, credit) timed out on small packets under 5% random loss in the
   * NAT lab, and fell to the base every few seconds.
   */
  onProbeTimeout(count: number, now: number, oldestSize: number, oldestPn: number): void {
    if (count >= 2 && this.current > this.base && oldestSize > this.base) this.blackHole(now, oldestPn);
  }

  private recheck(now: number): void {
    const epoch = this.epoch;
    const size = this.current;
    this.confirming = true;
    this.host.confirm(size, (ok, ceiling) => {
      if (epoch !== this.epoch || !this.confirming) return;
      this.confirming = false;
      if (ceiling !== undefined) this.ceiling = Math.max(this.base, Math.min(this.pathCeiling, ceiling));
      if (ok) return;
      const to = Math.max(this.base, Math.min(this.ceiling, size - 1));
      this.confirmed = to;
      this.undo = null;
      this.apply(to, 'route');
      this.state = 'done';
      this.nextProbeAt = now + RAISE_MS;
    });
  }

  private lost(f: { size: number; top: boolean }, now: number, rttMs: number): void {
    const size = f.size;
    this.inFlight = null;
    this.counts.probesLost++;
    this.nextProbeAt = now + Math.max(MIN_PROBE_GAP_MS, rttMs);
    // the ceiling gets TOP_TRIES chances (a path just punched may drop the very first one), then the binary search
    if (f.top) {
      if (this.topTries >= TOP_TRIES) this.ceiling = Math.max(this.confirmed, size - 1);
      return;
    }
    if (++this.losses < MAX_PROBES) return;
    this.losses = 0;
    this.ceiling = size - 1;
  }

  private blackHole(now: number, suspectPn: number): void {
    this.counts.blackHoles++;
    this.undo = { suspectPn, size: this.current, confirmed: this.confirmed, ceiling: this.ceiling, state: this.state, nextProbeAt: this.nextProbeAt };
    this.epoch++; // a confirmation still under way must not raise the size again
    this.confirming = false;
    this.bigLosses = 0;
    // the re-search starts from the path's ceiling again (one probe if this was a false alarm)
    this.confirmed = this.base;
    this.inFlight = null;
    this.losses = 0;
    this.topTries = 0;
    this.state = 'black-hole';
    this.holeStreak = now - this.lastHole < RAISE_MS ? this.holeStreak + 1 : 1;
    this.lastHole = now;
    this.nextProbeAt = now + Math.min(RAISE_MS, BLACK_HOLE_RETRY_MS * 2 ** Math.min(this.holeStreak - 1, 20));
    this.apply(this.base, 'black-hole');
  }

  /** A big packet sent after the suspect one got through: no black hole; back to where we were. */
  private undoBlackHole(u: BlackHoleUndo): void {
    this.undo = null;
    this.counts.blackHolesUndone++;
    this.epoch++; // a probe or confirmation of the re-search is moot now
    this.confirming = false;
    this.inFlight = null;
    this.confirmed = u.confirmed;
    this.ceiling = u.ceiling;
    this.state = u.state;
    this.nextProbeAt = u.nextProbeAt;
    this.holeStreak = Math.max(0, this.holeStreak - 1); // a false alarm does not lengthen the next retry
    this.apply(u.size, 'undo');
  }

  private finish(now: number): void {
    this.state = 'done';
    this.nextProbeAt = now + RAISE_MS;
  }

  private apply(size: number, why: MtuChange): void {
    if (size === this.current) return;
    this.current = size;
    this.host.setPacketSize(size, why);
  }
}
