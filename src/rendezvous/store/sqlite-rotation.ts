// Key rotation in the SQLite store (issue 18): one transaction rebinds the
// address and moves everything keyed by the node key (network admin, member
// rows, kicks, self tags) to the new key. Tables are additive.
import type Database from 'better-sqlite3';
import { addressKey, type Address } from '../../wire/address.ts';
import type { KeyRotationRecord } from './store.ts';
import { addressFromKey, rotationErrors, rotationRow, type RotationRow } from './rotation-errors.ts';

export const ROTATION_SCHEMA = `
CREATE TABLE IF NOT EXISTS key_rotations (
  address INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  old_key BLOB NOT NULL,
  new_key BLOB NOT NULL,
  statement TEXT NOT NULL,
  sig BLOB NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY (address, seq)
);
CREATE TABLE IF NOT EXISTS retired_keys (
  key BLOB PRIMARY KEY,
  address INTEGER NOT NULL,
  retired INTEGER NOT NULL
);
`;

const fromKey = addressFromKey;

/** Runs inside a transaction. Returns 'already' for a repeat of the newest rotation. */
export function rotateSync(q: (sql: string) => Database.Statement, r: KeyRotationRecord, opts: { keep: number; minIntervalMs: number }): 'rotated' | 'already' {
  const a = addressKey(r.address);
  const node = q('SELECT public_key FROM nodes WHERE network = ? AND node = ?').get(r.address.network, r.address.node) as { public_key: Buffer } | undefined;
  if (!node) throw rotationErrors.noNode(r.address);
  const last = q('SELECT * FROM key_rotations WHERE address = ? ORDER BY seq DESC LIMIT 1').get(a) as
    | (RotationRow & { seq: number; created: number })
    | undefined;
  const current = Buffer.from(node.public_key);
  if (current.equals(r.newKey) && last && Buffer.from(last.old_key).equals(r.oldKey) && Buffer.from(last.new_key).equals(r.newKey)) return 'already';
  if (!current.equals(r.oldKey)) throw rotationErrors.notCurrent(r.address);
  if (q('SELECT 1 FROM nodes WHERE public_key = ?').get(r.newKey) || q('SELECT 1 FROM retired_keys WHERE key = ?').get(r.newKey))
    throw rotationErrors.keyInUse();
  if (last && r.created - last.created < opts.minIntervalMs) throw rotationErrors.tooSoon(opts.minIntervalMs - (r.created - last.created));
  q('UPDATE nodes SET public_key = ? WHERE network = ? AND node = ?').run(r.newKey, r.address.network, r.address.node);
  q('UPDATE networks SET admin = ? WHERE admin = ?').run(r.newKey, r.oldKey);
  q('UPDATE net_members SET key = ? WHERE key = ?').run(r.newKey, r.oldKey);
  q('UPDATE net_kicks SET key = ? WHERE key = ?').run(r.newKey, r.oldKey);
  q('UPDATE node_tags SET key = ? WHERE key = ?').run(r.newKey, r.oldKey);
  q('INSERT INTO retired_keys (key, address, retired) VALUES (?, ?, ?)').run(r.oldKey, a, r.created);
  const seq = (last?.seq ?? 0) + 1;
  q('INSERT INTO key_rotations (address, seq, old_key, new_key, statement, sig, created) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
    a,
    seq,
    r.oldKey,
    r.newKey,
    r.statement,
    r.sig,
    r.created,
  );
  q('DELETE FROM key_rotations WHERE address = ? AND seq <= ?').run(a, seq - opts.keep);
  return 'rotated';
}

export function listRotationsSync(q: (sql: string) => Database.Statement, address: Address): KeyRotationRecord[] {
  return (q('SELECT * FROM key_rotations WHERE address = ? ORDER BY seq').all(addressKey(address)) as RotationRow[]).map(rotationRow);
}

export function retiredKeySync(q: (sql: string) => Database.Statement, key: Buffer): Address | undefined {
  const r = q('SELECT address FROM retired_keys WHERE key = ?').get(key) as { address: number } | undefined;
  return r ? fromKey(r.address) : undefined;
}
