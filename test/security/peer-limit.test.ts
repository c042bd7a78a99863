// The untrusted peer bound on its own: idle expiry and LRU eviction at the cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerLimit } from '../../src/daemon/peer-limit.ts';

test('idle untrusted peers are due after idleMs, not before', () => {
  const l = new PeerLimit({ idleMs: 1000, maxUntrusted: 10 });
  const peers = [
    { key: 1, lastActive: 0 },
    { key: 2, lastActive: 500 },
    { key: 3, lastActive: 1500 },
  ];
  assert.deepEqual(l.idle(peers, 999), []);
  assert.deepEqual(l.idle(peers, 1000), [1]);
  assert.deepEqual(l.idle(peers, 2600), [1, 2, 3]);
  assert.equal(l.sweepEveryMs, 250);
  assert.equal(new PeerLimit({ idleMs: 600_000 }).sweepEveryMs, 5000);
});

test('at the cap a newcomer evicts the least recently active; below it nobody', () => {
  const l = new PeerLimit({ idleMs: 60_000, maxUntrusted: 3 });
  assert.deepEqual(
    l.makeRoom([
      { key: 1, lastActive: 5 },
      { key: 2, lastActive: 1 },
    ]),
    [],
  );
  assert.deepEqual(
    l.makeRoom([
      { key: 1, lastActive: 5 },
      { key: 2, lastActive: 1 },
      { key: 3, lastActive: 9 },
    ]),
    [2],
  );
  // over the cap (it was lowered): enough go, oldest first
  assert.deepEqual(
    l.makeRoom([
      { key: 1, lastActive: 5 },
      { key: 2, lastActive: 1 },
      { key: 3, lastActive: 9 },
      { key: 4, lastActive: 3 },
    ]),
    [2, 4],
  );
});
