// The rendezvous's Prometheus registry: registrations, online nodes, NAT
// classes, paths and punches reported by daemons, relay traffic, links and
// errors. Everything is read at scrape time from the server's own counters.
import { collectDefaultMetrics, Registry } from 'prom-client';
import { NAT_CLASSES } from '../registry/protocol.ts';
import type { OnlineIndex } from './online-index.ts';
import type { RendezvousStats } from './server.ts';
import type { DbStats } from './store/store.ts';
import { aggregateOnline } from './metrics-aggregate.ts';
import { mirrorCounter, mirrorGauge } from '../metrics/mirror.ts';

export interface RendezvousMetricsSource {
  stats(): RendezvousStats;
  online: OnlineIndex;
  /** The store's database connections (PostgreSQL only). */
  db?: (() => DbStats) | undefined;
}

const P = 'pilot_rendezvous_';

export function createRendezvousMetrics(src: RendezvousMetricsSource): Registry {
  const reg = new Registry();
  collectDefaultMetrics({ register: reg });
  // One stats() and one aggregate per scrape, however many metrics read them:
  // a scrape runs every collect() in one synchronous pass, so the snapshot
  // is dropped at the next microtask.
  let cache: { stats: RendezvousStats; agg: ReturnType<typeof aggregateOnline> } | undefined;
  const snap = () => {
    if (!cache) {
      cache = { stats: src.stats(), agg: aggregateOnline(src.online) };
      queueMicrotask(() => (cache = undefined));
    }
    return cache;
  };
  const one = (v: number): [Record<string, string>, number][] => [[{}, v]];

  mirrorCounter(reg, `${P}registrations_total`, 'Successful register requests', [], () => one(src.online.registrations));
  mirrorCounter(reg, `${P}registry_requests_total`, 'Registry requests received (all methods, hello included)', [], () => one(snap().stats.registry.requests));
  mirrorCounter(reg, `${P}registry_errors_total`, 'Registry requests answered with an error', [], () => one(snap().stats.registry.errors));
  mirrorCounter(reg, `${P}registry_dropped_total`, 'Registry requests dropped unanswered', ['reason'], () => {
    const r = snap().stats.registry;
    return [
      [{ reason: 'malformed' }, r.dropped],
      [{ reason: 'amplification' }, r.amplificationDropped],
      [{ reason: 'unregistered_rate' }, r.unregisteredDropped],
    ];
  });
  mirrorCounter(reg, `${P}pushes_total`, 'Signed pushes sent to nodes', [], () => one(snap().stats.registry.pushes));
  mirrorGauge(reg, `${P}online_nodes`, 'Nodes heard from within the online window', [], () => one(snap().agg.online));
  mirrorGauge(reg, `${P}online_nodes_by_nat`, 'Online nodes by the NAT class they reported', ['nat'], () =>
    Object.entries(snap().agg.nat).map(([nat, n]) => [{ nat }, n]),
  );
  mirrorGauge(reg, `${P}peer_paths`, 'Peer paths reported by online nodes', ['kind'], () => Object.entries(snap().agg.paths).map(([kind, n]) => [{ kind }, n]));
  mirrorCounter(reg, `${P}punches_total`, 'Hole punches reported by daemons, by the NAT class of the reporting node', ['nat', 'result'], () =>
    NAT_CLASSES.flatMap((nat) => {
      const t = src.online.punchTotals[nat] ?? { tried: 0, succeeded: 0 };
      return [
        [{ nat, result: 'tried' }, t.tried],
        [{ nat, result: 'succeeded' }, t.succeeded],
      ] as [Record<string, string>, number][];
    }),
  );
  const db = src.db;
  if (db) {
    // Round trips bound a PostgreSQL cluster before its CPU does (BENCHMARKS.md, "Fleets").
    mirrorCounter(reg, `${P}db_statements_total`, 'Statements sent to the database (each one round trip)', [], () => one(db().statements));
    mirrorGauge(reg, `${P}db_connections`, "The database pool's connections", ['state'], () => {
      const d = db();
      return [
        [{ state: 'busy' }, d.connections - d.idle],
        [{ state: 'idle' }, d.idle],
      ];
    });
    mirrorGauge(reg, `${P}db_waiting`, 'Queries waiting for a free database connection', [], () => one(db().waiting));
  }
  mirrorCounter(reg, `${P}relay_packets_total`, 'Packets forwarded by the relay', [], () => one(snap().stats.relay.forwarded));
  mirrorCounter(reg, `${P}relay_bytes_total`, 'Bytes forwarded by the relay', [], () => one(snap().stats.relay.forwardedBytes));
  mirrorCounter(reg, `${P}relay_dropped_total`, 'Relay packets dropped', ['reason'], () => {
    const r = snap().stats.relay;
    return [
      [{ reason: 'malformed' }, r.droppedMalformed],
      [{ reason: 'unknown_source' }, r.droppedUnknownSource],
      [{ reason: 'unknown_destination' }, r.droppedUnknownDestination],
      [{ reason: 'rate_limited' }, r.droppedRateLimited],
      [{ reason: 'send_failed' }, r.droppedSendFailed],
      [{ reason: 'not_trusted' }, r.droppedNotTrusted],
    ];
  });
  mirrorCounter(reg, `${P}packets_in_total`, 'Packets received', ['transport'], () => {
    const s = snap().stats;
    return [
      [{ transport: 'udp' }, s.udpIn],
      [{ transport: 'tcp' }, s.tcpFramesIn],
    ];
  });
  // Do the relay's forwards leave in GSO batches, or one sendmsg each (BENCHMARKS.md, "The relayed path's CPU per MB")?
  mirrorCounter(
    reg,
    `${P}udp_sends_total`,
    'System calls that sent UDP: one GSO batch each (gso), or one packet through dgram (plain) or the addon (one)',
    ['kind'],
    () => {
      const u = snap().stats.udpOut;
      return [
        [{ kind: 'gso' }, u.gsoSends],
        [{ kind: 'plain' }, u.plainPackets],
        [{ kind: 'one' }, u.onePackets],
      ];
    },
  );
  mirrorCounter(reg, `${P}udp_gso_packets_total`, 'Packets sent in GSO batches', [], () => one(snap().stats.udpOut.gsoPackets));
  mirrorCounter(reg, `${P}garbage_total`, 'Packets that were not a registry or relay packet, or were malformed', [], () => one(snap().stats.garbage));
  mirrorCounter(reg, `${P}rate_limited_total`, 'Registry requests refused by the per-IP rate limit', [], () => one(snap().stats.rateLimited));
  mirrorGauge(reg, `${P}tcp_connections`, 'Open TCP connections (framed and WebSocket)', [], () => one(snap().stats.tcpConnections));
  mirrorGauge(reg, `${P}websockets`, 'Open TCP connections upgraded to WebSocket', [], () => one(snap().stats.websockets));
  return reg;
}
