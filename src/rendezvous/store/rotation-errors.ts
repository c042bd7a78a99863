// Errors of RegistryStore.rotateKey, shared by the SQLite and PostgreSQL stores
// so both answer a refused rotation with the same code and hint.
import { PilotError } from '../../util/errors.ts';
import { formatAddress, type Address } from '../../wire/address.ts';

export const rotationErrors = {
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
