// What a rendezvous needs from its peers when several instances share one
// registry (scale-out): where a node that is not online here is online now,
// and a way to hand pushes, relay packets and cache invalidations to the
// instance concerned. One implementation: pg-cluster.ts (PostgreSQL presence
// table + LISTEN/NOTIFY + authenticated UDP relay forwarding).
import type { Address } from '../wire/address.ts';

/** A node online at another instance. */
export interface RemotePresence {
  instance: string;
  /** Its UDP endpoint as that instance saw it (null: heard over TCP/WebSocket). */
  observed: string | null;
  lanEndpoints: string[];
  lastSeen: number;
}

/** Where to send relay traffic for a node online at another instance. */
export interface RelayTarget {
  instance: string;
  host: string;
  port: number;
}

/** What arrives from the other instances. */
export interface ClusterEvents {
  push(to: Address, event: string, data: Record<string, unknown>): void;
  pairChanged(x: Address, y: Address): void;
  nodeChanged(a: Address): void;
}

export interface Cluster {
  readonly instanceId: string;
  /** A node was heard here (verified register/heartbeat). Written through when new or changed, else refreshed now and then. */
  present(p: { address: Address; observed: string | null; lanEndpoints: string[]; now: number }): Promise<void>;
  /** The node left (deregister). */
  absent(address: Address): Promise<void>;
  /** The node's presence at another instance, if it is online there. */
  locate(address: Address, now?: number): Promise<RemotePresence | undefined>;
  /** The same for many nodes in one lookup (a discovery page); keyed by addressKey, online ones only. */
  locateMany(addresses: Address[], now?: number): Promise<Map<number, RemotePresence>>;
  /** Cached locate for the relay's hot path: a value when cached, else a Promise. */
  relayTarget(address: Address, now?: number): RelayTarget | undefined | Promise<RelayTarget | undefined>;
  /** Sends a RelaySend packet from `src` (authenticated here) to the instance holding its destination. */
  sendRelay(target: RelayTarget, src: Address, relaySend: Buffer): boolean;
  /** Verifies a RelayForward packet from another instance. */
  receiveRelay(pkt: Buffer): { src: Address; relaySend: Buffer } | undefined;
  /** Asks the instance the node is online at to push to it; false when it is online nowhere. */
  pushRemote(to: Address, event: string, data: Record<string, unknown>): Promise<boolean>;
  broadcastPairChanged(x: Address, y: Address): void;
  broadcastNodeChanged(a: Address): void;
  /** Housekeeping (the server's 5 s sweeper): instance liveness, expiry. */
  tick(now: number): void;
  close(): Promise<void>;
}
