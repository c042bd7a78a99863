// Node key rotation on the daemon's side (issue 18, `pilotctl rotate-key`), crash safe:
//   1. a new key pair and the rotation statement signed by the OLD key are written to
//      $PILOT_HOME/identity.next.json (atomic, 0600, fsynced) BEFORE anything is sent;
//   2. rotate_key goes to the rendezvous, signed by the NEW key;
//   3. once it answered (rotated, or `already` for a retry), identity.next.json replaces
//      identity.json (atomic rename) and the old secret key is gone.
// A crash between 1 and 3 leaves both files: the next start sends the same request again
// (the rendezvous answers `already` if it had taken it) and finishes, or drops the pending
// key if the rendezvous refused it for good. So the new identity is never lost, and the old
// one is never dropped before the rendezvous bound the address to the new one.
import fs from 'node:fs';
import path from 'node:path';
import { generateIdentity, identityFileText, IDENTITY_FILE, readIdentityFile, type Identity } from '../crypto/identity.ts';
import { MAX_ROTATION_CHAIN, signRotation, verifyRotation, type SignedRotation } from '../registry/rotation.ts';
import { PilotError } from '../util/errors.ts';
import { syncDir, writeFileAtomic } from '../util/atomic-file.ts';
import type { Address } from '../wire/address.ts';

export const PENDING_IDENTITY_FILE = 'identity.next.json';

export interface PendingRotation {
  next: Identity;
  rotation: SignedRotation;
}

/** Step 1: a new key and the statement, on disk before the rendezvous hears of them. */
export function preparePending(home: string, current: Identity, address: Address, now: number): PendingRotation {
  if (readPending(home)) {
    throw new PilotError(
      'BAD_ARGUMENT',
      'a key rotation is already pending (identity.next.json)',
      'it finishes when the rendezvous answers: run pilotctl rotate-key again once the rendezvous is reachable, or restart the daemon',
    );
  }
  const next = generateIdentity();
  const rotation = signRotation({ address, oldKey: current.publicKey, newKey: next.publicKey, ts: now }, current.secretKey);
  writeFileAtomic(
    path.join(home, PENDING_IDENTITY_FILE),
    identityFileText(next, { rotation: { statement: rotation.statement, sig: rotation.sig.toString('base64') } }),
  );
  syncDir(home);
  return { next, rotation };
}

/**
 * The pending rotation, or undefined. A pending file that is damaged, or whose statement
 * does not name its key, is not ours to send: it is an error (never silently dropped: it
 * may hold the only copy of the key the rendezvous already bound).
 */
export function readPending(home: string): PendingRotation | undefined {
  const file = path.join(home, PENDING_IDENTITY_FILE);
  if (!fs.existsSync(file)) return undefined;
  const next = readIdentityFile(file);
  const bad = (why: string) =>
    new PilotError('BAD_ARGUMENT', `pending key rotation ${file} is damaged: ${why}`, 'restore it from a backup, or move it away to keep the current key');
  let raw: { rotation?: { statement?: unknown; sig?: unknown } };
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    throw bad('not JSON');
  }
  const st = raw.rotation?.statement;
  const sig = raw.rotation?.sig;
  if (typeof st !== 'string' || typeof sig !== 'string') throw bad('no rotation statement');
  const rotation = { statement: st, sig: Buffer.from(sig, 'base64') };
  let r: ReturnType<typeof verifyRotation>;
  try {
    r = verifyRotation(rotation);
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (!r.newKey.equals(next.publicKey)) throw bad('the statement names another key');
  return { next, rotation };
}

/**
 * Step 3: the new identity becomes identity.json (atomic), the old secret key is gone. The
 * file keeps our newest rotation statements (old -> ... -> current key): after a restart they
 * still link credentials made for an older key of ours to the current one.
 */
export function promotePending(home: string, p: PendingRotation): void {
  const chain = [...ownRotations(home), p.rotation].slice(-MAX_ROTATION_CHAIN);
  const rotations = chain.map((r) => ({ statement: r.statement, sig: r.sig.toString('base64') }));
  writeFileAtomic(path.join(home, IDENTITY_FILE), identityFileText(p.next, { rotations }));
  syncDir(home);
  fs.rmSync(path.join(home, PENDING_IDENTITY_FILE), { force: true });
  syncDir(home);
}

/** The rendezvous refused the rotation for good: the pending key is worthless. */
export function discardPending(home: string): void {
  fs.rmSync(path.join(home, PENDING_IDENTITY_FILE), { force: true });
  syncDir(home);
}

/**
 * What to do with a pending rotation after the rendezvous answered `err`:
 * 'discard' when it refused the rotation itself (forged, not the current key, key in use, too soon),
 * 'keep' when the answer may not have been final (timeout, rate limit, rendezvous down):
 * the request is sent again later, and the rendezvous answers `already` if it had taken it.
 */
export function afterFailure(err: unknown): 'discard' | 'keep' {
  const code = err instanceof PilotError ? err.code : undefined;
  // RATE_LIMITED is answered before anything changes (a retry of a rotation it took answers `already` first).
  const refused = ['BAD_SIGNATURE', 'KEY_ROTATED', 'BAD_ARGUMENT', 'BAD_REQUEST', 'NOT_FOUND', 'RATE_LIMITED'];
  return code !== undefined && refused.includes(code) ? 'discard' : 'keep';
}

/** Our rotation statements kept in identity.json, oldest first (unverified: KeyLinks checks them). */
export function ownRotations(home: string): SignedRotation[] {
  try {
    const raw = JSON.parse(fs.readFileSync(path.join(home, IDENTITY_FILE), 'utf8')) as { rotations?: unknown };
    if (!Array.isArray(raw.rotations)) return [];
    const out: SignedRotation[] = [];
    for (const r of raw.rotations.slice(-MAX_ROTATION_CHAIN) as { statement?: unknown; sig?: unknown }[]) {
      if (typeof r?.statement === 'string' && typeof r.sig === 'string') out.push({ statement: r.statement, sig: Buffer.from(r.sig, 'base64') });
    }
    return out;
  } catch {
    return [];
  }
}
