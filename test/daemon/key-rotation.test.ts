// The crash-safe file steps of a key rotation (src/daemon/key-rotation.ts): the new key is on
// disk (0600) before the rendezvous hears of it, identity.json is replaced only after it
// answered, a pending rotation is read back intact after a crash, a damaged one is an error
// (never silently dropped), and which rendezvous answers drop the pending key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadOrCreateIdentity, readIdentityFile } from '../../src/crypto/identity.ts';
import {
  afterFailure,
  discardPending,
  ownRotations,
  PENDING_IDENTITY_FILE,
  preparePending,
  promotePending,
  readPending,
} from '../../src/daemon/key-rotation.ts';
import { KeyLinks } from '../../src/registry/rotation.ts';
import { makeAddress } from '../../src/wire/address.ts';
import { PilotError } from '../../src/util/errors.ts';

const home = () => fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-rotate-'));
const A = makeAddress(0, 9);

test('prepare -> (crash) -> read back -> promote: the new key is never lost, the old one kept until promoted', () => {
  const h = home();
  const old = loadOrCreateIdentity(h);
  assert.equal(readPending(h), undefined);
  const p = preparePending(h, old, A, 1000);
  const file = path.join(h, PENDING_IDENTITY_FILE);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  // identity.json still holds the old key: the rendezvous has not answered yet
  assert.deepEqual(readIdentityFile(path.join(h, 'identity.json')).publicKey, old.publicKey);
  // a second rotation while one is pending: refused with a hint
  assert.throws(
    () => preparePending(h, old, A, 2000),
    (e: unknown) => e instanceof PilotError && e.code === 'BAD_ARGUMENT' && /pending/.test(e.message) && !!e.hint,
  );
  // after a crash: the same key and statement read back
  const again = readPending(h)!;
  assert.deepEqual(again.next.publicKey, p.next.publicKey);
  assert.deepEqual(again.next.secretKey, p.next.secretKey);
  assert.equal(again.rotation.statement, p.rotation.statement);
  promotePending(h, again);
  assert.equal(fs.existsSync(file), false);
  const now = readIdentityFile(path.join(h, 'identity.json'));
  assert.deepEqual(now.publicKey, p.next.publicKey);
  assert.equal(fs.statSync(path.join(h, 'identity.json')).mode & 0o777, 0o600);
  assert.deepEqual(loadOrCreateIdentity(h).publicKey, p.next.publicKey, 'a restart loads the new key');
  // identity.json keeps our chain (bounded), so credentials for the old key still link after a restart
  const p2 = preparePending(h, now, A, 3000);
  promotePending(h, p2);
  const chain = ownRotations(h);
  assert.equal(chain.length, 2);
  const links = new KeyLinks();
  for (const r of chain) assert.ok(links.add(r));
  assert.equal(links.linked(old.publicKey, p2.next.publicKey), true);
});

test('a damaged pending file is an error with a hint, not dropped', () => {
  const h = home();
  const old = loadOrCreateIdentity(h);
  preparePending(h, old, A, 1000);
  const file = path.join(h, PENDING_IDENTITY_FILE);
  const raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  raw.rotation.sig = Buffer.alloc(64, 1).toString('base64');
  fs.writeFileSync(file, JSON.stringify(raw));
  assert.throws(
    () => readPending(h),
    (e: unknown) => e instanceof PilotError && e.code === 'BAD_ARGUMENT' && !!e.hint,
  );
  assert.ok(fs.existsSync(file));
  discardPending(h);
  assert.equal(readPending(h), undefined);
});

test('which rendezvous answers drop the pending key: refusals yes, anything that may not be final no', () => {
  for (const c of ['BAD_SIGNATURE', 'KEY_ROTATED', 'BAD_ARGUMENT', 'NOT_FOUND', 'RATE_LIMITED'] as const)
    assert.equal(afterFailure(new PilotError(c, 'x')), 'discard', c);
  for (const c of ['TIMEOUT', 'UNREACHABLE', 'INTERNAL', 'CONNECTION_RESET'] as const) assert.equal(afterFailure(new PilotError(c, 'x')), 'keep', c);
  assert.equal(afterFailure(new Error('socket closed')), 'keep');
});
