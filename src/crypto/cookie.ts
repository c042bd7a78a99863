// Handshake DoS defence after WireGuard (whitepaper §5.4.4-5.4.7), with
// libsodium primitives only (keyed BLAKE2b, XChaCha20-Poly1305):
//
//  - mac1 = MAC(HASH("mac1----" || responder public key), message 1 so far).
//    Only someone who knows whom it talks to can write it; checking it costs
//    one hash, so random junk never reaches the Noise DH operations.
//  - Under load the responder also wants mac2 = MAC(cookie, message 1 so far),
//    where cookie = MAC(rotating secret, the sender's source). A sender that
//    lacks it gets a cookie reply instead of a handshake: only a sender that
//    really receives at that source can learn the cookie, so spoofed floods
//    never get past this point. The reply is smaller than the message that
//    triggered it (no amplification).
//  - The cookie travels encrypted (XChaCha20-Poly1305, key = HASH("cookie--" ||
//    responder public key), associated data = the mac1 of the message it
//    answers), so only the initiator that wrote that message can use it.
//
// Wire (src/wire/packet-types.ts):
//   0x10 [type][u32 senderIndex][Noise IK msg1][mac1 16][mac2 16]   (mac2 all zero = none)
//   0x14 [type][u32 receiverIndex][nonce 24][encrypted cookie 16 + tag 16]
import sodium from 'sodium-native';
import { PacketType } from '../wire/packet-types.ts';

export const MAC_BYTES = 16;
export const COOKIE_BYTES = 16;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
/** The cookie reply: type, receiver index, nonce, sealed cookie. */
export const COOKIE_REPLY_BYTES = 1 + 4 + NONCE_BYTES + COOKIE_BYTES + TAG_BYTES;
/** The responder's cookie secret changes this often (WireGuard: 2 minutes). */
export const COOKIE_SECRET_MS = 120_000;
/** An initiator stops using a cookie a little before the secret it was made with may rotate away. */
export const COOKIE_USE_MS = COOKIE_SECRET_MS - 5_000;

const LABEL_MAC1 = Buffer.from('mac1----');
const LABEL_COOKIE = Buffer.from('cookie--');

function hash32(label: Buffer, publicKey: Buffer): Buffer {
  const out = Buffer.alloc(32);
  sodium.crypto_generichash(out, Buffer.concat([label, publicKey]));
  return out;
}

function mac(key: Buffer, data: Buffer): Buffer {
  const out = Buffer.alloc(MAC_BYTES);
  sodium.crypto_generichash(out, data, key);
  return out;
}

/** Per-responder keys, derived from its public key (known to every honest initiator from the registry). */
export interface ResponderKeys {
  mac1Key: Buffer;
  cookieKey: Buffer;
}

export function responderKeys(publicKey: Buffer): ResponderKeys {
  return { mac1Key: hash32(LABEL_MAC1, publicKey), cookieKey: hash32(LABEL_COOKIE, publicKey) };
}

/**
 * Fill in the last 32 bytes of a message-1 packet: mac1 over everything before
 * it, and mac2 over everything before mac2 when we hold a cookie (else zeros).
 * Returns a copy of mac1 (the associated data of a cookie reply to this packet).
 */
export function stampMacs(pkt: Buffer, keys: ResponderKeys, cookie: Buffer | undefined): Buffer {
  const m1 = pkt.length - 2 * MAC_BYTES;
  const mac1 = mac(keys.mac1Key, pkt.subarray(0, m1));
  mac1.copy(pkt, m1);
  if (cookie === undefined) pkt.fill(0, m1 + MAC_BYTES);
  else mac(cookie, pkt.subarray(0, m1 + MAC_BYTES)).copy(pkt, m1 + MAC_BYTES);
  return mac1;
}

/** Initiator: the cookie inside a cookie reply to the packet whose mac1 was `mac1`, or null. */
export function openCookieReply(reply: Buffer, keys: ResponderKeys, mac1: Buffer): Buffer | null {
  if (reply.length !== COOKIE_REPLY_BYTES || reply[0] !== PacketType.HandshakeCookie) return null;
  const cookie = Buffer.alloc(COOKIE_BYTES);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, null, reply.subarray(5 + NONCE_BYTES), mac1, reply.subarray(5, 5 + NONCE_BYTES), keys.cookieKey);
    return cookie;
  } catch {
    return null;
  }
}

/** Responder side: checks mac1/mac2 of incoming message 1s and writes cookie replies. */
export class CookieChecker {
  private readonly keys: ResponderKeys;
  private readonly now: () => number;
  private secret = Buffer.alloc(32);
  /** The secret before the last rotation: a cookie handed out just before it still counts. */
  private previous: Buffer | undefined;
  private secretSince = -Infinity;

  constructor(publicKey: Buffer, now: () => number = Date.now) {
    this.keys = responderKeys(publicKey);
    this.now = now;
  }

  /** Is mac1 right? One keyed hash: the first thing done with any message 1. */
  mac1Ok(pkt: Buffer): boolean {
    const m1 = pkt.length - 2 * MAC_BYTES;
    if (m1 <= 0) return false;
    return sodium.sodium_memcmp(mac(this.keys.mac1Key, pkt.subarray(0, m1)), pkt.subarray(m1, m1 + MAC_BYTES));
  }

  /** Is mac2 right for a message 1 from `source` (it proves the sender receives there)? */
  mac2Ok(pkt: Buffer, source: string): boolean {
    const m2 = pkt.length - MAC_BYTES;
    const got = pkt.subarray(m2);
    if (m2 <= MAC_BYTES || got.every((b) => b === 0)) return false;
    this.rotate();
    for (const secret of [this.secret, this.previous]) {
      if (secret === undefined) continue;
      if (sodium.sodium_memcmp(mac(this.cookieFor(secret, source), pkt.subarray(0, m2)), got)) return true;
    }
    return false;
  }

  /** The cookie reply to a message 1 (`pkt`, mac1 already checked) from `source`. */
  reply(pkt: Buffer, source: string): Buffer {
    this.rotate();
    const out = Buffer.alloc(COOKIE_REPLY_BYTES);
    out[0] = PacketType.HandshakeCookie;
    pkt.copy(out, 1, 1, 5); // their sender index: how they find the handshake this answers
    const nonce = out.subarray(5, 5 + NONCE_BYTES);
    sodium.randombytes_buf(nonce);
    const m1 = pkt.length - 2 * MAC_BYTES;
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
      out.subarray(5 + NONCE_BYTES),
      this.cookieFor(this.secret, source),
      pkt.subarray(m1, m1 + MAC_BYTES),
      null,
      nonce,
      this.keys.cookieKey,
    );
    return out;
  }

  private cookieFor(secret: Buffer, source: string): Buffer {
    return mac(secret, Buffer.from(source));
  }

  private rotate(): void {
    const now = this.now();
    if (now - this.secretSince < COOKIE_SECRET_MS) return;
    // After a long quiet spell the old secret is too old to honour.
    this.previous = now - this.secretSince < 2 * COOKIE_SECRET_MS ? this.secret : undefined;
    this.secret = Buffer.alloc(32);
    sodium.randombytes_buf(this.secret);
    this.secretSince = now;
  }
}
