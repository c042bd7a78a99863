// Result and event shapes of the daemon's IPC methods (the JSON in a reply's
// `result` and an event's `data`). One definition for all three ends: the
// daemon's handlers must return these (src/ipc/server.ts types them), the SDK
// re-exports them as its public types (src/sdk/types.ts, service-types.ts), and
// pilotctl prints them. Renaming a field here is a type error at every end.
import type { ErrorCode } from '../util/errors.ts';
import type { MappingInfo } from '../gateway/gateway.ts';
import type { PortMap } from '../gateway/port-spec.ts';
import type { FileSent, MessageSent } from '../services/data-exchange.ts';
import type { InboxMessage } from '../services/inbox.ts';
import type { ReceivedFile } from '../services/received-files.ts';

// Records owned by the services and the gateway, part of the contract as they are:
export type { ExposeInfo } from '../gateway/expose.ts';
export type { MappingInfo } from '../gateway/gateway.ts';
export type { PortMap } from '../gateway/port-spec.ts';
export type { FileProgress } from '../services/data-exchange.ts';
export type { InboxMessage, MessageType } from '../services/inbox.ts';
export type { PubSubEvent } from '../services/pubsub.ts';
export type { ReceivedFile } from '../services/received-files.ts';
export type { StdioMessage, StdioStats } from '../services/stdio.ts';
export type { Task, TaskRole, TaskStatus } from '../services/task-store.ts';
export type { TaskChange } from '../services/tasks.ts';
export type { WebhookStatus } from '../services/webhook.ts';

// ---- this node, its peers ----

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
  /** What peers are told to probe, best first: the gateway's mapping, the endpoint the rendezvous saw, LAN endpoints. */
  candidates?: { endpoint: string; kind: 'mapped' | 'observed' | 'lan' }[];
  /** The gateway's port mapping of the daemon's UDP socket (src/nat/portmap/portmapper.ts PortMapStatus). */
  portmap?: {
    enabled: boolean;
    state?: string;
    protocol?: string | null;
    gateway?: string | null;
    external?: string | null;
    internalPort?: number;
    lifetimeSec?: number | null;
    expiresInSec?: number | null;
    renewals?: number;
    gatewayRestarts?: number;
    ignored?: number;
    error?: { code: string; message: string; hint: string } | null;
  };
  /** Interfaces left out of the candidates: another overlay's tunnel (issue 19), with why. */
  excludedInterfaces?: Array<{ name: string; reason: string }>;
}

/** How a peer is reached now. */
export interface PathInfo {
  /** e.g. "direct 192.0.2.7:4000" or "relay (udp)". */
  path: string;
  pathType: 'direct' | 'relay' | 'none';
  endpoint: string | null;
  relay: string | null;
  /** The local interface a direct path leaves by (e.g. "eth0"); null on the relay or when unknown. */
  via?: string | null;
}

export interface PeerInfo extends PathInfo {
  address: string;
  hostname: string | null;
  rttMs: number;
  bytesSent: number;
  bytesReceived: number;
  streams: number;
  lastSeenMsAgo: number | null;
  /**
   * Size on the wire (IP datagram bytes, headers included) of the peer's full-size packets now: 1500
   * fills an Ethernet MTU. Starts at the 1280-safe size on remote paths and grows as probes pass.
   */
  mtu: number;
  /** Path MTU discovery: off (relay, on-link or no route cache), searching, done, or fell back after a black hole. */
  mtuState: MtuState;
}

export type MtuState = 'disabled' | 'searching' | 'done' | 'black-hole';

export interface FoundNode {
  address: string;
  hostname: string | null;
  public: boolean;
  online: boolean;
  publicKey: string;
}

export interface PingResult extends PathInfo {
  target: string;
  hostname: string | null;
  sent: number;
  received: number;
  lossPct: number;
  minMs: number | null;
  avgMs: number | null;
  maxMs: number | null;
}

/** One echo round of `ping` (event 'probe'). */
export interface PingProbe {
  seq: number;
  ok: boolean;
  rttMs: number | null;
  path: string;
}

