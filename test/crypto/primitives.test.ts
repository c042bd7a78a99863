import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { loadOrCreateIdentity, sign, verify, generateIdentity } from '../../src/crypto/identity.ts';
import { sealInto, open } from '../../src/crypto/aead.ts';
import { ReplayWindow, REPLAY_WINDOW } from '../../src/crypto/replay-window.ts';
import { IkInitiator, respondIk } from '../../src/crypto/handshake.ts';
import { PilotError } from '../../src/util/errors.ts';

test('identity is created 0600, reloaded unchanged, and a corrupt file is an error, not a new key', () => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-id-')), 'home');
  const a = loadOrCreateIdentity(dir);
  assert.equal(fs.statSync(path.join(dir, 'identity.json')).mode & 0o777, 0o600);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  const b = loadOrCreateIdentity(dir);
  assert.ok(a.publicKey.equals(b.publicKey) && a.secretKey.equals(b.secretKey));
  fs.writeFileSync(path.join(dir, 'identity.json'), '{"publicKey":"AAAA","secretKey":"BBBB"}');
  assert.throws(() => loadOrCreateIdentity(dir), (e: unknown) => e instanceof PilotError && e.code === 'BAD_ARGUMENT');
  const other = generateIdentity();
  fs.writeFileSync(path.join(dir, 'identity.json'), JSON.stringify({ publicKey: other.publicKey.toString('base64'), secretKey: a.secretKey.toString('base64') }));
  assert.throws(() => loadOrCreateIdentity(dir), /do not match/);
});

test('signatures verify and hostile input returns false', () => {
  const id = generateIdentity();
  const msg = Buffer.from('statement');
  const sig = sign(msg, id.secretKey);
  assert.equal(verify(msg, sig, id.publicKey), true);
  assert.equal(verify(Buffer.from('statemenT'), sig, id.publicKey), false);
  assert.equal(verify(msg, sig.subarray(1), id.publicKey), false);
  assert.equal(verify(msg, sig, Buffer.alloc(3)), false);
  assert.equal(verify(msg, 'x' as unknown as Buffer, id.publicKey), false);
});

test('AEAD round trip; any flipped bit or wrong counter/key/ad fails', () => {
  const key = crypto.randomBytes(32);
  const ad = Buffer.from('header');
  const pt = crypto.randomBytes(1200);
  const ct = Buffer.alloc(pt.length + 16);
  sealInto(ct, key, 7, pt, ad);
  assert.deepEqual(open(key, 7, ct, ad), pt);
  assert.equal(open(key, 8, ct, ad), null);
  assert.equal(open(crypto.randomBytes(32), 7, ct, ad), null);
  assert.equal(open(key, 7, ct, Buffer.from('headeR')), null);
  for (const i of [0, 600, ct.length - 1]) {
    const bad = Buffer.from(ct);
    bad[i]! ^= 1;
    assert.equal(open(key, 7, bad, ad), null);
  }
  assert.equal(open(key, 7, Buffer.alloc(3), ad), null);
});

test('replay window: in order, out of order, duplicates, too old, commit only after auth', () => {
  const w = new ReplayWindow();
  for (const n of [0, 1, 2, 5, 4, 3]) {
    assert.equal(w.check(n), true, `${n}`);
    w.commit(n);
  }
  for (const n of [0, 3, 5]) assert.equal(w.check(n), false);
  // check without commit does not move the window (a forged huge counter)
  assert.equal(w.check(1e12), true);
  assert.equal(w.check(6), true);
  w.commit(10_000);
  assert.equal(w.check(10_000 - REPLAY_WINDOW - 1), false);
  assert.equal(w.check(10_000 - 100), true);
  assert.equal(w.check(9_999), true);
  assert.equal(w.check(10_000), false);
  assert.equal(w.check(-1), false);
  assert.equal(w.check(1.5), false);
});

test('Noise IK: keys match both ways; a wrong responder key fails', () => {
  const i = generateIdentity();
  const r = generateIdentity();
  const hi = { address: { network: 0, node: 1 }, bootId: crypto.randomBytes(8), timestamp: Date.now() };
  const hr = { address: { network: 0, node: 2 }, bootId: crypto.randomBytes(8), timestamp: Date.now() };
  const init = new IkInitiator(i, r.publicKey, hi);
  const resp = respondIk(r, init.message1, hr)!;
  assert.ok(resp);
  assert.ok(resp.keys.remoteStatic.equals(i.publicKey));
  assert.deepEqual(resp.hello.address, hi.address);
  const done = init.finish(resp.message2)!;
  assert.ok(done.keys.sendKey.equals(resp.keys.recvKey));
  assert.ok(done.keys.recvKey.equals(resp.keys.sendKey));
  assert.ok(!done.keys.sendKey.equals(done.keys.recvKey));
  // message 1 meant for someone else cannot be read by r
  const wrong = new IkInitiator(i, generateIdentity().publicKey, hi);
  assert.equal(respondIk(r, wrong.message1, hr), null);
  assert.equal(respondIk(r, crypto.randomBytes(120), hr), null);
});
