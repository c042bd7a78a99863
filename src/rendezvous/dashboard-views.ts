// What the dashboard's JSON API shows. The public summary is aggregates only
// plus the hostnames of public nodes; the admin view lists nodes but never the
// trust graph, and endpoints only of public nodes (a private node's endpoints
// are what its trust pairs are for).
import { formatAddress } from '../wire/address.ts';
import type { RegistryStore } from './store/store.ts';
import { aggregateOnline, type OnlineAggregate } from './metrics-aggregate.ts';
import { isOnline, type OnlineIndex } from './online-index.ts';
import type { RendezvousStats } from './server.ts';

export interface ViewSource {
  online: OnlineIndex;
  store: RegistryStore;
  stats(): RendezvousStats;
  /** Relayed bytes per second, recently. */
  relayBytesPerSec(): number;
}

export interface PublicSummary extends OnlineAggregate {
  relay: { bytesPerSec: number; bytesTotal: number; packetsTotal: number };
  registrations: number;
  /** Hostnames of online public nodes, sorted. */
  publicHostnames: string[];
  generatedAt: number;
}

export interface AdminNode {
  address: string;
  hostname: string | null;
  public: boolean;
  nat: string;
  online: boolean;
  lastSeen: number;
  /** How it was last heard ('tcp' includes WebSocket); null once its TCP connection closed. */
  link: 'udp' | 'tcp' | null;
  paths: { direct: number; relay: number } | null;
  punches: { tried: number; succeeded: number } | null;
  /** Public nodes only; [] for private ones. */
  endpoints: string[];
}

export async function publicSummary(src: ViewSource, now = Date.now()): Promise<PublicSummary> {
  const agg = aggregateOnline(src.online, now);
  const stats = src.stats();
  const publicHostnames: string[] = [];
  for (const e of [...src.online.entries()]) {
    if (!isOnline(e, now)) continue;
    const rec = await src.store.getByKey(Buffer.from(e.keyB64, 'base64'));
    if (rec?.active && rec.public && rec.hostname) publicHostnames.push(rec.hostname);
  }
  publicHostnames.sort();
  return {
    ...agg,
    relay: { bytesPerSec: Math.round(src.relayBytesPerSec()), bytesTotal: stats.relay.forwardedBytes, packetsTotal: stats.relay.forwarded },
    registrations: src.online.registrations,
    publicHostnames,
    generatedAt: now,
  };
}

/** Nodes heard from recently (the online index forgets nodes silent for 10 minutes), newest first. */
export async function adminNodes(src: ViewSource, now = Date.now()): Promise<AdminNode[]> {
  const out: AdminNode[] = [];
  for (const e of [...src.online.entries()]) {
    const rec = await src.store.getByKey(Buffer.from(e.keyB64, 'base64'));
    if (!rec?.active) continue;
    const observed = e.link?.kind === 'udp' ? [e.link.observed] : [];
    out.push({
      address: formatAddress(e.address),
      hostname: rec.hostname,
      public: rec.public,
      nat: e.report?.nat ?? 'unknown',
      online: isOnline(e, now),
      lastSeen: e.lastSeen,
      link: e.link?.kind ?? null,
      paths: e.report?.paths ?? null,
      punches: e.report?.punches ?? null,
      endpoints: rec.public ? [...new Set([...observed, ...e.lanEndpoints])] : [],
    });
  }
  return out.sort((a, b) => b.lastSeen - a.lastSeen);
}

export function adminStats(src: ViewSource): RendezvousStats & { punches: OnlineIndex['punchTotals'] } {
  return { ...src.stats(), punches: src.online.punchTotals };
}
