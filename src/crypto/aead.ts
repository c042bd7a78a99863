// ChaCha20-Poly1305 (IETF) from libsodium, with the nonce = 4 zero bytes +
// the 64-bit big-endian packet counter (as WireGuard), so a key never repeats
// a nonce as long as the counter never repeats. The *Into variants write into
// caller buffers (in place is fine: libsodium allows output == input) so the
// data path does not copy or allocate per packet.
import sodium from 'sodium-native';
import { PilotError } from '../util/errors.ts';

export const KEY_BYTES = 32;
export const TAG_BYTES = 16;
export const NONCE_BYTES = 12;

// Scratch nonce: JS is single-threaded and the sodium calls are synchronous.
const nonce = Buffer.alloc(NONCE_BYTES);

function setNonce(counter: number): boolean {
  if (!Number.isSafeInteger(counter) || counter < 0) return false;
  nonce.writeUInt32BE(Math.floor(counter / 0x100000000), 4);
  nonce.writeUInt32BE(counter >>> 0, 8);
  return true;
}

/**
 * Encrypt `plaintext` into `out[0 .. plaintext.length + 16)`. `out` may start
 * at the same byte as `plaintext` (in place) but must not partially overlap it.
 * Returns the number of bytes written.
 */
export function sealInto(out: Buffer, key: Buffer, counter: number, plaintext: Buffer, ad: Buffer | null): number {
  const n = plaintext.length + TAG_BYTES;
  if (out.length < n) throw new PilotError('INTERNAL', `seal: output buffer too small (${out.length} < ${n})`);
  if (!setNonce(counter)) throw new PilotError('INTERNAL', `seal: invalid counter ${counter}`);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out.length === n ? out : out.subarray(0, n), plaintext, ad, null, nonce, key);
  return n;
}

/** Encrypt into a new buffer (ciphertext + tag). */
export function seal(key: Buffer, counter: number, plaintext: Buffer, ad: Buffer | null): Buffer {
  const out = Buffer.allocUnsafe(plaintext.length + TAG_BYTES);
  sealInto(out, key, counter, plaintext, ad);
  return out;
}

/**
 * Authenticate and decrypt `ciphertext` (ciphertext + tag) into
 * `out[0 .. ciphertext.length - 16)`; `out` may alias `ciphertext` (in place).
 * False when the tag does not verify (tampered, wrong key/counter/ad) or on any
 * malformed argument. On failure the output is left as it was (libsodium checks the tag before it decrypts).
 */
export function openInto(out: Buffer, key: Buffer, counter: number, ciphertext: Buffer, ad: Buffer | null): boolean {
  const n = ciphertext.length - TAG_BYTES;
  if (n < 0 || out.length < n || key.length !== KEY_BYTES || !setNonce(counter)) return false;
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out.length === n ? out : out.subarray(0, n), null, ciphertext, ad, nonce, key);
    return true;
  } catch {
    return false;
  }
}

/** Decrypt into a new buffer; null when it does not authenticate. */
export function open(key: Buffer, counter: number, ciphertext: Buffer, ad: Buffer | null): Buffer | null {
  if (ciphertext.length < TAG_BYTES) return null;
  const out = Buffer.allocUnsafe(ciphertext.length - TAG_BYTES);
  return openInto(out, key, counter, ciphertext, ad) ? out : null;
}