export interface DaemonStats {
  /** Per peer: its connection's counters and whether a session is up (shape owned by src/transport). */
  sessions: unknown;
  daemon: {
    garbage: number;
    relayIn: number;
    relayOut: number;
    udpIn: number;
    udpOut: number;
    /** UDP GSO sends (one system call, many packets) and the packets in them; 0 without the addon (src/util/udp-gso.ts). */
    gsoSends: number;
    gsoPackets: number;
    /** Batched receives (one recvmmsg, one JavaScript call, many packets) and the packets in them; 0 without the addon (src/util/udp-receiver.ts). */
    rxBatches: number;
    rxBatchPackets: number;
    refusedUntrusted: number;
    untrustedEvicted: number;
  };
  /** Registry lookups of handshaking peers' keys. */
  verifier: { lookups: number; shared: number; refusedCached: number; limited: number };
}

/** One open stream (`pilotctl connections`). */
export interface ConnectionInfo {
  /** Unique in the daemon; `pilotctl disconnect <id>` takes it. */
  id: number;
  peer: string;
  hostname: string | null;
  localPort: number;
  remotePort: number;
  /** outgoing: this node opened it (dial); incoming: the peer did. */
  direction: 'outgoing' | 'incoming';
  /** open; or half-closed: one direction finished (FIN sent or received), the other still flowing. */
  state: 'open' | 'half-closed';
  /** Bytes delivered to the application here, and bytes the peer acknowledged. */
  bytesIn: number;
  bytesOut: number;
  ageMs: number;
  idleMs: number;
  /** The peer's path now (PathInfo): direct IP:PORT or relay. */
  path: string;
  pathType: PathInfo['pathType'];
}

/** One leg of a traceroute: its RTT over `count` probes (null: no answer). */
export interface TraceLeg {
  /** 'rendezvous': this node to its rendezvous (the relay is the same server); 'tunnel': end to end, through the encrypted session. */
  leg: 'rendezvous' | 'tunnel';
  /** host:port probed (the rendezvous; for the tunnel, the peer's underlay endpoint when direct, else the relay). */
  endpoint: string;
  sent: number;
  received: number;
  minMs: number | null;
  avgMs: number | null;
  maxMs: number | null;
}

export interface TraceResult extends PathInfo {
  target: string;
  hostname: string | null;
  /** The rendezvous (registry, beacon and relay) this node uses, and how it reaches it. */
  rendezvous: { address: string; uplink: string; serverKey: string | null; online: boolean };
  /** Through the relay only: the peer's side (relay to peer and back) = tunnel - rendezvous leg, an estimate. */
  peerLegMs: number | null;
  legs: TraceLeg[];
  /** Each hop in order, for humans: this node, [relay], the peer. */
  hops: Array<{ hop: number; name: string; endpoint: string | null; rttMs: number | null }>;
}

/** One member's outcome in a broadcast. */
export interface BroadcastMember {
  address: string;
  hostname: string | null;
  /** sent; refused: the network policy does not let us reach that port; offline; failed: sending raised an error (see code). */
  result: 'sent' | 'refused' | 'offline' | 'failed' | 'skipped';
  code?: string;
}

export interface BroadcastResult {
  net: number;
  name: string;
  port: number;
  bytes: number;
  /** Per result, how many members. */
  counts: Record<BroadcastMember['result'], number>;
  members: BroadcastMember[];
}

// ---- trust ----

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

// ---- datagrams, streams ----

/** A datagram as `recv` reports it. */
export interface RecvDatagram {
  from: string;
  srcPort: number;
  data: string;
  dataBase64: string;
}

/** A datagram as `sdk_recv` streams it. */
export interface SdkDatagram {
  from: string;
  srcPort: number;
  dataBase64: string;
}

/** A stream waiting for accept (event 'connection' of listen / sdk_listen). */
export interface IncomingConnection {
  id: string;
  from: string;
  remotePort: number;
  port: number;
}

/** The first answer of an sdk_dial pipe. */
export interface SdkDialed {
  pipe: string;
  remoteAddress: string;
  remoteHostname: string | null;
  remotePort: number;
  localPort: number;
}

