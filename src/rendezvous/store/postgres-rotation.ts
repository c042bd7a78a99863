// Key rotation in the PostgreSQL store (issue 18): the same semantics as
// sqlite-rotation.ts, as one transaction that locks the node's row, so two
// rendezvous instances sharing the registry cannot both rotate one address.
import type pg from 'pg';
import { addressKey, type Address } from '../../wire/address.ts';
import type { Migration } from './postgres-connect.ts';
import type { KeyRotationRecord } from './store.ts';
import { addressFromKey, rotationErrors, rotationRow, type RotationRow } from './rotation-errors.ts';

/** Append-only (applied by PostgresStore.open after the registry's and the networks' migrations). */
export const ROTATION_MIGRATIONS: Migration[] = [
  {
    id: 'rotation-1',
    sql: `
CREATE TABLE IF NOT EXISTS registry_key_rotations (
  address BIGINT NOT NULL,
  seq INTEGER NOT NULL,
  old_key BYTEA NOT NULL,
  new_key BYTEA NOT NULL,
  statement TEXT NOT NULL,
  sig BYTEA NOT NULL,
  created BIGINT NOT NULL,
  PRIMARY KEY (address, seq)
);
CREATE TABLE IF NOT EXISTS registry_retired_keys (
  key BYTEA PRIMARY KEY,
  address BIGINT NOT NULL,
  retired BIGINT NOT NULL
);
`,
  },
];

const fromKey = addressFromKey;

/** Runs inside a transaction. */
export async function rotateTx(c: pg.PoolClient, r: KeyRotationRecord, opts: { keep: number; minIntervalMs: number }): Promise<'rotated' | 'already'> {
  const a = addressKey(r.address);
  const node = (
    await c.query<{ public_key: Buffer }>('SELECT public_key FROM registry_nodes WHERE network = $1 AND node = $2 FOR UPDATE', [
      r.address.network,
      r.address.node,
    ])
  ).rows[0];
  if (!node) throw rotationErrors.noNode(r.address);
  const last = (await c.query<RotationRow & { seq: number }>('SELECT * FROM registry_key_rotations WHERE address = $1 ORDER BY seq DESC LIMIT 1', [a])).rows[0];
  const current = Buffer.from(node.public_key);
  if (current.equals(r.newKey) && last && Buffer.from(last.old_key).equals(r.oldKey) && Buffer.from(last.new_key).equals(r.newKey)) return 'already';
  if (!current.equals(r.oldKey)) throw rotationErrors.notCurrent(r.address);
  const used =
    (await c.query('SELECT 1 FROM registry_nodes WHERE public_key = $1', [r.newKey])).rowCount! > 0 ||
    (await c.query('SELECT 1 FROM registry_retired_keys WHERE key = $1', [r.newKey])).rowCount! > 0;
  if (used) throw rotationErrors.keyInUse();
  if (last && r.created - Number(last.created) < opts.minIntervalMs) throw rotationErrors.tooSoon(opts.minIntervalMs - (r.created - Number(last.created)));
  await c.query('UPDATE registry_nodes SET public_key = $1 WHERE network = $2 AND node = $3', [r.newKey, r.address.network, r.address.node]);
  await c.query('UPDATE registry_networks SET admin = $1 WHERE admin = $2', [r.newKey, r.oldKey]);
  await c.query('UPDATE registry_net_members SET key = $1 WHERE key = $2', [r.newKey, r.oldKey]);
  await c.query('UPDATE registry_net_kicks SET key = $1 WHERE key = $2', [r.newKey, r.oldKey]);
  await c.query('UPDATE registry_node_tags SET key = $1 WHERE key = $2', [r.newKey, r.oldKey]);
  await c.query('INSERT INTO registry_retired_keys (key, address, retired) VALUES ($1, $2, $3)', [r.oldKey, a, r.created]);
  const seq = (last?.seq ?? 0) + 1;
  await c.query('INSERT INTO registry_key_rotations (address, seq, old_key, new_key, statement, sig, created) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
    a,
    seq,
    r.oldKey,
    r.newKey,
    r.statement,
    r.sig,
    r.created,
  ]);
  await c.query('DELETE FROM registry_key_rotations WHERE address = $1 AND seq <= $2', [a, seq - opts.keep]);
  return 'rotated';
}

export async function listRotations(pool: pg.Pool, address: Address): Promise<KeyRotationRecord[]> {
  return (await pool.query<RotationRow>('SELECT * FROM registry_key_rotations WHERE address = $1 ORDER BY seq', [addressKey(address)])).rows.map(rotationRow);
}

export async function retiredKey(pool: pg.Pool, key: Buffer): Promise<Address | undefined> {
  const r = (await pool.query<{ address: string }>('SELECT address FROM registry_retired_keys WHERE key = $1', [key])).rows[0];
  return r ? fromKey(r.address) : undefined;
}
