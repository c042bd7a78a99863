// Who may reach which virtual port: the one place the daemon decides it.
//
// Zero trust: a trusted peer may use every port. An untrusted peer may only
// use echo (port 7), and only with public nodes:
// - requests TO port 7 of a public node (datagram or stream);
// - replies FROM port 7 that answer an echo request we sent, matched by
//   peer + our source port like a conntrack entry (bounded, expiring).
// Fleets (issue 18): a verified co-member of one of our networks may reach a
// port when that network's admin-signed policy lets its credential tags reach
// ours (coMemberMayReach, networks.ts); we may open to / send to a co-member
// when the policy, as the receiver will evaluate it, lets us (coMemberMayOpen).
// Echo replies from a co-member we pinged get in like a public node's.
// Nothing else: in particular a datagram whose source port is 7 is not a
// pass (anyone can write 7 into a header), and a local client may not send
// from port 7 (it belongs to the echo service, whose replies go out through
// their own path, never through these checks).
import { addressKey, type Address } from '../wire/address.ts';
import { ECHO_PORT } from './services/echo.ts';

export interface AccessHost {
  isTrusted(peer: Address): boolean;
  /** This node is public (pingable by anyone). */
  amPublic(): boolean;
  /** The registry says the peer is public. */
  peerIsPublic(peer: Address): boolean;
  /** Fleets: a verified co-member whose network policy lets it reach our `localPort`. */
  coMemberMayReach?(peer: Address, localPort: number): boolean;
  /**
   * Fleets: may we reach a (claimed or verified) co-member's `remotePort`, as its network policy
   * will see it? true; or the networks whose policy refuses; or 'no-network' (none shared).
   */
  coMemberOutgoing?(peer: Address, remotePort: number): true | { refusedBy: string[] } | 'no-network';
  /** Fleets: the rendezvous lists the peer as a co-member, but it has not proved it yet (its proof may trail its first packets). */
  coMemberProofPending?(peer: Address): boolean;
}

export interface AccessOptions {
  now?: () => number;
  /** Echo requests remembered at once (oldest forgotten first). */
  maxEchoRequests?: number;
  /** How long an echo reply is accepted after its request (ms). */
  echoReplyMs?: number;
}

/** Why a local client may not send a datagram; undefined = it may. */
export type SendRefusal = 'not-trusted' | 'echo-source';

export const DEFAULT_MAX_ECHO_REQUESTS = 4096;
/** Longer than the longest ping timeout (60 s). */
export const DEFAULT_ECHO_REPLY_MS = 65_000;

export class AccessPolicy {
  private readonly host: AccessHost;
  private readonly now: () => number;
  private readonly maxEcho: number;
  private readonly echoMs: number;
  /** "peerKey/ourPort" -> expiry; Map order = insertion order, refreshed entries move to the end. */
  private readonly echoRequests = new Map<string, number>();

  constructor(host: AccessHost, opts: AccessOptions = {}) {
    this.host = host;
    this.now = opts.now ?? Date.now;
    this.maxEcho = opts.maxEchoRequests ?? DEFAULT_MAX_ECHO_REQUESTS;
    this.echoMs = opts.echoReplyMs ?? DEFAULT_ECHO_REPLY_MS;
  }

  /** A datagram that arrived from `peer`: deliver it to our `dstPort`? */
  mayReceiveDatagram(peer: Address, srcPort: number, dstPort: number): boolean {
    // Echo answering echo would loop forever between two echo services.
    if (srcPort === ECHO_PORT && dstPort === ECHO_PORT) return false;
    if (this.host.isTrusted(peer)) return true;
    if (this.host.coMemberMayReach?.(peer, dstPort) === true) return true;
    if (dstPort === ECHO_PORT) return this.host.amPublic();
    if (srcPort === ECHO_PORT) return (this.host.peerIsPublic(peer) || this.coMemberMayOpen(peer, ECHO_PORT)) && this.echoPending(peer, dstPort);
    return false;
  }

  /**
   * A local client (IPC, SDK, ping) sends a datagram. Allowed echo requests
   * are remembered so that their replies get in.
   */
  sendRefusal(peer: Address, srcPort: number, dstPort: number): SendRefusal | undefined {
    if (srcPort === ECHO_PORT) return 'echo-source';
    if (this.host.isTrusted(peer)) return undefined;
    const member = this.coMemberMayOpen(peer, dstPort);
    if (member && dstPort !== ECHO_PORT) return undefined;
    if (dstPort !== ECHO_PORT || !(member || this.host.peerIsPublic(peer))) return 'not-trusted';
    this.noteEchoRequest(peer, srcPort);
    return undefined;
  }

  /** A stream the peer opened to our `localPort`. */
  mayAcceptStream(peer: Address, localPort: number): boolean {
    return this.host.isTrusted(peer) || this.host.coMemberMayReach?.(peer, localPort) === true || (localPort === ECHO_PORT && this.host.amPublic());
  }

  /** A stream we open to the peer's `remotePort`. */
  mayOpenStream(peer: Address, remotePort: number): boolean {
    return this.host.isTrusted(peer) || this.coMemberMayOpen(peer, remotePort) || (remotePort === ECHO_PORT && this.host.peerIsPublic(peer));
  }

  /** Worth holding a refused packet of this peer a moment: its membership proof may be on its way. */
  proofPending(peer: Address): boolean {
    return this.host.coMemberProofPending?.(peer) === true;
  }

  /** The network policies that refuse us `remotePort` at a co-member (for the error's hint); empty: none does. */
  policyRefusal(peer: Address, remotePort: number): string[] {
    const r = this.host.coMemberOutgoing?.(peer, remotePort);
    return typeof r === 'object' ? r.refusedBy : [];
  }

  private coMemberMayOpen(peer: Address, port: number): boolean {
    return this.host.coMemberOutgoing?.(peer, port) === true;
  }

  /** Echo requests remembered now (for tests and stats). */
  get pendingEchoRequests(): number {
    return this.echoRequests.size;
  }

  private noteEchoRequest(peer: Address, ourPort: number): void {
    const k = `${addressKey(peer)}/${ourPort}`;
    this.echoRequests.delete(k);
    this.echoRequests.set(k, this.now() + this.echoMs);
    // Bounded: the oldest requests go first (their pings have long given up).
    while (this.echoRequests.size > this.maxEcho) this.echoRequests.delete(this.echoRequests.keys().next().value!);
  }

  private echoPending(peer: Address, ourPort: number): boolean {
    const k = `${addressKey(peer)}/${ourPort}`;
    const until = this.echoRequests.get(k);
    if (until === undefined) return false;
    if (this.now() <= until) return true;
    this.echoRequests.delete(k);
    return false;
  }
}
