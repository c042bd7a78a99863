// The data path's two ChaCha20-Poly1305 implementations (src/crypto/data-key.ts): the native addon
// (OpenSSL inside Node) and libsodium must agree byte for byte, so that peers using either talk;
// a tampered packet or a wiped key never yields plaintext.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { aeadAddon, dataKey, type PacketLayout, useNative } from '../../src/crypto/data-key.ts';

const LAYOUT: PacketLayout = { adBytes: 13, counterAt: 5 };
const native = aeadAddon() !== undefined;

/** A packet with a random header holding `counter`, `len` random body bytes and room for the tag. */
function packet(len: number, counter: number): { pkt: Buffer; plain: Buffer } {
  const pkt = crypto.randomBytes(13 + len + 16);
  pkt.writeUInt32BE(Math.floor(counter / 0x100000000), 5);
  pkt.writeUInt32BE(counter >>> 0, 9);
  return { pkt, plain: Buffer.from(pkt.subarray(13, 13 + len)) };
}

test('the addon is built and loads here (Linux with the addon built by npm test)', () => {
  if (process.platform === 'linux') assert.ok(native, 'build/Release/pilot_aead.node did not load');
});

test("OpenSSL's AEAD only where it would not run AVX-512 code (it slowed the whole daemon), unless forced", () => {
  const avx512 = new Set(['sse4_2', 'avx2', 'avx512f', 'avx512ifma']);
  const avx2 = new Set(['sse4_2', 'avx2']);
  assert.equal(useNative({}, avx2), true, 'no AVX-512: OpenSSL');
  assert.equal(useNative({}, avx512), false, 'AVX-512 visible to OpenSSL: libsodium');
  assert.equal(useNative({ OPENSSL_ia32cap: ':~0x210000' }, avx512), true, "the daemon's launcher hides it");
  assert.equal(useNative({ OPENSSL_ia32cap: '~0x200000200000000:~0x10000' }, avx512), true, 'both words set, AVX512F hidden');
  assert.equal(useNative({ OPENSSL_ia32cap: ':~0x200000' }, avx512), false, 'IFMA hidden, AVX512F not');
  assert.equal(useNative({ OPENSSL_ia32cap: ':0x10000' }, avx512), false, 'a value without ~ sets bits, hides none');
  assert.equal(useNative({ OPENSSL_ia32cap: 'junk' }, avx512), false);
  assert.equal(useNative({ PILOT_NATIVE_AEAD: '1' }, avx512), true, 'forced on');
  assert.equal(useNative({ PILOT_NATIVE_AEAD: '0', OPENSSL_ia32cap: ':~0x210000' }, avx2), false, 'forced off');
});

test('native and libsodium seal to the same bytes and open each other', { skip: !native && 'no addon' }, () => {
  const key = crypto.randomBytes(32);
  const ns = dataKey(Buffer.from(key), true, LAYOUT, 'native');
  const no = dataKey(Buffer.from(key), false, LAYOUT, 'native');
  const ss = dataKey(Buffer.from(key), true, LAYOUT, 'sodium');
  const so = dataKey(Buffer.from(key), false, LAYOUT, 'sodium');
  for (const [len, counter] of [
    [0, 0],
    [1, 1],
    [1200, 2 ** 32 + 7],
    [1452, 2 ** 47 - 1],
    [9000, 123456],
  ] as const) {
    const a = packet(len, counter);
    const b = Buffer.from(a.pkt);
    ns.seal(a.pkt);
    ss.seal(b);
    assert.deepEqual(a.pkt, b, `same ciphertext and tag for ${len} bytes`);
    if (len > 0) assert.notDeepEqual(a.pkt.subarray(13, 13 + len), a.plain, 'encrypted');
    const c = Buffer.from(a.pkt);
    assert.ok(so.open(a.pkt), 'libsodium opens what the addon sealed');
    assert.ok(no.open(c), 'the addon opens what libsodium sealed');
    assert.deepEqual(a.pkt.subarray(13, 13 + len), a.plain);
    assert.deepEqual(c.subarray(13, 13 + len), a.plain);
  }
});

for (const impl of ['native', 'sodium'] as const) {
  test(`${impl}: a changed header, body or tag, or another key, does not open, and leaves no plaintext`, {
    skip: impl === 'native' && !native && 'no addon',
  }, () => {
    const key = crypto.randomBytes(32);
    const sealer = dataKey(Buffer.from(key), true, LAYOUT, impl);
    const opener = dataKey(Buffer.from(key), false, LAYOUT, impl);
    const other = dataKey(crypto.randomBytes(32), false, LAYOUT, impl);
    for (const flip of [0, 6, 12, 13, 500, 13 + 600 + 15]) {
      const { pkt, plain } = packet(600, 99);
      sealer.seal(pkt);
      pkt[flip]! ^= 0x40;
      assert.equal(opener.open(pkt), false, `flipped byte ${flip}`);
      // libsodium checks the tag before it decrypts; OpenSSL decrypts first, so the addon zeroes the body
      assert.notDeepEqual(pkt.subarray(13, 613), plain, 'no plaintext left');
      if (impl === 'native') assert.deepEqual(pkt.subarray(13, 613), Buffer.alloc(600), 'body zeroed');
    }
    const { pkt } = packet(100, 5);
    sealer.seal(pkt);
    assert.equal(other.open(Buffer.from(pkt)), false, 'another key');
    assert.equal(opener.open(pkt.subarray(0, 28)), false, 'shorter than header and tag');
    assert.ok(opener.open(pkt));
  });

  test(`${impl}: a wiped key neither seals nor opens`, { skip: impl === 'native' && !native && 'no addon' }, () => {
    const key = crypto.randomBytes(32);
    const sealer = dataKey(Buffer.from(key), true, LAYOUT, impl);
    const opener = dataKey(Buffer.from(key), false, LAYOUT, impl);
    const { pkt } = packet(64, 1);
    sealer.seal(pkt);
    opener.wipe();
    assert.equal(opener.open(pkt), false);
    sealer.wipe();
    assert.throws(() => sealer.seal(packet(64, 2).pkt), /wiped/);
  });
}

test('the addon refuses malformed calls instead of reading out of bounds', { skip: !native && 'no addon' }, () => {
  const b = aeadAddon()!;
  assert.throws(() => b.aeadKey(Buffer.alloc(31), true, 13, 5), TypeError);
  assert.throws(() => b.aeadKey(Buffer.alloc(32), true, 13, 6), TypeError, 'counter beyond the header');
  const h = b.aeadKey(Buffer.alloc(32), true, 13, 5);
  assert.throws(() => b.aeadSeal(h, Buffer.alloc(28)), TypeError, 'shorter than header + tag');
  assert.throws(() => b.aeadSeal({}, Buffer.alloc(64)), TypeError, 'not a handle');
  b.aeadWipe(h);
});
