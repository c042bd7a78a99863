// The daemon's Prometheus registry: peers, sessions, handshakes, streams,
// bytes and packets, paths (direct / relay), hole punches and errors. Every
// value is read at scrape time from counters the daemon keeps anyway (session
// manager, path manager, connections), so the data path never calls prom-client.
// Only counts leave this file: no address, key or endpoint.
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { SessionStats } from '../crypto/session-manager.ts';
import type { PathManager } from '../nat/path-manager.ts';
import type { NatType } from '../nat/nat-type.ts';
import type { ConnectionStats } from '../transport/connection.ts';
import { mirrorCounter, mirrorGauge } from '../metrics/mirror.ts';

/** What the metrics read from a running daemon (Daemon implements it). */
export interface DaemonMetricsSource {
  readonly counters: { garbage: number; relayIn: number; relayOut: number; udpIn: number; udpOut: number; refusedUntrusted: number };
  readonly natType: NatType;
  readonly registryOnline: boolean;
  sessionStats(): unknown;
  /** Per peer: its connection's stats and whether a session is established now. */
  peerStats(): { conn: ConnectionStats; session: boolean }[];
  pathStats(): { counters: PathManager['counters']; paths: { direct: number; relay: number } } | undefined;
}

const P = 'pilot_daemon_';
const NAT_TYPES: NatType[] = ['none', 'eim', 'edm', 'unknown'];
type Row = [Record<string, string>, number];

/** "dropStaleHandshake" -> "stale_handshake" */
const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`).replace(/^_/, '');

export function createDaemonMetrics(src: DaemonMetricsSource): Registry {
  const reg = new Registry();
  collectDefaultMetrics({ register: reg });
  // One snapshot per scrape however many metrics read it (a scrape runs every
  // collect() in one synchronous pass; the snapshot is dropped at the next microtask).
  let cache: { s: SessionStats; peers: ReturnType<DaemonMetricsSource['peerStats']>; paths: ReturnType<DaemonMetricsSource['pathStats']> } | undefined;
  const snap = () => {
    if (!cache) {
      cache = { s: src.sessionStats() as SessionStats, peers: src.peerStats(), paths: src.pathStats() };
      queueMicrotask(() => (cache = undefined));
    }
    return cache;
  };
  const one = (v: number): Row[] => [[{}, v]];
  const inOut = (i: number, o: number): Row[] => [
    [{ direction: 'in' }, i],
    [{ direction: 'out' }, o],
  ];

  mirrorGauge(reg, `${P}peers`, 'Peers this daemon knows (resolved or that reached it)', [], () => one(snap().peers.length));
  mirrorGauge(reg, `${P}sessions`, 'Peers with an established encrypted session', [], () => one(snap().peers.filter((p) => p.session).length));
  mirrorCounter(reg, `${P}handshakes_total`, 'Noise handshakes finished, by result', ['result'], () => [
    [{ result: 'ok' }, snap().s.handshakesCompleted],
    [{ result: 'failed' }, snap().s.handshakesFailed],
  ]);
  mirrorCounter(reg, `${P}handshakes_started_total`, 'Noise handshakes started, by our role', ['role'], () => [
    [{ role: 'initiator' }, snap().s.handshakesInitiated],
    [{ role: 'responder' }, snap().s.handshakesResponded],
  ]);
  mirrorCounter(reg, `${P}rekeys_total`, 'Sessions replaced by a fresh handshake', [], () => one(snap().s.rekeys));
  mirrorGauge(reg, `${P}streams_open`, 'Open streams over all peer connections', [], () => one(snap().peers.reduce((n, p) => n + p.conn.streamsOpen, 0)));
  mirrorCounter(reg, `${P}session_bytes_total`, 'Plaintext bytes through encrypted sessions', ['direction'], () => inOut(snap().s.bytesIn, snap().s.bytesOut));
  mirrorCounter(reg, `${P}session_packets_total`, 'Packets through encrypted sessions (keepalives included)', ['direction'], () =>
    inOut(snap().s.packetsIn, snap().s.packetsOut),
  );
  mirrorCounter(reg, `${P}udp_packets_total`, 'UDP packets on the daemon socket (all kinds)', ['direction'], () =>
    inOut(src.counters.udpIn, src.counters.udpOut),
  );
  mirrorCounter(reg, `${P}relay_packets_total`, 'Session packets through the rendezvous relay', ['direction'], () =>
    inOut(src.counters.relayIn, src.counters.relayOut),
  );
  mirrorGauge(reg, `${P}peer_paths`, 'Peers with a session, by how they are reached now', ['kind'], () => {
    const p = snap().paths?.paths ?? { direct: 0, relay: 0 };
    return [
      [{ kind: 'direct' }, p.direct],
      [{ kind: 'relay' }, p.relay],
    ];
  });
  // Same definitions as the heartbeat self-report (src/daemon/report.ts).
  mirrorCounter(reg, `${P}punches_total`, 'Hole punches: tried = probe rounds + birthday attempts, succeeded = relay -> direct upgrades', ['result'], () => {
    const c = snap().paths?.counters;
    return [
      [{ result: 'tried' }, c ? c.rounds + c.birthdayAttempts : 0],
      [{ result: 'succeeded' }, c?.upgrades ?? 0],
    ];
  });
  mirrorCounter(
    reg,
    `${P}path_changes_total`,
    'Path changes: upgrade (relay -> direct), fallback (direct -> relay), move (direct -> other direct)',
    ['change'],
    () => {
      const c = snap().paths?.counters;
      return [
        [{ change: 'upgrade' }, c?.upgrades ?? 0],
        [{ change: 'fallback' }, c?.fallbacks ?? 0],
        [{ change: 'move' }, c?.moves ?? 0],
      ];
    },
  );
  mirrorGauge(reg, `${P}nat_type`, 'NAT class of this node (1 for the current one)', ['nat'], () =>
    NAT_TYPES.map((nat) => [{ nat }, src.natType === nat ? 1 : 0]),
  );
  mirrorGauge(reg, `${P}registry_online`, '1 while the rendezvous answers', [], () => one(src.registryOnline ? 1 : 0));
  mirrorCounter(reg, `${P}session_dropped_total`, 'Session packets dropped, by reason', ['reason'], () => {
    const s = snap().s;
    return (Object.keys(s) as (keyof SessionStats)[]).filter((k) => k.startsWith('drop')).map((k) => [{ reason: snake(k.slice(4)) }, s[k]]);
  });
  mirrorCounter(reg, `${P}cookie_replies_total`, 'Handshake cookie replies (under-load mode): sent, not sent (per-source cap), received', ['event'], () => {
    const s = snap().s;
    return [
      [{ event: 'sent' }, s.cookieRepliesSent],
      [{ event: 'limited' }, s.cookieRepliesLimited],
      [{ event: 'received' }, s.cookieRepliesReceived],
    ];
  });
  mirrorCounter(reg, `${P}errors_total`, 'Errors, by kind', ['kind'], () => {
    const s = snap().s;
    return [
      [{ kind: 'garbage' }, src.counters.garbage],
      [{ kind: 'refused_untrusted' }, src.counters.refusedUntrusted],
      [{ kind: 'session_send' }, s.sendErrors],
      [{ kind: 'listener' }, s.listenerErrors],
      [{ kind: 'internal' }, s.internalErrors],
      [{ kind: 'transport_malformed' }, snap().peers.reduce((n, p) => n + p.conn.malformed, 0)],
    ];
  });
  return reg;
}
