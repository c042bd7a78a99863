// Issue 19: a direct UDP path that a network polices (a packet-rate cap per
// address pair) moves to the relay over the TCP uplink, when that carries more.
//   detect:   src/nat/police-detector.ts, on the peer connection's own counters;
//   switch:   pin the peer to the relay and put the uplink on TCP (the relay over
//             UDP is one more policed address pair: no better);
//   measure:  the relay's delivery rate over the next busy windows; if it carries
//             less than the policed direct path did, go back at once and leave the
//             peer on UDP for the long back-off (hysteresis both ways);
//   re-probe: the pin runs out (60 s, doubling per repeat up to 10 min), punching
//             finds the direct path again, the detector looks again.
// The TCP path is the rendezvous relay (a direct TCP path across NAT is not worth
// its cost here); it is as end-to-end encrypted as every relayed packet, and
// bounded by the rendezvous's per-node relay rate (2 MB/s by default).
import type { ConnectionStats } from '../transport/stats.ts';
import { PoliceDetector } from '../nat/police-detector.ts';
import type { Logger } from '../util/logger.ts';

const CHECK_EVERY_MS = 1_000;
const FIRST_PIN_MS = 60_000;
const MAX_PIN_MS = 600_000;
/** Busy windows on the relay before comparing it with what the policed path delivered. */
const RELAY_WINDOWS = 3;
const MIN_PACKETS = 100;

export interface PolicedPathsHost {
  log: Logger;
  /** Peers with a connection, and how each is reached now. */
  peers(): Iterable<{ key: number; name: string; direct: boolean; stats(): ConnectionStats }>;
  /** Keep the peer on the relay until then (0: let it go direct again now). */
  pinRelay(key: number, until: number, reason: string): void;
  /** Carry the relay over TCP until then; resolves once switched (or when it already was, or cannot). */
  preferTcp(until: number): Promise<void>;
}

interface Pin {
  until: number;
  pinMs: number;
  /** What the policed direct path delivered (packets per second). */
  policedPps: number;
  /** Relay windows measured so far: delivered pps of busy ones. */
  relay: number[];
  at: number;
  sent: number;
  lost: number;
  /** The relay carried less: stay on UDP until then. */
  udpUntil: number;
}

export class PolicedPaths {
  private readonly host: PolicedPathsHost;
  private readonly detector = new PoliceDetector();
  private readonly pins = new Map<number, Pin>();
  private lastCheck = 0;
  readonly counters = { policed: 0, relayWorse: 0 };

  constructor(host: PolicedPathsHost) {
    this.host = host;
  }

  /** Call often; it looks once a second. */
  tick(now: number): void {
    if (now - this.lastCheck < CHECK_EVERY_MS) return;
    this.lastCheck = now;
    const seen = new Set<number>();
    for (const p of this.host.peers()) {
      seen.add(p.key);
      const pin = this.pins.get(p.key);
      if (pin !== undefined && now < pin.until) {
        this.measureRelay(p, pin, now);
        continue;
      }
      if (!p.direct || (pin !== undefined && now < pin.udpUntil)) {
        this.detector.reset(p.key);
        continue;
      }
      const s = p.stats();
      const v = this.detector.sample(p.key, now, s);
      if (v !== undefined && v.deliveredPps > 0) this.host.log.debug({ peer: p.name, ...v, srttMs: s.srttMs, minRttMs: s.minRttMs }, 'direct path delivery');
      if (v?.policed) this.policed(p, pin, v.deliveredPps, v.loss, now, s);
    }
    for (const k of this.pins.keys()) if (!seen.has(k)) this.pins.delete(k);
  }

  private policed(p: { key: number; name: string }, old: Pin | undefined, pps: number, loss: number, now: number, s: ConnectionStats): void {
    const pinMs = old === undefined ? FIRST_PIN_MS : Math.min(MAX_PIN_MS, old.pinMs * 2);
    const until = now + pinMs;
    this.pins.set(p.key, { until, pinMs, policedPps: pps, relay: [], at: now, sent: s.packetsSent, lost: s.packetsLost, udpUntil: 0 });
    this.detector.reset(p.key);
    this.counters.policed++;
    this.host.log.warn(
      { peer: p.name, deliveredPps: Math.round(pps), lossPct: Math.round(loss * 100), forSeconds: pinMs / 1000 },
      'direct UDP path looks policed (loss above a flat packet rate): relay over TCP',
    );
    this.host.pinRelay(p.key, until, `UDP policed at ~${Math.round(pps)} packets/s: relay over TCP`);
    this.host.preferTcp(until).catch((err: unknown) => this.host.log.warn({ err: (err as Error).message }, 'no TCP uplink for a policed path'));
  }

  /** On the relay: does it carry more than the policed path did? If not, back to direct now, and stay there a while. */
  private measureRelay(p: { key: number; name: string; stats(): ConnectionStats }, pin: Pin, now: number): void {
    if (pin.relay.length >= RELAY_WINDOWS) return;
    const s = p.stats();
    const sent = s.packetsSent - pin.sent;
    const lost = Math.max(0, s.packetsLost - pin.lost);
    const dt = now - pin.at;
    pin.at = now;
    pin.sent = s.packetsSent;
    pin.lost = s.packetsLost;
    if (sent < MIN_PACKETS || dt <= 0) return;
    pin.relay.push(((sent - lost) * 1000) / dt);
    if (pin.relay.length < RELAY_WINDOWS) return;
    const relayPps = [...pin.relay].sort((a, b) => a - b)[RELAY_WINDOWS >> 1]!;
    if (relayPps >= pin.policedPps) {
      this.host.log.info(
        { peer: p.name, relayPps: Math.round(relayPps), policedPps: Math.round(pin.policedPps) },
        'relay over TCP carries more than the policed path',
      );
      return;
    }
    this.counters.relayWorse++;
    pin.udpUntil = now + pin.pinMs;
    pin.until = now;
    this.host.log.info(
      { peer: p.name, relayPps: Math.round(relayPps), policedPps: Math.round(pin.policedPps) },
      'relay carries less than the policed path: back to direct',
    );
    this.host.pinRelay(p.key, 0, 'relay carries less than the policed direct path');
  }
}
