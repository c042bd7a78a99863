// Errors and the row mapping of RegistryStore.rotateKey, shared by the SQLite and PostgreSQL
// stores so both answer a refused rotation with the same code and hint, and read rows alike
// (PostgreSQL's BIGINT columns arrive as strings, SQLite's as numbers).
import { PilotError } from '../../util/errors.ts';
import { formatAddress, makeAddress, type Address } from '../../wire/address.ts';
import type { KeyRotationRecord } from './store.ts';

/** A key_rotations row as either driver returns it. */
export interface RotationRow {
  address: number | string;
  old_key: Buffer;
  new_key: Buffer;
  statement: string;
  sig: Buffer;
  created: number | string;
}

/** A stored address key (network << 32 | node) back to an address. */
export const addressFromKey = (k: number | string): Address => {
  const n = Number(k);
  return makeAddress(Math.floor(n / 0x100000000), n % 0x100000000);
};

export function rotationRow(r: RotationRow): KeyRotationRecord {
  return {
    address: addressFromKey(r.address),
    oldKey: Buffer.from(r.old_key),
    newKey: Buffer.from(r.new_key),
    statement: r.statement,
    sig: Buffer.from(r.sig),
    created: Number(r.created),
  };
}

export const rotationErrors = {
  /** register of a key a rotation replaced: it must not come back as a new node (or take its old address). */
  retired: (a: Address) =>
    new PilotError(
      'KEY_ROTATED',
      `this key was replaced by a key rotation of ${formatAddress(a)} and no longer speaks for it`,
      "use the node's current identity.json (pilotctl rotate-key wrote it); a stolen old key is worth nothing now",
    ),
  noNode: (a: Address) => new PilotError('NOT_FOUND', `no node with address ${formatAddress(a)}`, "the rotation statement must name this node's own address"),
  notCurrent: (a: Address) =>
    new PilotError(
      'KEY_ROTATED',
      `the old key in the statement is not the current key of ${formatAddress(a)}`,
      'the address has rotated since (or the statement is forged): sign a new statement with the current key',
    ),
  keyInUse: () =>
    new PilotError('BAD_ARGUMENT', 'the new key already belongs to a node (or was retired by an earlier rotation)', 'rotate to a freshly generated key'),
  tooSoon: (waitMs: number) =>
    new PilotError('RATE_LIMITED', 'this node rotated its key less than a minute ago', `wait ${Math.max(1, Math.ceil(waitMs / 1000))} s before rotating again`),
};
