// Ed25519 for registry statements: the node identity primitives live in
// src/crypto/identity.ts; this file only adds what the registry needs on top.
import sodium from 'sodium-native';

export { generateIdentity, identityFromSecretKey, sign, verify, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, type Identity } from '../crypto/identity.ts';

export function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  sodium.randombytes_buf(b);
  return b;
}
