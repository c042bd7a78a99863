import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { IkInitiator, IkResponder, MSG1_BYTES, MSG2_BYTES, decodeHello, encodeHello, respondIk } from '../../src/crypto/handshake.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';

const hello = (node: number, ts = Date.now()) => ({ address: { network: 3, node }, bootId: crypto.randomBytes(8), timestamp: ts });

test("Noise IK: both sides get matching per-direction keys and each other's hello", () => {
  const i = generateIdentity();
  const r = generateIdentity();
  const hi = hello(1);
  const hr = hello(2, hi.timestamp + 5);
  const init = new IkInitiator(i, r.publicKey, hi);
  assert.equal(init.message1.length, MSG1_BYTES);
  const resp = IkResponder.read(r, init.message1)!;
  assert.ok(resp);
  assert.ok(resp.remoteStatic.equals(i.publicKey), 'responder learns the initiator key');
  assert.deepEqual(resp.remote.address, hi.address);
  assert.ok(resp.remote.bootId.equals(hi.bootId));
  assert.equal(resp.remote.timestamp, hi.timestamp);
  const out = resp.reply(hr)!;
  assert.equal(out.message2.length, MSG2_BYTES);
  assert.equal(resp.reply(hr), null, 'single use');
  const done = init.finish(out.message2)!;
  assert.ok(done);
  assert.equal(done.sendKey.length, 32);
  assert.ok(done.sendKey.equals(out.result.recvKey));
  assert.ok(done.recvKey.equals(out.result.sendKey));
  assert.ok(!done.sendKey.equals(done.recvKey));
  assert.ok(done.remoteStatic.equals(r.publicKey));
  assert.deepEqual(done.address, hr.address);
  assert.ok(done.bootId.equals(hr.bootId));
  assert.equal(done.timestamp, hr.timestamp);
  assert.equal(init.finish(out.message2), null, 'single use');
  // Nothing of the hello is readable on the wire.
  assert.ok(!init.message1.includes(hi.bootId) && !out.message2.includes(hr.bootId));
});

test('Noise IK fails with a wrong responder key, a wrong responder, and tampered messages', () => {
  const i = generateIdentity();
  const r = generateIdentity();
  const mallory = generateIdentity();
  // Initiator believes r's key is mallory's: r cannot read message 1.
  assert.equal(IkResponder.read(r, new IkInitiator(i, mallory.publicKey, hello(1)).message1), null);
  // Mallory cannot answer a message 1 meant for r.
  const init = new IkInitiator(i, r.publicKey, hello(1));
  assert.equal(respondIk(mallory, init.message1, hello(9)), null);
  // A message 2 from a responder other than r is refused.
  const init2 = new IkInitiator(i, r.publicKey, hello(1));
  const m1forMallory = new IkInitiator(i, mallory.publicKey, hello(1)).message1;
  const fromMallory = respondIk(mallory, m1forMallory, hello(9))!;
  assert.ok(fromMallory);
  assert.equal(init2.finish(fromMallory.message2), null);
  // Bit flips anywhere.
  for (const at of [0, 40, MSG1_BYTES - 1]) {
    const m = Buffer.from(init.message1);
    m[at]! ^= 1;
    assert.equal(IkResponder.read(r, m), null, `msg1 flip ${at}`);
  }
  const init3 = new IkInitiator(i, r.publicKey, hello(1));
  const ok = respondIk(r, init3.message1, hello(2))!;
  const m2 = Buffer.from(ok.message2);
  m2[50]! ^= 1;
  assert.equal(init3.finish(m2), null);
  // Garbage of the right and wrong sizes.
  assert.equal(IkResponder.read(r, crypto.randomBytes(MSG1_BYTES)), null);
  assert.equal(IkResponder.read(r, crypto.randomBytes(10)), null);
  assert.equal(IkResponder.read(r, Buffer.alloc(MSG1_BYTES)), null);
  assert.throws(() => new IkInitiator(i, Buffer.alloc(32), hello(1)), 'an all-zero key is not a usable point');
});

test('hello codec round trip and refusal of impossible timestamps', () => {
  const h = hello(0xdeadbeef, 1_700_000_000_123);
  const b = encodeHello(h);
  const d = decodeHello(b)!;
  assert.deepEqual(d.address, h.address);
  assert.ok(d.bootId.equals(h.bootId));
  assert.equal(d.timestamp, h.timestamp);
  const big = Buffer.from(b);
  big.writeUInt32BE(0xffffffff, 14);
  assert.equal(decodeHello(big), null);
  assert.equal(decodeHello(b.subarray(1)), null);
});
