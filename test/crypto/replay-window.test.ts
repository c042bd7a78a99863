import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayWindow, REPLAY_WINDOW } from '../../src/crypto/replay-window.ts';
import { prng } from './pair.ts';

const accept = (w: ReplayWindow, n: number): boolean => {
  if (!w.check(n)) return false;
  w.commit(n);
  return true;
};

test('replay window: in order, out of order within the window, duplicates', () => {
  const w = new ReplayWindow();
  for (const n of [0, 1, 2, 5, 4, 3, 9, 7]) assert.equal(accept(w, n), true, `${n}`);
  for (const n of [0, 3, 5, 9, 7]) assert.equal(w.check(n), false, `dup ${n}`);
  assert.equal(accept(w, 6), true);
  assert.equal(accept(w, 8), true);
  assert.equal(w.highest, 9);
});

test('replay window: exactly 2048 counters wide; older ones are refused', () => {
  assert.equal(REPLAY_WINDOW, 2048);
  const w = new ReplayWindow();
  accept(w, 10_000);
  assert.equal(w.check(10_000 - 2047), true, 'oldest still inside');
  assert.equal(w.check(10_000 - 2048), false, 'just outside');
  assert.equal(w.check(0), false);
  // Every counter of the window can be used once.
  for (let n = 10_000 - 2047; n < 10_000; n++) assert.equal(accept(w, n), true, `${n}`);
  for (let n = 10_000 - 2047; n <= 10_000; n++) assert.equal(w.check(n), false, `${n}`);
});

test('replay window: check does not move it; only commit (after authentication) does', () => {
  const w = new ReplayWindow();
  accept(w, 100);
  assert.equal(w.check(1e12), true, 'a forged huge counter looks new');
  assert.equal(w.highest, 100, 'but the window did not move');
  assert.equal(accept(w, 99), true, 'real traffic behind it still gets in');
  w.commit(1e12);
  assert.equal(w.check(99 + 1), false, 'after a commit far ahead the old ones are out');
});

test('replay window: hostile numbers are refused', () => {
  const w = new ReplayWindow();
  for (const n of [-1, 1.5, NaN, Infinity, 2 ** 53]) assert.equal(w.check(n), false, String(n));
});

test('replay window: large jumps clear the ring; random traffic matches a reference set', () => {
  const rand = prng(42);
  const w = new ReplayWindow();
  const seen = new Set<number>();
  let max = -1;
  let base = 0;
  for (let i = 0; i < 50_000; i++) {
    if (rand() < 0.001) base += Math.floor(rand() * 100_000); // jump far ahead
    const n = Math.max(0, base + Math.floor(rand() * 3000) - 1500);
    const expected = !seen.has(n) && (n > max || max - n < REPLAY_WINDOW);
    assert.equal(w.check(n), expected, `counter ${n} (max ${max})`);
    if (expected && rand() < 0.9) {
      w.commit(n);
      seen.add(n);
      max = Math.max(max, n);
      base = Math.max(base, n);
    }
  }
});
