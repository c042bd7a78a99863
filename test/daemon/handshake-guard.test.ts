// PeerVerifier (src/daemon/handshake-guard.ts): the registry lookup behind a
// message 1 is shared while in flight, a contradicted claim is refused from
// memory, and lookups are rate-limited per claimed key and overall.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { handshakeSource, PeerVerifier } from '../../src/daemon/handshake-guard.ts';
import type { Address } from '../../src/wire/address.ts';

const alice: Address = { network: 0, node: 7 };
const aliceKey = crypto.randomBytes(32);

function verifier(opts: { fail?: boolean; now?: () => number; maxPerSecond?: number } = {}) {
  const calls: Address[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const v = new PeerVerifier({
    lookup: async (a: Address) => {
      calls.push(a);
      await gate;
      if (opts.fail) throw new Error('registry down');
      return { address: a, publicKey: aliceKey };
    },
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.maxPerSecond ? { maxPerSecond: opts.maxPerSecond } : {}),
  });
  return { v, calls, release };
}

test('concurrent checks of one claim share one lookup', async () => {
  const { v, calls, release } = verifier();
  const all = Array.from({ length: 100 }, () => v.verify(alice, aliceKey));
  release();
  const got = await Promise.all(all);
  assert.equal(calls.length, 1);
  assert.ok(got.every((r) => r?.publicKey.equals(aliceKey)));
  assert.equal(v.stats.shared, 99);
});

test('a claim the registry contradicts is refused from memory until it expires; per-key lookups are rate-limited', async () => {
  let t = 1_000_000;
  const { v, calls, release } = verifier({ now: () => t });
  release();
  const mallory = crypto.randomBytes(32);
  assert.equal(await v.verify(alice, mallory), undefined);
  for (let i = 0; i < 100; i++) assert.equal(await v.verify(alice, mallory), undefined);
  assert.equal(calls.length, 1, 'one lookup for 101 attempts');
  assert.equal(v.stats.refusedCached, 100);
  // The same key claiming other addresses: one key, few lookups (burst 2, then 1 per 2 s).
  for (let i = 0; i < 50; i++) await v.verify({ network: 0, node: 100 + i }, mallory);
  assert.equal(calls.length, 2);
  assert.ok(v.stats.limited >= 49);
  t += 10_001; // refusal expired, bucket refilled
  assert.equal(await v.verify(alice, mallory), undefined);
  assert.equal(calls.length, 3);
  assert.ok((await v.verify(alice, aliceKey)) !== undefined, 'the real key still verifies');
});

test('a failed lookup is not cached as a refusal; all lookups together are capped', async () => {
  const { v, calls, release } = verifier({ fail: true, maxPerSecond: 5 });
  release();
  assert.equal(await v.verify(alice, aliceKey), undefined);
  assert.equal(await v.verify(alice, aliceKey), undefined);
  assert.equal(calls.length, 2, 'retried (within the per-key burst)');
  for (let i = 0; i < 20; i++) await v.verify({ network: 0, node: 200 + i }, crypto.randomBytes(32));
  assert.equal(calls.length, 5, 'overall cap');
});

test('handshakeSource: direct counts per IP and binds cookies to IP:port; relayed per authenticated node', () => {
  assert.deepEqual(handshakeSource({ kind: 'direct', host: '10.0.0.1', port: 5 }), { bucket: '10.0.0.1', cookie: '10.0.0.1:5/0' });
  assert.deepEqual(handshakeSource({ kind: 'direct', host: '10.0.0.1', port: 5, sock: 3 }), { bucket: '10.0.0.1', cookie: '10.0.0.1:5/3' });
  const r = handshakeSource({ kind: 'relay', from: alice });
  assert.equal(r.bucket, r.cookie);
  assert.notEqual(r.bucket, handshakeSource({ kind: 'relay', from: { network: 0, node: 8 } }).bucket);
});
