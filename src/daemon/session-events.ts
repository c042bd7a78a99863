// What the daemon does with its session layer's events: each goes to the part that owns
// it (peer table, path manager, fleets), and the SDK hears of sessions coming and going.
import type { SessionManager } from '../crypto/session-manager.ts';
import { Inner } from '../nat/inner.ts';
import type { Path } from '../nat/path.ts';
import type { PathManager } from '../nat/path-manager.ts';
import { formatAddress, type Address } from '../wire/address.ts';
import type { Logger } from '../util/logger.ts';
import { INNER_MEMBERSHIP, type Networks } from './networks.ts';
import type { Peer, PeerTable } from './peer-table.ts';
import { decodeGoodbye, INNER_GOODBYE } from './goodbye.ts';

export interface SessionEventParts {
  log: Logger;
  sessions: SessionManager<Path>;
  peers: PeerTable;
  paths: PathManager;
  networks: Networks;
  /** SDK 'peer-up' / 'peer-down' (src/daemon/sdk-handlers.ts). */
  peerUp(address: Address): void;
  peerLost(address: Address, reason: string): void;
}

/** Our membership proofs to one peer (networks.ts; docs/ARCHITECTURE.md "Fleets in the daemon"). */
export function presentMemberships(sessions: SessionManager<Path>, networks: Networks, peer: Peer, only?: number): void {
  for (const msg of networks.presentations(peer.address, only)) sessions.sendTo({ address: peer.address, publicKey: peer.publicKey }, msg);
}

export function wireSessionEvents(x: SessionEventParts): void {
  const { sessions, peers, paths } = x;
  sessions.on('message', (peerKey, plaintext, via, now) => {
    const peer = peers.get(peerKey);
    if (!peer) return;
    peer.lastSeen = now; // the session manager's Date.now() for this packet: no second clock read per packet
    // First byte: the transport, a membership proof (fleets), or the path layer's own messages (probes, candidates).
    if (plaintext[0] === Inner.Transport) peer.conn.receivePacket(plaintext, 1);
    else if (plaintext[0] === INNER_MEMBERSHIP) {
      // A proof new to us: ours for that network back (the peer may be a member we did not know of yet).
      const net = x.networks.onMessage(peer.address, peer.publicKey, plaintext);
      if (net !== undefined) presentMemberships(sessions, x.networks, peer, net);
    } else if (plaintext[0] === INNER_GOODBYE) {
      // The peer stopped (goodbye.ts): authenticated by this session, so it is really the peer.
      const reason = decodeGoodbye(plaintext);
      const bye = reason ? peers.goodbye(peerKey, reason) : undefined;
      if (bye) {
        if (bye.hard) x.networks.forgetPeer(peer.address); // it proves its memberships again on a new session
        x.peerLost(peer.address, `peer ${reason}`);
      }
    } else paths.onInner(peerKey, plaintext, via);
  });
  sessions.on('session', (peerKey, info) => {
    peers.sessionUp(peerKey, info.address, info.publicKey, info.bootId);
    x.log.info({ peer: formatAddress(info.address) }, 'session established');
    x.peerUp(info.address);
    paths.onSession(peerKey);
    // Our memberships first on this session: an initiator's before its queued packets leave,
    // a responder's once message 2 has left (the session is announced to it before).
    const peer = peers.get(peerKey);
    if (peer && sessions.sessionInfo(peerKey)?.role === 'initiator') presentMemberships(sessions, x.networks, peer);
    else if (peer) setImmediate(() => presentMemberships(sessions, x.networks, peer));
  });
  sessions.on('path', (peerKey, p, now) => paths.onAuthenticated(peerKey, p, now));
  sessions.on('peer-restarted', (peerKey) => {
    const peer = peers.restarted(peerKey, sessions.sessionInfo(peerKey)?.remoteBootId);
    if (peer) {
      x.networks.forgetPeer(peer.address); // it proves its memberships again on the new session
      x.peerLost(peer.address, 'peer restarted');
    }
  });
  sessions.on('handshake-failed', (peerKey) => {
    const peer = peers.get(peerKey);
    if (!peer) return;
    // The peer may have moved: ask the registry again next time (its old session proves nothing now).
    peer.resolvedAt = 0;
    peer.lastSeen = 0;
    x.peerLost(peer.address, 'unreachable');
  });
}
