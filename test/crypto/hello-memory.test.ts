// HelloMemory (src/crypto/hello-memory.ts) on a controlled clock: our own hello
// timestamps, and the bounded memory of the newest one accepted per static key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HelloMemory } from '../../src/crypto/hello-memory.ts';

const address = { network: 1, node: 42 };
const bootId = Buffer.from('0123456789abcdef', 'hex');

test('own hellos carry our address and boot id, and strictly increasing timestamps even on a frozen or stepped-back clock', () => {
  let now = 5_000;
  const m = new HelloMemory({ localAddress: address, bootId, now: () => now });
  const a = m.own();
  assert.deepEqual(a.address, address);
  assert.ok(a.bootId.equals(bootId));
  assert.equal(a.timestamp, 5_000);
  assert.equal(m.own().timestamp, 5_001, 'same millisecond: one more');
  now = 4_000; // clock stepped back
  assert.equal(m.own().timestamp, 5_002);
  now = 9_000;
  assert.equal(m.own().timestamp, 9_000, 'follows the clock again once it is ahead');
});

test('a hello is fresh only when newer than the newest noted for its key; keys are independent', () => {
  const m = new HelloMemory({ localAddress: address, bootId, now: () => 0 });
  assert.equal(m.fresh('k1', 0), true, 'an unknown key: anything counts');
  m.note('k1', 100);
  assert.equal(m.fresh('k1', 100), false, 'the same timestamp is a replay');
  assert.equal(m.fresh('k1', 99), false);
  assert.equal(m.fresh('k1', 101), true);
  assert.equal(m.fresh('k2', 50), true);
  assert.equal(m.size, 1);
});

test('bounded: past maxKeys the key noted longest ago is forgotten; noting again makes a key recent', () => {
  const m = new HelloMemory({ localAddress: address, bootId, now: () => 0, maxKeys: 3 });
  m.note('a', 10);
  m.note('b', 10);
  m.note('c', 10);
  m.note('a', 20); // a is now the most recent
  m.note('d', 10); // evicts b, the least recently noted
  assert.equal(m.size, 3);
  assert.equal(m.fresh('b', 10), true, 'b was forgotten');
  assert.equal(m.fresh('a', 20), false);
  assert.equal(m.fresh('c', 10), false);
  assert.equal(m.fresh('d', 10), false);
});
