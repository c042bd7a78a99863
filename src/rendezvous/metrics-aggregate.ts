// Aggregates over the online index shared by /metrics and the dashboard: how
// many nodes are online, their NAT classes and the paths they report. Only
// counts leave this file - never an address, key or endpoint.
import { NAT_CLASSES } from '../registry/protocol.ts';
import { isOnline, type OnlineIndex } from './online-index.ts';

export type NatClass = (typeof NAT_CLASSES)[number];

export interface OnlineAggregate {
  online: number;
  /** Online nodes by the NAT class they reported ('unknown' until they report one). */
  nat: Record<NatClass, number>;
  /** Peer paths reported by online nodes: direct (hole punched / LAN) vs through the relay. */
  paths: { direct: number; relay: number };
}

export function aggregateOnline(index: OnlineIndex, now = Date.now()): OnlineAggregate {
  const nat = Object.fromEntries(NAT_CLASSES.map((c) => [c, 0])) as Record<NatClass, number>;
  const paths = { direct: 0, relay: 0 };
  let online = 0;
  for (const e of index.entries()) {
    if (!isOnline(e, now)) continue;
    online++;
    nat[e.report?.nat ?? 'unknown']++;
    paths.direct += e.report?.paths?.direct ?? 0;
    paths.relay += e.report?.paths?.relay ?? 0;
  }
  return { online, nat, paths };
}
