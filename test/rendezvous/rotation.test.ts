// rotate_key at a real rendezvous over real sockets (issue 18 key rotation): the address
// moves to the new key only with a statement signed by the old key AND a request signed by
// the new key; hostname and trust stay; the old key can no longer register or heartbeat;
// retries answer `already`; a second rotation within a minute is refused; trusted peers get
// a key_rotated push whose statement they can verify; resolve carries the statement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity } from '../../src/registry/signing.ts';
import { expandRotation, signRotation, verifyRotation } from '../../src/registry/rotation.ts';
import { parseAddress } from '../../src/wire/address.ts';
import { PilotError } from '../../src/util/errors.ts';
import type { Push } from '../../src/registry/protocol.ts';
import { makeTrust, sleep, startServer, udpPeer } from './helpers.ts';

const coded = (c: string) => (e: unknown) => {
  assert.ok(e instanceof PilotError, String(e));
  assert.equal(e.code, c, e.message);
  assert.ok(e.hint && e.hint.length > 0, `${c} has a hint`);
  return true;
};

test('rotate_key: forged statements refused; a real one rebinds the address; the old key is dead; peers are told', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close()]));
  const ra = await a.client.register({ email: 'a@example.com', hostname: 'alpha' });
  const rb = await b.client.register({ email: 'b@example.com' });
  await makeTrust(a, ra.address, b, rb.address);
  const pushes: Push[] = [];
  b.client.on('push', (p: Push) => pushes.push(p));
  const address = parseAddress(ra.address);
  const next = generateIdentity();

  // Not signed by the old key (a thief without it): refused.
  const thief = generateIdentity();
  const forged = signRotation({ address, oldKey: a.identity.publicKey, newKey: next.publicKey, ts: Date.now() }, thief.secretKey);
  await assert.rejects(a.client.rotateKey(forged, next), coded('BAD_SIGNATURE'));
  // Signed by the old key, but the request is not signed by the new key (no proof of possession): refused.
  const good = signRotation({ address, oldKey: a.identity.publicKey, newKey: next.publicKey, ts: Date.now() }, a.identity.secretKey);
  await assert.rejects(a.client.rotateKey(good, a.identity), coded('BAD_SIGNATURE'));
  // Someone else's address: refused (the old key is not that address's key).
  const other = signRotation({ address: parseAddress(rb.address), oldKey: a.identity.publicKey, newKey: next.publicKey, ts: Date.now() }, a.identity.secretKey);
  await assert.rejects(a.client.rotateKey(other, next), coded('KEY_ROTATED'));
  assert.deepEqual((await b.client.resolve({ address: ra.address })).publicKey, a.identity.publicKey.toString('base64'), 'nothing changed');

  // The real thing.
  const r = await a.client.rotateKey(good, next);
  assert.equal(r.address, ra.address);
  assert.equal(r.publicKey, next.publicKey.toString('base64'));
  assert.equal(r.already, false);
  // A retry (lost answer, crash): the same answer, nothing done twice.
  assert.equal((await a.client.rotateKey(good, next)).already, true);

  // The address, hostname and trust stay; the key is the new one; the statement comes along.
  const seen = await b.client.resolve({ address: ra.address });
  assert.equal(seen.publicKey, next.publicKey.toString('base64'));
  assert.equal(seen.hostname, 'alpha');
  assert.ok(seen.rotation, 'resolve carries the rotation statement');
  const checked = verifyRotation(expandRotation(seen.rotation, address, next.publicKey));
  assert.deepEqual(checked.oldKey, a.identity.publicKey);
  assert.deepEqual(checked.newKey, next.publicKey);
  assert.equal((await b.client.resolve({ hostname: 'alpha' })).publicKey, next.publicKey.toString('base64'));

  // The trusted peer was told, with a statement it can check itself.
  for (let i = 0; i < 100 && !pushes.some((p) => p.event === 'key_rotated'); i++) await sleep(10);
  const push = pushes.find((p) => p.event === 'key_rotated');
  assert.ok(push, `key_rotated pushed (got ${pushes.map((p) => p.event).join(',')})`);
  const d = push.data as { address: string; statement: string; sig: string };
  assert.equal(d.address, ra.address);
  assert.deepEqual(verifyRotation({ statement: d.statement, sig: Buffer.from(d.sig, 'base64') }).newKey, next.publicKey);

  // The old key no longer speaks for the address: register and heartbeat are refused.
  // (A heartbeat is refused before it reaches the handler: the key is unknown to the store.)
  await assert.rejects(a.client.heartbeat({}), (e: unknown) => e instanceof PilotError && (e.code === 'NOT_REGISTERED' || e.code === 'KEY_ROTATED'));
  await assert.rejects(a.client.register({ email: 'a@example.com' }), coded('KEY_ROTATED'));

  // The new key works, keeps the address and trust.
  const n = await udpPeer(s.port, { identity: next });
  t.after(() => n.close());
  const again = await n.client.register({ email: 'a@example.com' });
  assert.equal(again.address, ra.address);
  assert.equal(again.hostname, 'alpha');
  const trusted = await n.client.trustList();
  assert.ok(
    trusted.trusted.some((x: { peer: string }) => x.peer === rb.address),
    JSON.stringify(trusted),
  );

  // A second rotation at once: rate limited (a thief with the key cannot churn it).
  const third = generateIdentity();
  const soon = signRotation({ address, oldKey: next.publicKey, newKey: third.publicKey, ts: Date.now() }, next.secretKey);
  await assert.rejects(n.client.rotateKey(soon, third), coded('RATE_LIMITED'));
});
