// Result and event shapes of the daemon's IPC methods (the JSON in a reply's
// `result` and an event's `data`). One definition for all three ends: the
// daemon's handlers must return these (src/ipc/server.ts types them), the SDK
// re-exports them as its public types (src/sdk/types.ts, service-types.ts), and
// pilotctl prints them. Renaming a field here is a type error at every end.
import type { ErrorCode } from '../util/errors.ts';

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
}

/** How a peer is reached now. */
export interface PathInfo {
  /** e.g. "direct 192.0.2.7:4000" or "relay (udp)". */
  path: string;
  pathType: 'direct' | 'relay' | 'none';
  endpoint: string | null;
  relay: string | null;
}

export interface PeerInfo extends PathInfo {
  address: string;
  hostname: string | null;
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
  daemon: { garbage: number; relayIn: number; relayOut: number; udpIn: number; udpOut: number; refusedUntrusted: number; untrustedEvicted: number };
  /** Registry lookups of handshaking peers' keys. */
  verifier: { lookups: number; shared: number; refusedCached: number; limited: number };
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

export interface PortMap {
  /** TCP port on the mapped local address. */
  local: number;
  /** Virtual port of the target agent. */
  virtual: number;
}

export interface MappingInfo {
  ip: string;
  target: string;
  ports: PortMap[];
  listening: boolean;
  alias: 'added' | 'none';
  error: string | null;
  connections: number;
  active: number;
  refused: number;
  notLocal: number;
  bytesIn: number;
  bytesOut: number;
  lastRefusal: { code: string; message: string; at: number } | null;
}

export type GatewayMapping = MappingInfo & { trusted: boolean };

export interface GatewayState {
  running: boolean;
  subnet: string | null;
  ports: PortMap[];
  privileges: { netAdmin: boolean; bindLow: boolean; unprivilegedPortStart: number };
  mappings: GatewayMapping[];
}

export interface ExposeInfo {
  port: number;
  target: string;
  listening: boolean;
  error: string | null;
  connections: number;
  active: number;
  refused: number;
  lastFrom: string | null;
}

// ---- built-in services ----

export type MessageType = 'text' | 'json' | 'binary';

export interface InboxMessage {
  id: string;
  from: string;
  type: MessageType;
  /** UTF-8 text (text, json) or base64 (binary). */
  data: string;
  encoding: 'utf8' | 'base64';
  size: number;
  sha256: string;
  receivedAt: number;
}

/** An inbox message; messages of type json also carry the parsed value (null if it does not parse). */
export type InboxEntry = InboxMessage & { json?: unknown };

/** A message the peer stored in its inbox (port 1001). */
export interface SendMessageResult {
  /** The target as given. */
  target: string;
  /** The peer's virtual address. */
  peer: string;
  /** The message's id in the peer's inbox. */
  id: string;
  type: MessageType;
  bytes: number;
  sha256: string;
}

export interface ReceivedFile {
  name: string;
  path: string;
  size: number;
  from: string | null;
  sha256: string | null;
  receivedAt: number;
}

export interface FileProgress {
  sent: number;
  size: number;
  resumedFrom: number;
}

/** A file the peer verified (sha256) and stored in its received/ directory. */
export interface SendFileResult {
  target: string;
  /** The absolute path that was sent. */
  file: string;
  peer: string;
  /** Its name in the peer's received/ directory (numbered if the name was taken). */
  name: string | null;
  bytes: number;
  sha256: string;
  /** > 0: a broken earlier transfer of the same file was resumed at this byte. */
  resumedFrom: number;
  seconds: number;
  hashSeconds: number;
  mbPerSec: number;
}

export interface ReceivedList {
  /** The directory the files are in ($PILOT_HOME/received). */
  dir: string;
  count: number;
  files: ReceivedFile[];
}

export interface PubSubEvent {
  topic: string;
  data: string;
  from: string;
  ts: number;
  seq: number;
  dropped?: number;
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

export interface StdioMessage {
  seq: number;
  from: string;
  via: 'stream' | 'datagram';
  /** UTF-8 text, or base64 when the bytes were not valid UTF-8. */
  data: string;
  encoding: 'utf8' | 'base64';
  bytes: number;
  truncated: boolean;
  receivedAt: number;
}

export interface StdioStats {
  queued: number;
  received: number;
  dropped: number;
  truncated: number;
  streams: number;
}

export type TaskStatus = 'submitted' | 'accepted' | 'declined' | 'executing' | 'completed';
export type TaskRole = 'received' | 'submitted';

export interface Task {
  id: string;
  role: TaskRole;
  /** The other side: who submitted it (received) or who runs it (submitted). */
  peer: string;
  description: string;
  status: TaskStatus;
  reason: string | null;
  results: string | null;
  createdAt: number;
  updatedAt: number;
  history: Array<{ status: TaskStatus; at: number }>;
  /** Receiver side: the submitter has not been told about the latest status yet. */
  notifyPending: boolean;
}

export interface TaskChange {
  task: Task;
  /** Did the submitter get the change already (false: it is retried in the background)? */
  notified: boolean;
}

export interface WebhookSet {
  url: string;
  /** Signs every POST: X-Pilot-Signature = "sha256=" + hex HMAC-SHA256(secret, raw body). */
  secret: string;
}

export interface WebhookStatus {
  url: string | null;
  queued: number;
  delivered: number;
  failed: number;
  dropped: number;
  retries: number;
  lastError: string | null;
}
