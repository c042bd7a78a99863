import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { DATA_HEADER_BYTES, REJECT_AFTER_MESSAGES, SecureSession } from '../../src/crypto/session.ts';
import { IkInitiator, respondIk } from '../../src/crypto/handshake.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { sealInto, TAG_BYTES } from '../../src/crypto/aead.ts';

function sessionPair() {
  const i = generateIdentity();
  const r = generateIdentity();
  const h = { address: { network: 0, node: 1 }, bootId: Buffer.alloc(8), timestamp: 1 };
  const init = new IkInitiator(i, r.publicKey, h);
  const resp = respondIk(r, init.message1, h)!;
  const ik = init.finish(resp.message2)!;
  const mk = (keys: typeof ik, local: number, remote: number, role: 'initiator' | 'responder') =>
    new SecureSession({ localIndex: local, remoteIndex: remote, role, keys, created: 0, sendUntil: 1000, recvUntil: 2000 });
  return { a: mk(ik, 11, 22, 'initiator'), b: mk(resp.result, 22, 11, 'responder'), keyAtoB: ik.sendKey };
}

test('session: seal / open in place, header layout, replay refused', () => {
  const { a, b } = sessionPair();
  assert.equal(a.confirmed, true);
  assert.equal(b.confirmed, false, 'a responder session waits for its first packet');
  const pt = crypto.randomBytes(1000);
  const pkt = a.seal(pt);
  assert.equal(pkt.length, DATA_HEADER_BYTES + pt.length + TAG_BYTES);
  assert.equal(pkt[0], 0x12);
  assert.equal(pkt.readUInt32BE(1), 22, 'receiver index of the peer');
  assert.equal(pkt.readBigUInt64BE(5), 0n);
  const copy = Buffer.from(pkt);
  const out = b.open(pkt);
  assert.ok(Buffer.isBuffer(out));
  assert.deepEqual(out, pt);
  assert.equal(out.buffer, pkt.buffer, 'decrypted in place: a view into the packet');
  assert.equal(b.open(copy), 'replay');
  // In-place seal.
  const room = Buffer.alloc(DATA_HEADER_BYTES + 5 + TAG_BYTES);
  room.write('hello', DATA_HEADER_BYTES);
  assert.equal(a.sealInPlace(room), 5);
  assert.equal(room.readBigUInt64BE(5), 1n);
  assert.equal(String(b.open(room)), 'hello');
  assert.equal(a.bytesSent, 1005);
});

test('session: a tampered header or body fails authentication without moving the window', () => {
  const { a, b } = sessionPair();
  const pkt = a.seal(Buffer.from('data'));
  for (const at of [1, 6, 12, 14, pkt.length - 1]) {
    const bad = Buffer.from(pkt);
    bad[at]! ^= 0x80;
    assert.notEqual(b.open(bad) instanceof Buffer, true, `flip at ${at}`);
  }
  const forged = Buffer.from(pkt);
  forged.writeUInt32BE(5000, 9); // new counter, old tag
  assert.equal(b.open(forged), 'auth');
  assert.equal(b.window.highest, -1, 'window untouched');
  assert.equal(String(b.open(pkt)), 'data');
});

test('session: counters at or beyond the hard limit are refused even with a valid tag', () => {
  const { b, keyAtoB } = sessionPair();
  const mk = (counter: number): Buffer => {
    const pt = Buffer.from('late');
    const pkt = Buffer.alloc(DATA_HEADER_BYTES + pt.length + TAG_BYTES);
    pkt[0] = 0x12;
    pkt.writeUInt32BE(22, 1);
    pkt.writeBigUInt64BE(BigInt(counter), 5);
    sealInto(pkt.subarray(DATA_HEADER_BYTES), keyAtoB, counter, pt, pkt.subarray(0, DATA_HEADER_BYTES));
    return pkt;
  };
  assert.equal(String(b.open(mk(REJECT_AFTER_MESSAGES - 1))), 'late', 'just below is fine');
  assert.equal(b.open(mk(REJECT_AFTER_MESSAGES)), 'replay');
  const max = Buffer.from(mk(0));
  max.writeBigUInt64BE(2n ** 64n - 1n, 5);
  assert.equal(b.open(max), 'replay');
});

test('session: never encrypts after its deadline or counter limit; wipe forgets the keys', () => {
  const { a, b } = sessionPair();
  assert.equal(a.canSend(999), true);
  assert.equal(a.canSend(1000), false);
  a.sendCounter = REJECT_AFTER_MESSAGES;
  assert.equal(a.canSend(0), false);
  a.sendCounter = 0;
  const pkt = a.seal(Buffer.from('x'));
  b.wipe();
  assert.equal(b.open(pkt), 'auth');
});
