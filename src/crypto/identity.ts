// The node identity: one Ed25519 keypair, created on first start and kept
// 0600 under $PILOT_HOME. The same key is the Noise static key (noise-curve-ed),
// so a session is bound to exactly the identity the registry bound to the address.
import fs from 'node:fs';
import path from 'node:path';
import sodium from 'sodium-native';
import { PilotError } from '../util/errors.ts';
import { syncDir } from '../util/atomic-file.ts';

export const PUBLIC_KEY_BYTES = 32;
export const SECRET_KEY_BYTES = 64;
export const SIGNATURE_BYTES = 64;
export const IDENTITY_FILE = 'identity.json';
/** A real identity file is ~200 bytes; anything huge is not one (and not worth reading). */
const MAX_FILE_BYTES = 64 * 1024;

export interface Identity {
  publicKey: Buffer; // 32 bytes
  secretKey: Buffer; // 64 bytes: seed || public key (libsodium crypto_sign format)
}

export function generateIdentity(): Identity {
  const publicKey = Buffer.alloc(PUBLIC_KEY_BYTES);
  const secretKey = Buffer.alloc(SECRET_KEY_BYTES);
  sodium.crypto_sign_keypair(publicKey, secretKey);
  return { publicKey, secretKey };
}

/**
 * Rebuild the keypair from the seed half of `secretKey` and check it matches:
 * the second half of a libsodium secret key is only a copy of the public key,
 * so comparing that copy alone would accept a file whose halves disagree.
 */
export function identityFromSecretKey(secretKey: Buffer): Identity | null {
  if (!Buffer.isBuffer(secretKey) || secretKey.length !== SECRET_KEY_BYTES) return null;
  const publicKey = Buffer.alloc(PUBLIC_KEY_BYTES);
  const derived = Buffer.alloc(SECRET_KEY_BYTES);
  sodium.crypto_sign_seed_keypair(publicKey, derived, secretKey.subarray(0, 32));
  if (!derived.equals(secretKey)) return null;
  return { publicKey, secretKey: derived };
}

/**
 * Load `dir/identity.json`, or create it (and `dir`, 0700) on first start.
 * An existing file is never replaced: a corrupt one is an error, because a new
 * key would silently give this node a different identity.
 */
export function loadOrCreateIdentity(dir: string): Identity {
  try {
    const created = fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) fs.chmodSync(dir, 0o700); // umask may have widened/narrowed it
  } catch (err) {
    throw new PilotError('INTERNAL', `cannot create ${dir}: ${(err as Error).message}`, 'check that the Pilot home directory is writable');
  }
  const file = path.join(dir, IDENTITY_FILE);
  if (fs.existsSync(file)) return readIdentity(file);
  const id = generateIdentity();
  writeNew(file, identityJson(id));
  // Read back what is on disk: if another process won the race, its key is the identity.
  return readIdentity(file);
}

function identityJson(id: Identity): string {
  return (
    JSON.stringify({
      publicKey: id.publicKey.toString('base64'),
      secretKey: id.secretKey.toString('base64'),
      created: new Date().toISOString(),
    }) + '\n'
  );
}

/** Write a temp file (0600, fsynced), then publish it without ever overwriting an existing file. */
function writeNew(file: string, body: string): void {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.fchmodSync(fd, 0o600);
      fs.writeSync(fd, body);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      // link() is the atomic "create if absent" rename: it fails if the file appeared meanwhile.
      fs.linkSync(tmp, file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return; // someone else created it: theirs wins
      // Filesystems without hard links: rename, still never over an existing file.
      if (fs.existsSync(file)) return;
      fs.renameSync(tmp, file);
    }
    syncDir(path.dirname(file));
  } catch (err) {
    throw new PilotError('INTERNAL', `cannot write ${file}: ${(err as Error).message}`, 'check that the Pilot home directory is writable');
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Reads and checks an identity file (key rotation reads identity.next.json with it). */
export function readIdentityFile(file: string): Identity {
  return readIdentity(file);
}

/** The identity file body (JSON, with `extra` fields such as a pending rotation statement). */
export function identityFileText(id: Identity, extra: Record<string, unknown> = {}): string {
  return (
    JSON.stringify({
      publicKey: id.publicKey.toString('base64'),
      secretKey: id.secretKey.toString('base64'),
      created: new Date().toISOString(),
      ...extra,
    }) + '\n'
  );
}

function readIdentity(file: string): Identity {
  const corrupt = (why: string): PilotError =>
    new PilotError(
      'BAD_ARGUMENT',
      `identity file ${file} is corrupt: ${why}`,
      'restore it from a backup; deleting it gives this node a new key and therefore a new identity',
    );
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw corrupt('not a regular file');
    if (st.size > MAX_FILE_BYTES) throw corrupt(`${st.size} bytes is far too large`);
    // The secret key must not stay readable by others (best effort, e.g. after a copy).
    if ((st.mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof PilotError) throw err;
    throw new PilotError('INTERNAL', `cannot read ${file}: ${(err as Error).message}`, 'check the permissions of the Pilot home directory');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw corrupt(`not JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null) throw corrupt('not a JSON object');
  const { publicKey: pk, secretKey: sk } = raw as { publicKey?: unknown; secretKey?: unknown };
  if (typeof pk !== 'string' || typeof sk !== 'string') throw corrupt('publicKey/secretKey missing');
  const publicKey = strictBase64(pk);
  const secretKey = strictBase64(sk);
  if (!publicKey || !secretKey) throw corrupt('keys are not valid base64');
  if (publicKey.length !== PUBLIC_KEY_BYTES || secretKey.length !== SECRET_KEY_BYTES) throw corrupt('wrong key length');
  const id = identityFromSecretKey(secretKey);
  if (!id?.publicKey.equals(publicKey)) throw corrupt('public and secret key do not match');
  return id;
}

/** Buffer.from(base64) skips junk characters; a key file must round-trip exactly. */
function strictBase64(s: string): Buffer | null {
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}

export function sign(msg: Buffer, secretKey: Buffer): Buffer {
  if (!Buffer.isBuffer(secretKey) || secretKey.length !== SECRET_KEY_BYTES) {
    throw new PilotError('BAD_ARGUMENT', 'signing key must be a 64-byte Ed25519 secret key');
  }
  const sig = Buffer.alloc(SIGNATURE_BYTES);
  sodium.crypto_sign_detached(sig, msg, secretKey);
  return sig;
}

/** False for any malformed input: never throws on hostile data. */
export function verify(msg: Buffer, sig: Buffer, publicKey: Buffer): boolean {
  if (!Buffer.isBuffer(msg) || !Buffer.isBuffer(sig) || !Buffer.isBuffer(publicKey)) return false;
  if (sig.length !== SIGNATURE_BYTES || publicKey.length !== PUBLIC_KEY_BYTES) return false;
  try {
    return sodium.crypto_sign_verify_detached(sig, msg, publicKey);
  } catch {
    return false;
  }
}
