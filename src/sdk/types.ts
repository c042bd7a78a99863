// Shapes of what a PilotNode returns and emits (the daemon's IPC answers, as JSON).

export interface NodeInfo {
  address: string;
  hostname: string | null;
  email: string;
  public: boolean;
  publicKey: string;
  registry: string;
  registryOnline: boolean;
  observed: string | null;
  nat: string;
  uplink: string;
  socket: string;
  home: string;
  pid: number;
  version: string;
  uptimeSec: number;
  peers: number;
}

export interface PeerInfo {
  address: string;
  hostname: string | null;
  /** e.g. "direct 192.0.2.7:4000" or "relay (udp)". */
  path: string;
  pathType: 'direct' | 'relay' | 'none';
  endpoint: string | null;
  relay: string | null;
  rttMs: number;
  bytesSent: number;
  bytesReceived: number;
  streams: number;
  lastSeenMsAgo: number | null;
}

export interface FoundNode {
  address: string;
  hostname: string | null;
  public: boolean;
  online: boolean;
  publicKey: string;
}

export interface PingResult {
  target: string;
  hostname: string | null;
  path: string;
  sent: number;
  received: number;
  lossPct: number;
  minMs: number | null;
  avgMs: number | null;
  maxMs: number | null;
}

export interface TrustAnswer {
  status: string;
  peer: string;
}

export interface TrustedPeer {
  peer: string;
  hostname: string | null;
  since: number;
  mutual: boolean;
}

export interface PendingTrust {
  incoming: Array<{ from: string; hostname: string | null; reason: string | null; created: number }>;
  outgoing: Array<{ to: string; hostname: string | null; reason: string | null; created: number }>;
}

/** Events a PilotNode emits (after watch(), or as soon as a listener is added). */
export interface PilotNodeEvents {
  'peer-up': [e: { address: string; hostname: string | null }];
  'peer-down': [e: { address: string; hostname: string | null; reason: string }];
  /** A peer's path changed: its PeerInfo path fields, and why. */
  path: [e: Pick<PeerInfo, 'address' | 'hostname' | 'path' | 'pathType' | 'endpoint' | 'relay'> & { reason: string }];
  'trust-request': [e: { from: string; hostname: string | null; reason: string | null; created?: number }];
  'trust-approved': [e: { peer: string; hostname: string | null }];
  'trust-rejected': [e: { peer: string; reason: string | null }];
  'trust-revoked': [e: { peer: string }];
  /** The event subscription ended because the daemon went away. */
  'events-lost': [error: Error];
}
