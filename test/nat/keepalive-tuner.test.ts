import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_KEEPALIVE_MS, KeepaliveTuner, MIN_KEEPALIVE_MS } from '../../src/nat/keepalive-tuner.ts';

test('the default holds until a mapping lapses; each lapse halves the interval (at most half the idle time), down to the floor', () => {
  const t = new KeepaliveTuner();
  assert.equal(t.interval(1), DEFAULT_KEEPALIVE_MS);
  assert.equal(t.lapsed(1, 10_400), 5_000, 'idle 10.4 s lapsed: half the 10 s interval');
  assert.equal(t.interval(1), 5_000);
  assert.equal(t.interval(2), DEFAULT_KEEPALIVE_MS, 'per peer');
  assert.equal(t.lapsed(1, 5_100), 2_500);
  assert.equal(t.lapsed(1, 2_600), MIN_KEEPALIVE_MS, 'the floor');
  assert.equal(t.lapsed(1, 0), MIN_KEEPALIVE_MS, 'never below it');
  assert.equal(t.lapsed(2, 6_000), 3_000, 'a short idle time that lapsed counts, not the interval');
  t.forget(1);
  assert.equal(t.interval(1), DEFAULT_KEEPALIVE_MS, 'forgotten with its peer');
});

test('the rendezvous keepalive runs only once some path learned a short lifetime, at that interval', () => {
  const t = new KeepaliveTuner();
  let now = 1_000_000;
  assert.equal(t.rendezvousDue(now), false, 'ordinary NATs: the registry heartbeat is enough');
  t.lapsed(7, 10_000);
  assert.equal(t.shortest(), 5_000);
  assert.equal(t.rendezvousDue(now), true);
  assert.equal(t.rendezvousDue(now + 4_900), false);
  now += 5_000;
  assert.equal(t.rendezvousDue(now), true);
  t.forget(7);
  assert.equal(t.rendezvousDue(now + 60_000), false, 'the peer that taught it is gone');
});

test("a peer's short keepalive cadence hints our rendezvous interval, never our path interval; sprays and default cadences do not", () => {
  const t = new KeepaliveTuner();
  let now = 1_000_000;
  for (let i = 0; i < 5; i++) t.peerKept(3, (now += 8_000)); // a peer at the default cadence (jittered)
  for (let i = 0; i < 20; i++) t.peerKept(3, (now += 100)); // punching rounds
  assert.equal(t.shortest(), DEFAULT_KEEPALIVE_MS, 'nothing learned from either');
  t.peerKept(3, (now += 4_000));
  t.peerKept(3, (now += 3_600));
  assert.equal(t.shortest(), 3_600, 'the peer learned a short lifetime: our rendezvous mapping needs it too');
  assert.equal(t.interval(3), DEFAULT_KEEPALIVE_MS, 'the path interval is our own (two sides would ratchet each other down)');
  assert.equal(t.rendezvousDue(now), true);
  t.forget(3);
  assert.equal(t.shortest(), DEFAULT_KEEPALIVE_MS);
});
