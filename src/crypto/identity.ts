// The node identity: one Ed25519 keypair, created on first start and kept
// 0600 under $PILOT_HOME. The same key is the Noise static key (noise-curve-ed),
// so a session is bound to exactly the identity the registry bound to the address.
import fs from 'node:fs';
import path from 'node:path';
import sodium from 'sodium-native';
import { PilotError } from '../util/errors.ts';

export interface Identity {
  publicKey: Buffer; // 32 bytes
  secretKey: Buffer; // 64 bytes (seed + public key, libsodium format)
}

export function generateIdentity(): Identity {
  const publicKey = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES);
  const secretKey = Buffer.alloc(sodium.crypto_sign_SECRETKEYBYTES);
  sodium.crypto_sign_keypair(publicKey, secretKey);
  return { publicKey, secretKey };
}

export function loadOrCreateIdentity(dir: string): Identity {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'identity.json');
  if (fs.existsSync(file)) return readIdentity(file);
  const id = generateIdentity();
  const tmp = `${file}.${process.pid}.tmp`;
  const body = JSON.stringify({ publicKey: id.publicKey.toString('base64'), secretKey: id.secretKey.toString('base64'), created: new Date().toISOString() });
  fs.writeFileSync(tmp, body + '\n', { mode: 0o600 });
  // linkSync fails if another process created the file meanwhile: never overwrite an identity.
  try {
    fs.linkSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return readIdentity(file);
}

function readIdentity(file: string): Identity {
  const bad = (why: string): PilotError => new PilotError('BAD_ARGUMENT', `identity file ${file} is unusable: ${why}`, 'restore it from a backup; deleting it gives this node a new key and a new address');
  let raw: { publicKey?: unknown; secretKey?: unknown };
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (typeof raw?.publicKey !== 'string' || typeof raw.secretKey !== 'string') throw bad('missing keys');
  const publicKey = Buffer.from(raw.publicKey, 'base64');
  const secretKey = Buffer.from(raw.secretKey, 'base64');
  if (publicKey.length !== 32 || secretKey.length !== 64) throw bad('wrong key length');
  // The secret key embeds the public key: they must belong together.
  const derived = Buffer.alloc(32);
  sodium.crypto_sign_ed25519_sk_to_pk(derived, secretKey);
  if (!derived.equals(publicKey)) throw bad('public and secret key do not match');
  return { publicKey, secretKey };
}

export function sign(msg: Buffer, secretKey: Buffer): Buffer {
  const sig = Buffer.alloc(sodium.crypto_sign_BYTES);
  sodium.crypto_sign_detached(sig, msg, secretKey);
  return sig;
}

/** False for any malformed input: never throws on hostile data. */
export function verify(msg: Buffer, sig: Buffer, publicKey: Buffer): boolean {
  if (!Buffer.isBuffer(msg) || !Buffer.isBuffer(sig) || !Buffer.isBuffer(publicKey)) return false;
  if (sig.length !== sodium.crypto_sign_BYTES || publicKey.length !== sodium.crypto_sign_PUBLICKEYBYTES) return false;
  try {
    return sodium.crypto_sign_verify_detached(sig, msg, publicKey);
  } catch {
    return false;
  }
}
