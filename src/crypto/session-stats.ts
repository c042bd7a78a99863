// Counters of the session layer (all parts count into one object, read by the
// daemon's metrics) and the per-peer snapshot behind `pilotctl peers`.
import type { SessionRole } from './session.ts';

export interface SessionInfo {
  established: boolean;
  role: SessionRole | null;
  /** When the current session was established (opts.now() clock). */
  establishedAt: number | null;
  ageMs: number | null;
  localIndex: number | null;
  remoteIndex: number | null;
  sendCounter: number;
  bytesSent: number;
  highestReceived: number;
  handshaking: boolean;
  handshakeAttempts: number;
  queued: number;
  rekeys: number;
  previousSessions: number;
  unconfirmedSessions: number;
  remoteBootId: string | null;
}

export interface SessionStats {
  dropMalformed: number;
  dropAuth: number;
  dropReplay: number;
  dropExpired: number;
  dropUnknownIndex: number;
  dropStaleHandshake: number;
  dropRejectedPeer: number;
  dropTieBreak: number;
  dropBusy: number;
  /** Message 1 with a wrong mac1 (not written for our key: junk). */
  dropMac1: number;
  /** Message 1 over its source's share (sourceInitsPerSecond). */
  dropSourceLimited: number;
  cookieRepliesSent: number;
  /** Under load, a message 1 without a valid cookie whose source was already sent its share of cookie replies. */
  cookieRepliesLimited: number;
  cookieRepliesReceived: number;
  dropQueueOverflow: number;
  dropNoSession: number;
  handshakesInitiated: number;
  handshakeRetries: number;
  handshakesResponded: number;
  handshakesCompleted: number;
  handshakesFailed: number;
  rekeys: number;
  peerRestarts: number;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  keepalivesIn: number;
  keepalivesOut: number;
  hintsSent: number;
  hintsReceived: number;
  hintRehandshakes: number;
  sendErrors: number;
  listenerErrors: number;
  internalErrors: number;
}

export function newSessionStats(): SessionStats {
  return {
    dropMalformed: 0,
    dropAuth: 0,
    dropReplay: 0,
    dropExpired: 0,
    dropUnknownIndex: 0,
    dropStaleHandshake: 0,
    dropRejectedPeer: 0,
    dropTieBreak: 0,
    dropBusy: 0,
    dropMac1: 0,
    dropSourceLimited: 0,
    cookieRepliesSent: 0,
    cookieRepliesLimited: 0,
    cookieRepliesReceived: 0,
    dropQueueOverflow: 0,
    dropNoSession: 0,
    handshakesInitiated: 0,
    handshakeRetries: 0,
    handshakesResponded: 0,
    handshakesCompleted: 0,
    handshakesFailed: 0,
    rekeys: 0,
    peerRestarts: 0,
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    keepalivesIn: 0,
    keepalivesOut: 0,
    hintsSent: 0,
    hintsReceived: 0,
    hintRehandshakes: 0,
    sendErrors: 0,
    listenerErrors: 0,
    internalErrors: 0,
  };
}
