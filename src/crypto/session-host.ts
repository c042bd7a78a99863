// The session layer's contract with its host (the daemon, a test, a benchmark):
// what SessionManager<P> needs from whoever moves its packets, its options,
// and the events it emits. `P` is the host's path type (the daemon's Path,
// src/nat/path.ts): opaque to the session layer, handed back as it came.
import type { Address } from '../wire/address.ts';
import type { Identity } from './identity.ts';
import type { HandshakeSource } from './init-gate.ts';

/** What the manager needs from whoever moves its packets; `P` is that party's path type. */
export interface SessionHost<P> {
  /**
   * Deliver a packet to the peer. Takes ownership of `packet`. `via` is the path
   * given to sendVia() (path probes); otherwise undefined and the host picks the path.
   */
  send(peerKey: number, packet: Buffer, via?: P): void;
  /** Answer on the path a packet came from: used only for the 0x13 hint to unknown senders and cookie replies. */
  sendRaw?(packet: Buffer, path: P): void;
  /**
   * Is `publicKey` really the key bound to `address` (registry), and may it talk to us (trust)?
   * Without it, a message 1 is accepted unless we already know a different key for that address.
   */
  verifyPeer?(address: Address, publicKey: Buffer): boolean | Promise<boolean>;
  /**
   * Who sent a packet, as far as the underlay can tell: `bucket` is what the
   * per-source limits count by (an IP, or a relayed node's address), `cookie`
   * what a cookie is bound to (IP:port, or that node's address). Default: pathKey(path) for both.
   */
  sourceOf?(path: P): HandshakeSource;
  now?: () => number;
}

export interface SessionManagerOptions<P> extends SessionHost<P> {
  identity: Identity;
  localAddress: Address;
  bootId: Buffer; // 8 bytes, new on every start
  rekeyAfterMs?: number;
  rekeyAfterBytes?: number;
  handshakeRetryMs?: number;
  handshakeTimeoutMs?: number;
  /** How long a replaced session still decrypts (reordering, in-flight packets). */
  graceMs?: number;
  /** Plaintexts queued per peer while a handshake runs (oldest dropped beyond). */
  maxQueue?: number;
  /** Message 1s read per second at most (the rest are dropped as dropBusy). */
  maxInitsPerSecond?: number;
  /** Static keys whose newest hello timestamp is remembered (replay protection of message 1; default 65536). */
  maxHelloKeys?: number;
  /** Rate of message 1s (of the right size) above which a cookie (mac2) is required. */
  underLoadInitsPerSecond?: number;
  /** Message 1s read per second per source (burst: a quarter of it, at least 5); cookie replies per source are capped the same way. */
  sourceInitsPerSecond?: number;
}

export interface PeerRef {
  address: Address;
  publicKey: Buffer;
}

/** Payload of the 'session' event. */
export interface SessionEventInfo<P> {
  address: Address;
  publicKey: Buffer;
  bootId: Buffer;
  path: P;
}

/** The events and their arguments (a misspelt name or a wrong listener is a type error). */
export interface SessionEvents<P> {
  /** Authenticated data only; plaintext is a view into the packet; `now`: the manager's clock when it arrived (one read per packet for every listener). */
  message: [peerKey: number, plaintext: Buffer, path: P, now: number];
  /**
   * Initiator: message 2 authenticated; responder: message 1 accepted (before
   * message 2 is sent, so the daemon knows the peer).
   */
  session: [peerKey: number, info: SessionEventInfo<P>];
  /**
   * The peer's bootId changed: reset state kept above (always before that
   * session's 'session' and 'message's).
   */
  'peer-restarted': [peerKey: number];
  /** An authenticated packet arrived on `path`, at `now` (the manager's clock). */
  path: [peerKey: number, path: P, now: number];
  /** No answer within handshakeTimeoutMs; queue dropped. */
  'handshake-failed': [peerKey: number];
}
