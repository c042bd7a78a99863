// @types/sodium-native lags the library: declare the IETF ChaCha20-Poly1305 calls we use.
import 'sodium-native';

declare module 'sodium-native' {
  export function crypto_aead_chacha20poly1305_ietf_encrypt(c: Buffer, m: Buffer, ad: Buffer | null, nsec: null, npub: Buffer, k: Buffer): number;
  export function crypto_aead_chacha20poly1305_ietf_decrypt(m: Buffer, nsec: null, c: Buffer, ad: Buffer | null, npub: Buffer, k: Buffer): number;
}
