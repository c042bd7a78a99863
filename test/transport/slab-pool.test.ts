// Stream data waiting for its ACK lives in pooled slabs (src/transport/slab-pool.ts), not in the
// Buffers the application wrote: those must be free to die young (issue 20: a sending daemon spent
// ~13% of its CPU in major collections of promoted 64 KiB reads).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { SendBuffer } from '../../src/transport/send-buffer.ts';
import { SLAB_BYTES, SlabPool } from '../../src/transport/slab-pool.ts';

/** Everything the buffer would send, read back in packets of `mtu` bytes. */
function sendAll(sb: SendBuffer, mtu: number): Buffer {
  const parts: Buffer[] = [];
  while (sb.peek(mtu, Number.MAX_SAFE_INTEGER)) {
    const out = Buffer.alloc(sb.outLen);
    sb.copyOut(out, 0, sb.outOff, sb.outLen);
    parts.push(out);
    sb.commit();
    if (sb.outFin) break;
  }
  return Buffer.concat(parts);
}

test('a written Buffer is not kept: changing it afterwards does not change what is sent', () => {
  const sb = new SendBuffer(new SlabPool());
  const chunk = Buffer.from('hello, slab');
  sb.write(chunk);
  chunk.fill(0x21);
  assert.equal(sendAll(sb, 1200).toString(), 'hello, slab');
});

test('bytes survive slab boundaries, mixed sizes, big writes kept as they are, losses and resends', () => {
  const pool = new SlabPool();
  const sb = new SendBuffer(pool);
  const sizes = [1, 7, 1500, 65_535, 3, 70_000, 40_000, 40_000, 12, 65_536, 100, 200_000, 5];
  const written = sizes.map((n) => crypto.randomBytes(n));
  for (const w of written) sb.write(w);
  const all = Buffer.concat(written);
  assert.equal(sb.writeOffset, all.length);
  assert.deepEqual(sendAll(sb, 1337), all);
  // lose a range that crosses slabs and the big kept chunk, and read it again
  sb.onLost(60_000, 150_000, false);
  const again = Buffer.alloc(150_000);
  let got = 0;
  while (sb.peek(1200, Number.MAX_SAFE_INTEGER) && !sb.outNew) {
    sb.copyOut(again, sb.outOff - 60_000, sb.outOff, sb.outLen);
    got += sb.outLen;
    sb.commit();
  }
  assert.equal(got, 150_000);
  assert.deepEqual(again, all.subarray(60_000, 210_000));
});

test('acked slabs go back to the pool, the last one once everything is acked; the pool is bounded', () => {
  const pool = new SlabPool();
  const sb = new SendBuffer(pool);
  for (let i = 0; i < 10; i++) sb.write(crypto.randomBytes(30_000)); // 300,000 bytes: 5 slabs
  sendAll(sb, 1200);
  assert.equal(pool.idle, 0);
  sb.onAcked(0, 2 * SLAB_BYTES, false);
  assert.equal(pool.idle, 2, 'the two slabs below the floor');
  sb.onAcked(2 * SLAB_BYTES, 300_000 - 2 * SLAB_BYTES - 1, false);
  assert.equal(pool.idle, 4, 'the slab being filled stays while a byte of it is unacked');
  sb.onAcked(0, 300_000, false);
  assert.equal(pool.idle, 5, 'all acked: the stream holds no slab');
  // the next write takes a slab from the pool and the bytes are right
  sb.write(Buffer.from('after'));
  assert.equal(pool.idle, 4);
  assert.equal(sendAll(sb, 1200).toString(), 'after');
  // bounded: a reset hands back its slabs, the pool keeps at most 16
  const big = new SendBuffer(pool);
  for (let i = 0; i < 40; i++) big.write(crypto.randomBytes(SLAB_BYTES - 1));
  big.discard();
  assert.equal(pool.idle, 16);
});
