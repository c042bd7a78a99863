// GOODBYE (issue 18): a node that stops cleanly tells each peer it has a session with,
// inside that encrypted session, as QUIC's CONNECTION_CLOSE does for one connection:
// the peer's SDK 'peer-down' fires at once, its streams to us end, and its next dial
// fails fast (UNREACHABLE) instead of timing out on a handshake nobody answers.
// Inside the session means authenticated (AEAD with the session keys) and replay-proof
// (the session's replay window): nobody but the node itself can say it left.
//
//   [0x05 GOODBYE][version 1][reason u8: 0 = stopped, 1 = deregistered]
import { PilotError } from '../util/errors.ts';

/** Inner type byte of a session plaintext (0x00-0x03: src/nat/inner.ts; 0x04: networks.ts MEMBERSHIP). */
export const INNER_GOODBYE = 0x05;
const VERSION = 1;
export const GOODBYE_REASONS = ['stopped', 'deregistered'] as const;
export type GoodbyeReason = (typeof GOODBYE_REASONS)[number];

export function encodeGoodbye(reason: GoodbyeReason): Buffer {
  return Buffer.from([INNER_GOODBYE, VERSION, GOODBYE_REASONS.indexOf(reason)]);
}

/** Hostile input (an authenticated peer may still be buggy): undefined unless well formed. */
export function decodeGoodbye(b: Buffer): GoodbyeReason | undefined {
  if (b.length !== 3 || b[0] !== INNER_GOODBYE || b[1] !== VERSION) return undefined;
  return GOODBYE_REASONS[b[2]!];
}

/** Peers that said goodbye, remembered this long (ms) so a dial to them fails fast. */
export const GONE_MS = 60_000;
/** At most this many remembered (oldest dropped): a bounded cost per peer. */
export const MAX_GONE = 4096;

/**
 * Peers that said goodbye: address key -> when and why. A dial to one fails fast while the
 * rendezvous shows it offline; it is forgotten once it is back (online again, or a new
 * session from it) or after GONE_MS.
 */
export class GoneBook {
  private readonly gone = new Map<number, { at: number; reason: GoodbyeReason }>();

  note(key: number, reason: GoodbyeReason, now: number): void {
    this.gone.delete(key);
    this.gone.set(key, { at: now, reason });
    while (this.gone.size > MAX_GONE) this.gone.delete(this.gone.keys().next().value!);
  }

  clear(key: number): void {
    this.gone.delete(key);
  }

  /** Throws UNREACHABLE for a peer that said goodbye and is not back; forgets it once it is. */
  check(key: number, text: string, online: boolean, now: number): void {
    const g = this.gone.get(key);
    if (!g) return;
    if (online || now - g.at >= GONE_MS) {
      this.gone.delete(key);
      return;
    }
    const ago = Math.max(0, Math.round((now - g.at) / 1000));
    throw new PilotError(
      'UNREACHABLE',
      `peer ${text} is offline: it ${g.reason === 'deregistered' ? 'deregistered' : 'stopped'} ${ago} s ago`,
      g.reason === 'deregistered'
        ? 'it left the network; its address may not come back (ephemeral nodes get a new one): find another with pilotctl find'
        : 'it said goodbye when it stopped; retry once it is back (SDK peer-up event, or pilotctl find --online)',
    );
  }
}