/** The first answer of an sdk_accept pipe. */
export interface SdkAccepted {
  pipe: string;
  localPort: number;
  remotePort: number;
}

export interface IpcErrorJson {
  code: ErrorCode;
  message: string;
  hint?: string;
}

/** Events of the `events` subscription (SDK PilotNode events). */
export interface NodeEvents {
  'peer-up': { address: string; hostname: string | null };
  'peer-down': { address: string; hostname: string | null; reason: string };
  /** A peer's path changed: its PeerInfo path fields, and why. */
  path: Pick<PeerInfo, 'address' | 'hostname' | 'path' | 'pathType' | 'endpoint' | 'relay'> & { reason: string };
  'trust-request': { from: string; hostname: string | null; reason: string | null; created?: number };
  'trust-approved': { peer: string; hostname: string | null };
  'trust-rejected': { peer: string; reason: string | null };
  'trust-revoked': { peer: string };
}

// ---- gateway, expose ----

export type GatewayMapping = MappingInfo & { trusted: boolean };

export interface GatewayState {
  running: boolean;
  subnet: string | null;
  ports: PortMap[];
  privileges: { netAdmin: boolean; bindLow: boolean; unprivilegedPortStart: number };
  mappings: GatewayMapping[];
}

// ---- built-in services ----

/** An inbox message; messages of type json also carry the parsed value (null if it does not parse). */
export type InboxEntry = InboxMessage & { json?: unknown };

/** A message the peer stored in its inbox (port 1001); `target` is the target as given. */
export type SendMessageResult = { target: string } & MessageSent;

/** A file the peer verified (sha256) and stored in its received/ directory; `file` is the absolute path sent. */
export type SendFileResult = { target: string; file: string } & FileSent;

export interface ReceivedList {
  /** The directory the files are in ($PILOT_HOME/received). */
  dir: string;
  count: number;
  files: ReceivedFile[];
}

export interface PublishResult {
  target: string;
  /** The broker's virtual address (this node's when publishing locally). */
  peer: string;
  topic: string;
  /** How many subscribers got the event. */
  delivered: number;
}

export interface PubSubStatus {
  subscribers: number;
  published: number;
}

export interface WebhookSet {
  url: string;
  /** Signs every POST: X-Pilot-Signature = "sha256=" + hex HMAC-SHA256(secret, raw body). */
  secret: string;
}

// ---- fleets (issue 18) ----

export interface NetworkInfo {
  net: number;
  name: string;
  /** We administer it. */
  admin: boolean;
  /** We are a member (our daemon joined with an invite); the admin is not one by itself. */
  member: boolean;
  tags: string[];
  members: number;
  ephemeral: boolean;
  /** Our address in it (N:…), when a member. */
  address: string | null;
}

export interface NetworkMemberInfo {
  /** N:XXXX.YYYY.YYYY */
  address: string;
  hostname: string | null;
  tags: string[];
  selfTags?: string[];
  online: boolean;
  ephemeral?: boolean;
  /** It proved its membership to this node over a session (credential + ticket). */
  verified?: boolean;
}

export interface NetworkInviteInfo {
  inviteId: string;
  tags: string[];
  uses: number;
  used: number;
  exp: number;
  ephemeral: boolean;
  revoked: boolean;
}

export interface NetworkAuditEntry {
  seq: number;
  ts: number;
  actor: string;
  action: string;
  detail: Record<string, unknown>;
  verified?: boolean;
}

// ---- key rotation (issue 18) ----

/** `pilotctl rotate-key`: the address kept, the key it now speaks with, the one it replaced. */
export interface KeyRotation {
  address: string;
  publicKey: string;
  oldKey: string;
  /** The rendezvous had this rotation already (a retry after a lost answer or a crash). */
  already: boolean;
}

/** pilotctl deregister: what the rendezvous did, and the daemon stopping (issue 18). */
export interface Deregistered {
  address: string;
  /** true: an ephemeral node, removed (address and hostname released, never handed out again); false: the address stays bound to the key, hidden until it registers again; the hostname is released. */
  removed: boolean;
  stopping: true;
  pid: number;
}
