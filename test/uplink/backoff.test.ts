// Reconnect delays: exponential, capped, jittered, reset after a good connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../../src/uplink/backoff.ts';

test('delays double up to the cap, with jitter in [0.5, 1.5) of the base', () => {
  const b = new Backoff({ minMs: 100, maxMs: 1000 });
  const low = () => 0;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map(() => b.next(low)),
    [50, 100, 200, 400, 500, 500],
  );
  b.reset();
  const high = () => 0.999999;
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => b.next(high)),
    [149, 299, 599, 1000, 1000],
    'never above the cap',
  );
  b.reset();
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const d = new Backoff({ minMs: 1000, maxMs: 60_000 }).next();
    assert.ok(d >= 500 && d < 1500);
    seen.add(d);
  }
  assert.ok(seen.size > 10, 'jitter spreads reconnects');
});
