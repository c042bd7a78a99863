import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayCache } from '../../src/rendezvous/replay-cache.ts';
import { FrameDecoder, encodeFrame } from '../../src/rendezvous/tcp-framing.ts';
import { PilotError } from '../../src/util/errors.ts';

test('replay cache: retransmit vs replay, expiry, bounded with a stale watermark', () => {
  const c = new ReplayCache({ maxEntries: 3, windowMs: 60_000 });
  const now = 1_000_000;
  assert.deepEqual(c.lookup('n1', 'd1', now), { kind: 'new' });
  assert.equal(c.add('n1', 'd1', now, now), true);
  assert.deepEqual(c.lookup('n1', 'd1', now), { kind: 'retransmit', response: undefined }, 'in flight');
  c.setResponse('n1', Buffer.from('r'), now);
  assert.deepEqual(c.lookup('n1', 'd1', now), { kind: 'retransmit', response: Buffer.from('r') });
  assert.deepEqual(c.lookup('n1', 'd2', now), { kind: 'replayed' });
  c.add('n2', 'd', now + 1, now);
  c.add('n3', 'd', now + 2, now);
  // Full: n1 (the oldest ts) is evicted, so nothing with ts <= now is accepted any more.
  assert.equal(c.add('n4', 'd', now + 3, now), true);
  assert.equal(c.size, 3);
  assert.equal(c.lookup('n1', 'd1', now).kind, 'new');
  assert.equal(c.add('n1', 'd1', now, now), false, 'the evicted nonce cannot come back');
  assert.equal(c.add('n5', 'd', now, now), false);
  // Expired entries are pruned.
  c.prune(now + 200_000);
  assert.equal(c.size, 0);
});

test('replay cache: answers are kept for responseMs, nonces for the whole window', () => {
  const c = new ReplayCache({ windowMs: 60_000, responseMs: 1000 });
  const now = 5_000_000;
  c.add('n', 'd', now, now);
  c.setResponse('n', Buffer.from('answer'), now);
  assert.equal(c.lookup('n', 'd', now + 999).kind, 'retransmit');
  assert.deepEqual(c.lookup('n', 'd', now + 1001), { kind: 'replayed' }, 'identical copy after the response window is a replay');
  c.prune(now + 2000);
  assert.equal(c.size, 1, 'the nonce is still remembered');
  assert.deepEqual(c.lookup('n', 'd', now + 2000), { kind: 'replayed' });
  assert.deepEqual(c.lookup('n', 'd', now + 62_000), { kind: 'new' }, 'by then the timestamp is stale anyway');
});

test('replay cache: future-dated entries do not push the watermark past honest traffic', () => {
  const c = new ReplayCache({ maxEntries: 100, windowMs: 60_000 });
  const now = 9_000_000;
  // An attacker got in first with 90 requests dated now + 59 s (the most the freshness check allows)...
  for (let i = 0; i < 90; i++) assert.equal(c.add(`f${i}`, 'd', now + 59_000, now), true);
  // ...then honest traffic keeps coming: eviction takes the oldest timestamps, never the future ones.
  for (let i = 0; i < 300; i++) assert.equal(c.add(`h${i}`, 'd', now + i * 10, now + i * 10), true, `honest request ${i}`);
  assert.ok(c.size <= 100);
  for (let i = 0; i < 90; i++) assert.equal(c.lookup(`f${i}`, 'd', now).kind, 'retransmit', 'the future-dated nonces are still remembered');
});

test('frame decoder reassembles split frames and refuses oversized ones', () => {
  const d = new FrameDecoder(100);
  const all = Buffer.concat([encodeFrame(Buffer.from('hello')), encodeFrame(Buffer.alloc(0)), encodeFrame(Buffer.from('world'))]);
  const out: Buffer[] = [];
  for (const b of all) out.push(...d.push(Buffer.from([b])));
  assert.deepEqual(out.map(String), ['hello', '', 'world']);
  assert.throws(() => new FrameDecoder(100).push(encodeFrame(Buffer.alloc(101))), (e: PilotError) => e.code === 'FRAME_TOO_LARGE');
});
