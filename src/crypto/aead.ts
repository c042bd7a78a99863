// ChaCha20-Poly1305 (IETF) from libsodium, with the nonce = 4 zero bytes +
// the 64-bit packet counter (as WireGuard), so a key never repeats a nonce.
import sodium from 'sodium-native';

export const KEY_BYTES = 32;
export const TAG_BYTES = 16;

const nonce = Buffer.alloc(12); // scratch: JS is single-threaded, calls are synchronous

function setNonce(counter: number): void {
  nonce.writeUInt32BE(Math.floor(counter / 0x100000000), 4);
  nonce.writeUInt32BE(counter >>> 0, 8);
}

/** Encrypt `plaintext` into `out` (length plaintext.length + 16). */
export function sealInto(out: Buffer, key: Buffer, counter: number, plaintext: Buffer, ad: Buffer): void {
  setNonce(counter);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, plaintext, ad, null, nonce, key);
}

/** Decrypt; null when the tag does not verify (tampered, wrong key). */
export function open(key: Buffer, counter: number, ciphertext: Buffer, ad: Buffer): Buffer | null {
  if (ciphertext.length < TAG_BYTES) return null;
  setNonce(counter);
  const out = Buffer.allocUnsafe(ciphertext.length - TAG_BYTES);
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, ciphertext, ad, nonce, key);
    return out;
  } catch {
    return null;
  }
}
