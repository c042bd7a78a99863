import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateIdentity, identityFromSecretKey, loadOrCreateIdentity, sign, verify } from '../../src/crypto/identity.ts';
import { PilotError } from '../../src/util/errors.ts';

const home = (): string => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-id-')), 'nested', 'home');
const isCorrupt = (e: unknown): boolean => e instanceof PilotError && e.code === 'BAD_ARGUMENT' && typeof e.hint === 'string' && /corrupt/.test(e.message);

test('identity: created on first start (dir 0700, file 0600), reloaded unchanged afterwards', () => {
  const dir = home();
  const a = loadOrCreateIdentity(dir);
  const file = path.join(dir, 'identity.json');
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(a.publicKey.length, 32);
  assert.equal(a.secretKey.length, 64);
  assert.deepEqual(fs.readdirSync(dir), ['identity.json'], 'no temp file left behind');
  const b = loadOrCreateIdentity(dir);
  assert.ok(a.publicKey.equals(b.publicKey) && a.secretKey.equals(b.secretKey));
  // It is a working signing key.
  assert.equal(verify(Buffer.from('x'), sign(Buffer.from('x'), b.secretKey), a.publicKey), true);
});

test('identity: a loosened file mode is tightened back to 0600 on load', () => {
  const dir = home();
  loadOrCreateIdentity(dir);
  const file = path.join(dir, 'identity.json');
  fs.chmodSync(file, 0o644);
  loadOrCreateIdentity(dir);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
});

test('identity: a corrupt file is a clear error and is never overwritten', () => {
  const dir = home();
  const a = loadOrCreateIdentity(dir);
  const file = path.join(dir, 'identity.json');
  const other = generateIdentity();
  const bad: string[] = [
    'not json',
    '[]',
    'null',
    '{"publicKey":"AAAA","secretKey":"BBBB"}',
    JSON.stringify({ publicKey: a.publicKey.toString('base64') }),
    // halves of different keys
    JSON.stringify({ publicKey: other.publicKey.toString('base64'), secretKey: a.secretKey.toString('base64') }),
    // secret key whose embedded public half was swapped: the seed no longer matches
    JSON.stringify({
      publicKey: other.publicKey.toString('base64'),
      secretKey: Buffer.concat([a.secretKey.subarray(0, 32), other.publicKey]).toString('base64'),
    }),
    // junk characters that lenient base64 decoding would skip
    JSON.stringify({ publicKey: a.publicKey.toString('base64') + '!!', secretKey: a.secretKey.toString('base64') }),
  ];
  for (const body of bad) {
    fs.writeFileSync(file, body);
    assert.throws(() => loadOrCreateIdentity(dir), isCorrupt, body);
    assert.equal(fs.readFileSync(file, 'utf8'), body, 'the file was left alone');
  }
});

test('identity: a directory where the file should be is an error, not a new key', () => {
  const dir = home();
  fs.mkdirSync(path.join(dir, 'identity.json'), { recursive: true });
  assert.throws(
    () => loadOrCreateIdentity(dir),
    (e: unknown) => e instanceof PilotError,
  );
});

test('identityFromSecretKey rebuilds the pair from the seed and rejects mismatches', () => {
  const a = generateIdentity();
  assert.ok(identityFromSecretKey(a.secretKey)!.publicKey.equals(a.publicKey));
  const tampered = Buffer.from(a.secretKey);
  tampered[40]! ^= 1;
  assert.equal(identityFromSecretKey(tampered), null);
  assert.equal(identityFromSecretKey(Buffer.alloc(10)), null);
});

test('signatures verify; hostile input returns false and never throws', () => {
  const id = generateIdentity();
  const msg = Buffer.from('statement');
  const sig = sign(msg, id.secretKey);
  assert.equal(verify(msg, sig, id.publicKey), true);
  assert.equal(verify(Buffer.from('statemenT'), sig, id.publicKey), false);
  assert.equal(verify(msg, sig, generateIdentity().publicKey), false);
  assert.equal(verify(msg, sig.subarray(1), id.publicKey), false);
  assert.equal(verify(msg, Buffer.alloc(64), id.publicKey), false);
  assert.equal(verify(msg, sig, Buffer.alloc(3)), false);
  assert.equal(verify(msg, sig, Buffer.alloc(32, 0xff)), false);
  assert.equal(verify(msg, 'x' as unknown as Buffer, id.publicKey), false);
  assert.equal(verify(null as unknown as Buffer, sig, id.publicKey), false);
  assert.throws(() => sign(msg, Buffer.alloc(5)), PilotError);
});
