// Builds handshake message 1 packets the way an attacker (or a replaying
// on-path observer) would, for the security tests. Speaks the wire format of
// the tree under test: with src/crypto/cookie.ts present, message 1 carries
// mac1/mac2; without it (the code before the handshake-flood fix) it does not,
// so the same tests can be run against that code to show they fail there.
import crypto from 'node:crypto';
import { IkInitiator, MSG1_BYTES, type Hello } from '../../src/crypto/handshake.ts';
import type { Identity } from '../../src/crypto/identity.ts';

type CookieModule = typeof import('../../src/crypto/cookie.ts');
let cookieModule: CookieModule | null | undefined;

export async function macsSupported(): Promise<CookieModule | null> {
  if (cookieModule === undefined) cookieModule = await import('../../src/crypto/cookie.ts').catch(() => null);
  return cookieModule;
}

/** [0x10][u32 senderIndex][Noise IK msg1]([mac1][mac2] when the tree has them). */
export async function initPacket(identity: Identity, responderKey: Buffer, hello: Hello): Promise<Buffer> {
  const cookie = await macsSupported();
  const msg1 = new IkInitiator(identity, responderKey, hello).message1;
  const pkt = Buffer.alloc(5 + msg1.length + (cookie ? 2 * cookie.MAC_BYTES : 0));
  pkt[0] = 0x10;
  pkt.writeUInt32BE(crypto.randomBytes(4).readUInt32BE(0) || 1, 1);
  msg1.copy(pkt, 5);
  if (cookie) cookie.stampMacs(pkt, cookie.responderKeys(responderKey), undefined);
  return pkt;
}

/** A message 1 of the right size and a valid mac1 (the responder key is public), junk inside: costs DH work to find out. */
export async function junkInitPackets(responderKey: Buffer, count: number): Promise<Buffer[]> {
  const cookie = await macsSupported();
  const msg1Len = MSG1_BYTES;
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const pkt = crypto.randomBytes(5 + msg1Len + (cookie ? 2 * cookie.MAC_BYTES : 0));
    pkt[0] = 0x10;
    if (cookie) cookie.stampMacs(pkt, cookie.responderKeys(responderKey), undefined);
    out.push(pkt);
  }
  return out;
}
