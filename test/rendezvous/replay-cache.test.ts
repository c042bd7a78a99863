import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayCache } from '../../src/rendezvous/replay-cache.ts';
import { FrameDecoder, encodeFrame } from '../../src/rendezvous/tcp-framing.ts';
import { PilotError } from '../../src/util/errors.ts';

test('replay cache: retransmit vs replay, expiry, bounded with a stale watermark', () => {
  const c = new ReplayCache(3, 60_000);
  const now = 1_000_000;
  assert.deepEqual(c.lookup('n1', 'd1', now), { kind: 'new' });
  assert.equal(c.add('n1', 'd1', now, now), true);
  assert.deepEqual(c.lookup('n1', 'd1', now), { kind: 'retransmit', response: undefined });
  c.setResponse('n1', Buffer.from('r'));
  assert.deepEqual(c.lookup('n1', 'd1', now), { kind: 'retransmit', response: Buffer.from('r') });
  assert.deepEqual(c.lookup('n1', 'd2', now), { kind: 'replayed' });
  c.add('n2', 'd', now + 1, now);
  c.add('n3', 'd', now + 2, now);
  // Full: n1 (ts = now) is evicted, so nothing with ts <= now is accepted any more.
  assert.equal(c.add('n4', 'd', now + 3, now), true);
  assert.equal(c.size, 3);
  assert.equal(c.add('n5', 'd', now, now), false);
  // Expired entries are pruned.
  c.prune(now + 200_000);
  assert.equal(c.size, 0);
});

test('frame decoder reassembles split frames and refuses oversized ones', () => {
  const d = new FrameDecoder(100);
  const all = Buffer.concat([encodeFrame(Buffer.from('hello')), encodeFrame(Buffer.alloc(0)), encodeFrame(Buffer.from('world'))]);
  const out: Buffer[] = [];
  for (const b of all) out.push(...d.push(Buffer.from([b])));
  assert.deepEqual(out.map(String), ['hello', '', 'world']);
  assert.throws(() => new FrameDecoder(100).push(encodeFrame(Buffer.alloc(101))), (e: PilotError) => e.code === 'FRAME_TOO_LARGE');
});
