// PairMap: the relay's per-pair table, keyed by two numbers, with an exact size for its cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PairMap } from '../../src/rendezvous/pair-map.ts';

test('PairMap keys ordered pairs and counts entries across both levels', () => {
  const m = new PairMap<number>();
  m.set(1, 2, 10);
  m.set(2, 1, 20);
  m.set(1, 3, 30);
  m.set(1, 2, 11); // overwrite: no new entry
  assert.equal(m.size, 3);
  assert.equal(m.get(1, 2), 11);
  assert.equal(m.get(2, 1), 20);
  assert.equal(m.get(3, 1), undefined);
  // 2^32 apart: keys are whole addressKey numbers (network * 2^32 + node), not truncated
  m.set(0x100000001, 2, 40);
  assert.equal(m.get(1, 2), 11);
  assert.equal(m.get(0x100000001, 2), 40);
  m.delete(1, 2);
  m.delete(1, 2);
  assert.equal(m.size, 3);
});

test('PairMap deleteNode drops every pair with the node on either side; sweep and clear', () => {
  const m = new PairMap<number>();
  for (const [s, d] of [
    [1, 2],
    [2, 1],
    [2, 3],
    [3, 4],
    [4, 2],
  ] as const)
    m.set(s, d, s * 10 + d);
  m.deleteNode(2);
  assert.equal(m.size, 1);
  assert.equal(m.get(3, 4), 34);
  m.set(5, 6, 1);
  m.sweep((v) => v === 1);
  assert.equal(m.size, 1);
  assert.equal(m.get(5, 6), undefined);
  m.clear();
  assert.equal(m.size, 0);
  assert.equal(m.get(3, 4), undefined);
});
