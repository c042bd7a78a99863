// Streams and datagrams between our virtual ports and our peers' ones, over
// each peer's Connection: what goes out (dial, datagrams, echo replies) and
// what comes in (streams to a listener, datagrams to the port table), each
// gated by the access policy (access-policy.ts) and counted when refused.
import type { Stream } from '../transport/stream.ts';
import { formatAddress, type Address } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import type { AccessPolicy } from './access-policy.ts';
import type { IncomingStream, PortTable } from './ports.ts';
import type { Peer } from './peer-table.ts';
import { ECHO_PORT } from './services/echo.ts';

export interface PeerTrafficHost {
  readonly counters: { refusedUntrusted: number };
  readonly access: Pick<AccessPolicy, 'mayAcceptStream' | 'mayReceiveDatagram' | 'mayOpenStream' | 'sendRefusal' | 'policyRefusal' | 'proofPending'>;
  readonly ports: PortTable;
  /** The peer for a target, from the cache or the registry (peer-table.ts). */
  peerFor(target: string | Address): Promise<Peer>;
  /** A known peer by address resolved within the TTL, without a registry round trip. */
  freshPeer(to: string | Address): Peer | undefined;
}

/**
 * Fleets: a co-member's MEMBERSHIP proof goes out first on a new session, but may arrive after
 * its first packets (they can take the direct path while the proof took the relay). A refused
 * stream or datagram of a listed-but-unproven co-member is re-checked every HOLD_STEP_MS, for
 * at most HOLD_TRIES steps; at most MAX_HELD at once (beyond: refused at once).
 */
const HOLD_STEP_MS = 100;
const HOLD_TRIES = 10;
const MAX_HELD = 256;

export class PeerTraffic {
  private readonly host: PeerTrafficHost;
  private held = 0;

  constructor(host: PeerTrafficHost) {
    this.host = host;
  }

  /** A stream a peer opened to one of our ports: to its listener, if the policy lets it in. */
  incomingStream(from: Address, stream: IncomingStream): void {
    stream.on('error', () => {}); // a refusal below errors with nobody listening: must not crash an SDK-embedded node
    this.gate(
      from,
      () => this.host.access.mayAcceptStream(from, stream.localPort),
      () => this.acceptStream(from, stream),
      () => stream.destroy(new PilotError('NOT_TRUSTED', 'peer is not trusted')),
    );
  }

  private acceptStream(from: Address, stream: IncomingStream): void {
    const handler = this.host.ports.streamHandler(stream.localPort);
    if (!handler) {
      stream.destroy(new PilotError('CONNECTION_REFUSED', `nothing listens on virtual port ${stream.localPort}`));
      return;
    }
    handler(stream, from);
  }

  /** A datagram a peer sent to one of our ports: to the port table, if the policy lets it in. */
  incomingDatagram(from: Address, dg: { srcPort: number; dstPort: number; data: Buffer }): void {
    this.gate(
      from,
      () => this.host.access.mayReceiveDatagram(from, dg.srcPort, dg.dstPort),
      () => this.host.ports.deliverDatagram({ from, ...dg }),
      () => {},
    );
  }

  /** pass() if allowed now, or (a co-member's proof on its way) within HOLD_TRIES steps; else refuse(), counted. */
  private gate(from: Address, allowed: () => boolean, pass: () => void, refuse: () => void): void {
    if (allowed()) return pass();
    if (this.held >= MAX_HELD || !this.host.access.proofPending(from)) {
      this.host.counters.refusedUntrusted++;
      return refuse();
    }
    this.held++;
    let tries = 0;
    const again = (): void => {
      if (allowed()) {
        this.held--;
        return pass();
      }
      if (++tries >= HOLD_TRIES || !this.host.access.proofPending(from)) {
        this.held--;
        this.host.counters.refusedUntrusted++;
        return refuse();
      }
      setTimeout(again, HOLD_STEP_MS).unref();
    };
    setTimeout(again, HOLD_STEP_MS).unref();
  }

  private notTrusted(peer: Peer, port: number): PilotError {
    const nets = this.host.access.policyRefusal(peer.address, port);
    if (nets.length > 0)
      return new PilotError(
        'PERMISSION_DENIED',
        `the policy of network ${nets.join(', ')} does not let this node reach port ${port} of ${peer.hostname ?? formatAddress(peer.address)}`,
        `ask the network admin to allow it (pilotctl network policy ${nets[0]}), or use a port the policy allows`,
      );
    return new PilotError(
      'NOT_TRUSTED',
      `${formatAddress(peer.address)} is not a trusted peer`,
      `ask for trust first: pilotctl handshake ${peer.hostname ?? formatAddress(peer.address)}`,
    );
  }

  async dial(target: string | Address, port: number): Promise<Stream> {
    const peer = await this.host.peerFor(target);
    if (!this.host.access.mayOpenStream(peer.address, port)) throw this.notTrusted(peer, port);
    return peer.conn.openStream(port, this.host.ports.ephemeral());
  }

  sendDatagram(to: string | Address, srcPort: number, dstPort: number, data: Buffer): Promise<void> {
    // A known peer by address (ping): sent before returning, no wait for a promise hop.
    const known = this.host.freshPeer(to);
    if (known) {
      try {
        this.sendDatagramTo(known, srcPort, dstPort, data);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.host.peerFor(to).then((peer) => this.sendDatagramTo(peer, srcPort, dstPort, data));
  }

  /**
   * Best effort (echo replies): synchronous for a known peer, no promise per packet.
   * Not checked by the access policy: it answers a datagram the policy let in.
   */
  replyDatagram(to: Address, srcPort: number, dstPort: number, data: Buffer): void {
    const known = this.host.freshPeer(to);
    if (!known) {
      void this.host
        .peerFor(to)
        .then((peer) => this.sendDatagramTo(peer, srcPort, dstPort, data, true))
        .catch(() => {});
      return;
    }
    try {
      this.sendDatagramTo(known, srcPort, dstPort, data, true);
    } catch {
      // congested or too large: dropped, as datagrams are
    }
  }

  private sendDatagramTo(peer: Peer, srcPort: number, dstPort: number, data: Buffer, echoReply = false): void {
    const refusal = echoReply ? undefined : this.host.access.sendRefusal(peer.address, srcPort, dstPort);
    if (refusal === 'echo-source')
      throw new PilotError(
        'BAD_ARGUMENT',
        `source port ${ECHO_PORT} belongs to the echo service`,
        'send from another port (leave srcPort out for an ephemeral one)',
      );
    if (refusal === 'not-trusted') throw this.notTrusted(peer, dstPort);
    if (!peer.conn.sendDatagram(srcPort, dstPort, data)) {
      throw new PilotError(
        'BAD_ARGUMENT',
        `datagram of ${data.length} bytes not sent (too large or congested)`,
        'datagrams must fit one packet (about 1180 bytes); use a stream for more',
      );
    }
  }
}
