// Ed25519 sign/verify for registry statements. Stand-in for src/crypto/identity.ts
// (being written in parallel); same signatures so the switch is a one-line import.
import sodium from 'sodium-native';

export interface Identity {
  publicKey: Buffer; // 32 bytes
  secretKey: Buffer; // 64 bytes (sodium format: seed || public key)
}

export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;

export function generateIdentity(): Identity {
  const publicKey = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES);
  const secretKey = Buffer.alloc(sodium.crypto_sign_SECRETKEYBYTES);
  sodium.crypto_sign_keypair(publicKey, secretKey);
  return { publicKey, secretKey };
}

export function sign(msg: Buffer, secretKey: Buffer): Buffer {
  const sig = Buffer.alloc(sodium.crypto_sign_BYTES);
  sodium.crypto_sign_detached(sig, msg, secretKey);
  return sig;
}

/** Never throws: wrong lengths simply fail verification (input is hostile). */
export function verify(msg: Buffer, sig: Buffer, publicKey: Buffer): boolean {
  if (sig.length !== sodium.crypto_sign_BYTES || publicKey.length !== sodium.crypto_sign_PUBLICKEYBYTES) return false;
  try {
    return sodium.crypto_sign_verify_detached(sig, msg, publicKey);
  } catch {
    return false;
  }
}

export function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  sodium.randombytes_buf(b);
  return b;
}
