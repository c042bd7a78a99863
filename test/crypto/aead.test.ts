import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { open, openInto, seal, sealInto, TAG_BYTES } from '../../src/crypto/aead.ts';

const key = crypto.randomBytes(32);
const ad = Buffer.from('0123456789abc');

test('AEAD round trip, and it is standard ChaCha20-Poly1305 with nonce 0^4 || u64be(counter)', () => {
  const pt = crypto.randomBytes(1200);
  const counter = 2 ** 40 + 7;
  const ct = seal(key, counter, pt, ad);
  assert.equal(ct.length, pt.length + TAG_BYTES);
  assert.deepEqual(open(key, counter, ct, ad), pt);
  // Cross-check against node:crypto with the documented nonce layout.
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(BigInt(counter), 4);
  const c = crypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  c.setAAD(ad, { plaintextLength: pt.length });
  assert.deepEqual(Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]), ct);
  // Empty plaintext still authenticates the ad.
  assert.deepEqual(open(key, 0, seal(key, 0, Buffer.alloc(0), ad), ad), Buffer.alloc(0));
});

test('AEAD rejects any flipped bit, wrong counter, key or ad, and short input', () => {
  const pt = crypto.randomBytes(300);
  const ct = seal(key, 7, pt, ad);
  assert.equal(open(key, 8, ct, ad), null);
  assert.equal(open(crypto.randomBytes(32), 7, ct, ad), null);
  assert.equal(open(key, 7, ct, Buffer.from('0123456789abC')), null);
  assert.equal(open(key, 7, ct, null), null);
  for (let i = 0; i < ct.length; i += 37) {
    const bad = Buffer.from(ct);
    bad[i]! ^= 0x01;
    assert.equal(open(key, 7, bad, ad), null, `bit flip at ${i}`);
  }
  assert.equal(open(key, 7, Buffer.alloc(3), ad), null);
  assert.equal(open(key, 7, ct.subarray(0, ct.length - 1), ad), null);
  assert.equal(open(key, -1, ct, ad), null);
  assert.equal(open(key, 2 ** 64, ct, ad), null);
  assert.equal(open(Buffer.alloc(5), 7, ct, ad), null);
});

test('AEAD in place: seal and open inside one packet buffer, no copies', () => {
  const pt = crypto.randomBytes(500);
  const pkt = Buffer.alloc(13 + pt.length + TAG_BYTES);
  pt.copy(pkt, 13);
  const body = pkt.subarray(13);
  sealInto(body, key, 3, body.subarray(0, pt.length), pkt.subarray(0, 13));
  assert.ok(!body.subarray(0, pt.length).equals(pt), 'encrypted');
  assert.ok(openInto(body.subarray(0, pt.length), key, 3, body, pkt.subarray(0, 13)));
  assert.deepEqual(body.subarray(0, pt.length), pt);
  // A failed open reports false (libsodium wipes the output).
  const ct = seal(key, 4, pt, ad);
  ct[0]! ^= 1;
  assert.equal(openInto(ct.subarray(0, pt.length), key, 4, ct, ad), false);
  assert.throws(() => sealInto(Buffer.alloc(10), key, 0, pt, ad));
});
