// The datagram queue alone: copies, count and byte limits, byte accounting on shift and clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatagramQueue, MAX_QUEUED_DATAGRAM_BYTES, MAX_QUEUED_DATAGRAMS } from '../../src/transport/datagram-queue.ts';

test('a queued datagram is a copy: the caller may reuse its buffer', () => {
  const q = new DatagramQueue();
  const b = Buffer.from('hello');
  assert.equal(q.push(1, 2, b), true);
  b.write('HELLO');
  const d = q.peek()!;
  assert.deepEqual([d.srcPort, d.dstPort, d.data.toString()], [1, 2, 'hello']);
  assert.equal(q.bytes, 5);
  q.shift();
  assert.equal(q.length, 0);
  assert.equal(q.bytes, 0);
  assert.equal(q.peek(), undefined);
  q.shift(); // empty: harmless
  assert.equal(q.bytes, 0);
});

test('full by count or by bytes: false, nothing queued', () => {
  const q = new DatagramQueue();
  for (let i = 0; i < MAX_QUEUED_DATAGRAMS; i++) assert.equal(q.push(0, 0, Buffer.alloc(1)), true);
  assert.equal(q.push(0, 0, Buffer.alloc(1)), false);
  assert.equal(q.length, MAX_QUEUED_DATAGRAMS);
  q.clear();
  assert.equal(q.length, 0);
  assert.equal(q.bytes, 0);

  const big = Buffer.alloc(MAX_QUEUED_DATAGRAM_BYTES / 4);
  for (let i = 0; i < 4; i++) assert.equal(q.push(0, 0, big), true);
  assert.equal(q.push(0, 0, Buffer.alloc(1)), false, 'byte limit');
  q.shift();
  assert.equal(q.push(0, 0, Buffer.alloc(1)), true, 'room again after a shift');
  assert.equal(q.bytes, (3 * MAX_QUEUED_DATAGRAM_BYTES) / 4 + 1);
});
