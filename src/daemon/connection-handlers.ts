// Upstream pilotctl's management and diagnostic commands (issue 21): the open
// streams with every peer (`connections`), closing one (`disconnect`), and the
// path to a peer with the RTT of each leg (`traceroute`).
import type { ConnectionInfo, TraceLeg } from '../ipc/api.ts';
import type { Handlers } from '../ipc/server.ts';
import { StreamDisconnected } from '../transport/codes.ts';
import type { Stream } from '../transport/stream.ts';
import { PilotError } from '../util/errors.ts';
import { formatAddress } from '../wire/address.ts';
import type { Daemon, Peer } from './daemon.ts';
import { echoProbe, rttSummary } from './echo-probe.ts';

type ConnectionMethod = 'connections' | 'disconnect' | 'traceroute';

function describe(d: Daemon, peer: Peer, s: Stream): ConnectionInfo {
  const now = peer.conn.now();
  const path = d.pathInfo(peer);
  return {
    id: s.serial,
    peer: formatAddress(peer.address),
    hostname: peer.hostname ?? null,
    localPort: s.localPort,
    remotePort: s.remotePort,
    direction: s.local ? 'outgoing' : 'incoming',
    state: s.sendDone || s.recvDone ? 'half-closed' : 'open',
    bytesIn: s.bytesDelivered,
    bytesOut: s.bytesAcked,
    ageMs: Math.round(now - s.openedAt),
    idleMs: Math.round(now - s.lastActivity),
    path: path.path,
    pathType: path.pathType,
  };
}

function* openStreams(d: Daemon): Generator<[Peer, Stream]> {
  for (const peer of d.listPeers()) for (const s of peer.conn.openStreams()) if (!s.destroyed) yield [peer, s];
}

export function connectionHandlers(d: Daemon): Pick<Handlers, ConnectionMethod> {
  return {
    connections: () => ({
      connections: [...openStreams(d)].map(([peer, s]) => describe(d, peer, s)).sort((a, b) => a.id - b.id),
    }),

    disconnect: (p) => {
      for (const [peer, s] of openStreams(d)) {
        if (s.serial !== p.id) continue;
        const info = describe(d, peer, s);
        // both directions are reset with AppCode.Disconnected: the peer's end fails saying why, as does ours
        s.destroy(new StreamDisconnected(s.serial));
        return info;
      }
      throw new PilotError('NOT_FOUND', `no open connection ${p.id}`, 'see: pilotctl connections (the stream may have closed already)');
    },

    traceroute: async (p, ctx) => {
      const peer = await d.peerFor(p.target);
      const probe = { count: p.count, intervalMs: 0, timeoutMs: p.timeoutMs, stopped: () => ctx.isClosed() };
      // the tunnel first: a new peer's session (and its path choice) is set up by the first probes
      const tunnel = await echoProbe(d, peer, probe);
      const path = d.pathInfo(peer);
      const rendezvous: number[] = [];
      for (let i = 0; i < p.count && !ctx.isClosed(); i++) {
        const ms = await d.rendezvousRtt().catch(() => undefined);
        if (ms !== undefined) rendezvous.push(ms);
      }
      const registry = d.config.registry;
      const leg = (name: TraceLeg['leg'], endpoint: string, rtts: number[]): TraceLeg => ({
        leg: name,
        endpoint,
        sent: p.count,
        received: rtts.length,
        ...rttSummary(rtts),
      });
      const tunnelLeg = leg('tunnel', path.pathType === 'direct' && path.endpoint ? path.endpoint : registry, tunnel);
      const rvLeg = leg('rendezvous', registry, rendezvous);
      const relayed = path.pathType === 'relay';
      const peerLegMs =
        relayed && tunnelLeg.avgMs !== null && rvLeg.avgMs !== null ? Math.max(0, Math.round((tunnelLeg.avgMs - rvLeg.avgMs) * 1000) / 1000) : null;
      const name = peer.hostname ?? formatAddress(peer.address);
      return {
        target: formatAddress(peer.address),
        hostname: peer.hostname ?? null,
        ...path,
        rendezvous: { address: registry, uplink: d.uplinkKind, serverKey: d.rendezvousKey, online: d.registryOnline },
        peerLegMs,
        legs: [tunnelLeg, rvLeg],
        hops: relayed
          ? [
              { hop: 1, name: `relay ${registry} (${path.relay ?? d.uplinkKind})`, endpoint: registry, rttMs: rvLeg.avgMs },
              { hop: 2, name, endpoint: null, rttMs: tunnelLeg.avgMs },
            ]
          : [{ hop: 1, name, endpoint: path.endpoint, rttMs: tunnelLeg.avgMs }],
      };
    },
  };
}
