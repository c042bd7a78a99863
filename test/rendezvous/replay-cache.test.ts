import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayCache } from '../../src/rendezvous/replay-cache.ts';
import { sourceKey } from '../../src/rendezvous/rate-limit.ts';
import { FrameDecoder, encodeFrame } from '../../src/wire/tcp-framing.ts';
import type { PilotError } from '../../src/util/errors.ts';

test('replay cache: retransmit vs replay, expiry, bounded per key with a per-key stale floor', () => {
  const c = new ReplayCache({ perKey: 3, windowMs: 60_000 });
  const now = 1_000_000;
  assert.deepEqual(c.lookup('k', 'n1', 'd1', now), { kind: 'new' });
  assert.equal(c.add('k', 'n1', 'd1', now, now), 'ok');
  assert.deepEqual(c.lookup('k', 'n1', 'd1', now), { kind: 'retransmit', response: undefined }, 'in flight');
  c.setResponse('k', 'n1', Buffer.from('r'), now);
  assert.deepEqual(c.lookup('k', 'n1', 'd1', now), { kind: 'retransmit', response: Buffer.from('r') });
  assert.deepEqual(c.lookup('k', 'n1', 'd2', now), { kind: 'replayed' });
  assert.deepEqual(c.lookup('other', 'n1', 'd1', now), { kind: 'new' }, 'nonces are per key');
  c.add('k', 'n2', 'd', now + 1, now);
  c.add('k', 'n3', 'd', now + 2, now);
  // The key's window is full: n1 (its oldest ts) is evicted, so nothing of k with ts <= now is accepted any more.
  assert.equal(c.add('k', 'n4', 'd', now + 3, now), 'ok');
  assert.equal(c.size, 3);
  assert.equal(c.lookup('k', 'n1', 'd1', now).kind, 'new');
  assert.equal(c.add('k', 'n1', 'd1', now, now), 'stale', 'the evicted nonce cannot come back');
  assert.equal(c.add('k', 'n5', 'd', now, now), 'stale');
  // ...while another key is not affected at all.
  assert.equal(c.add('j', 'n5', 'd', now, now), 'ok');
  // Expired entries are pruned, and the keys with them.
  c.prune(now + 200_000);
  assert.equal(c.size, 0);
  assert.equal(c.keys.total, 0);
});

test('replay cache: answers are kept for responseMs, nonces for the whole window', () => {
  const c = new ReplayCache({ windowMs: 60_000, responseMs: 1000 });
  const now = 5_000_000;
  c.add('k', 'n', 'd', now, now);
  c.setResponse('k', 'n', Buffer.from('answer'), now);
  assert.equal(c.lookup('k', 'n', 'd', now + 999).kind, 'retransmit');
  assert.deepEqual(c.lookup('k', 'n', 'd', now + 1001), { kind: 'replayed' }, 'identical copy after the response window is a replay');
  c.prune(now + 2000);
  assert.equal(c.size, 1, 'the nonce is still remembered');
  assert.deepEqual(c.lookup('k', 'n', 'd', now + 2000), { kind: 'replayed' });
  assert.deepEqual(c.lookup('k', 'n', 'd', now + 62_000), { kind: 'new' }, 'by then the timestamp is stale anyway');
});

test('replay cache: when the table is full, the heaviest keys are trimmed, light keys keep everything', () => {
  const c = new ReplayCache({ maxEntries: 100, perKey: 100, windowMs: 60_000 });
  const now = 9_000_000;
  // An honest key with a few requests in flight...
  for (let i = 0; i < 3; i++) assert.equal(c.add('honest', `h${i}`, 'd', now + i, now), 'ok');
  // ...then a flood from two keys, dated ahead.
  for (let i = 0; i < 500; i++) c.add(`flood${i % 2}`, `f${i}`, 'd', now + 4000 + i, now);
  assert.ok(c.size <= 100);
  for (let i = 0; i < 3; i++) assert.equal(c.lookup('honest', `h${i}`, 'd', now).kind, 'retransmit', 'the light key lost nothing');
  assert.equal(c.add('honest', 'h3', 'd', now + 10, now + 10), 'ok', 'and its next request is taken');
});

test('replay cache: unregistered keys are capped per source and in total, registered keys are not', () => {
  const c = new ReplayCache({ unknownPerSource: 2, maxUnknownKeys: 3, windowMs: 60_000 });
  const now = 1_000_000;
  const anon = (source: string) => ({ registered: false, source });
  assert.equal(c.add('a1', 'n', 'd', now, now, anon('10.0.0.1')), 'ok');
  assert.equal(c.add('a2', 'n', 'd', now, now, anon('10.0.0.1')), 'ok');
  assert.equal(c.add('a3', 'n', 'd', now, now, anon('10.0.0.1')), 'source', 'a third new key from the same source');
  assert.equal(c.add('a1', 'n2', 'd', now, now, anon('10.0.0.1')), 'ok', 'keys that have state keep working');
  assert.equal(c.add('b1', 'n', 'd', now, now, anon('10.0.0.2')), 'ok');
  assert.equal(c.add('b2', 'n', 'd', now, now, anon('10.0.0.2')), 'busy', 'the total cap');
  assert.equal(c.add('r1', 'n', 'd', now, now, { registered: true, source: '10.0.0.1' }), 'ok', 'registered keys are never refused for room');
  // a1 registers: it no longer counts against its source.
  assert.equal(c.add('a1', 'n3', 'd', now, now), 'ok');
  assert.equal(c.add('a3', 'n', 'd', now, now, anon('10.0.0.1')), 'ok');
  // Everything ages out: the source may bring new keys again.
  c.prune(now + 200_000);
  assert.deepEqual(c.keys, { total: 0, unknown: 0 });
});

test('frame decoder reassembles split frames and refuses oversized ones', () => {
  const d = new FrameDecoder(100);
  const all = Buffer.concat([encodeFrame(Buffer.from('hello')), encodeFrame(Buffer.alloc(0)), encodeFrame(Buffer.from('world'))]);
  const out: Buffer[] = [];
  for (const b of all) out.push(...d.push(Buffer.from([b])));
  assert.deepEqual(out.map(String), ['hello', '', 'world']);
  assert.throws(
    () => new FrameDecoder(100).push(encodeFrame(Buffer.alloc(101))),
    (e: PilotError) => e.code === 'FRAME_TOO_LARGE',
  );
});

test('per-source limits key IPv4 sources by address and IPv6 sources by /64', () => {
  assert.equal(sourceKey('192.0.2.7:4000'), '192.0.2.7');
  assert.equal(sourceKey('[2001:db8:1:2:aaaa::1]:9'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('[2001:db8:1:2:bbbb:cccc:dddd:eeee]:9'), '2001:db8:1:2::/64', 'one /64, one source');
  assert.equal(sourceKey('[2001:0db8::1]:9'), '2001:db8:0:0::/64');
  assert.equal(sourceKey('[::1]:9'), '0:0:0:0::/64');
  assert.notEqual(sourceKey('[2001:db8:1:3::1]:9'), sourceKey('[2001:db8:1:2::1]:9'));
});
