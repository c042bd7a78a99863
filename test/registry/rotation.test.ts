// Key rotation statements (src/registry/rotation.ts): signed by the old key, canonical,
// strictly parsed; KeyLinks follows only verified chains within one address, bounded;
// membership credentials made for (or by) a rotated key count for its successor only
// through such a chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity } from '../../src/registry/signing.ts';
import { encodeRotation, expandRotation, compactRotation, KeyLinks, MAX_ROTATION_CHAIN, signRotation, verifyRotation } from '../../src/registry/rotation.ts';
import { makeBinding, makeInvite, verifyCredential } from '../../src/registry/membership.ts';
import { makeAddress } from '../../src/wire/address.ts';
import { PilotError } from '../../src/util/errors.ts';

const A = makeAddress(0, 42);
const badSig = (e: unknown) => e instanceof PilotError && e.code === 'BAD_SIGNATURE' && typeof e.hint === 'string';

test('a statement verifies only with the old key signature, in canonical form, with both keys distinct', () => {
  const old = generateIdentity();
  const next = generateIdentity();
  const s = signRotation({ address: A, oldKey: old.publicKey, newKey: next.publicKey, ts: 123 }, old.secretKey);
  const r = verifyRotation(s);
  assert.deepEqual(r.oldKey, old.publicKey);
  assert.deepEqual(r.newKey, next.publicKey);
  assert.deepEqual(r.address, A);
  // signed by anyone else (the new key, a thief): refused
  assert.throws(() => verifyRotation(signRotation({ address: A, oldKey: old.publicKey, newKey: next.publicKey, ts: 123 }, next.secretKey)), badSig);
  // a changed byte anywhere: refused
  assert.throws(() => verifyRotation({ statement: s.statement.replace('"ts":123', '"ts":124'), sig: s.sig }), badSig);
  // non-canonical text (spaces, reordered, extra fields), junk, huge: refused before any signature check
  assert.throws(() => verifyRotation({ statement: s.statement.replace(',"ts"', ', "ts"'), sig: s.sig }), /canonical/);
  assert.throws(() => verifyRotation({ statement: s.statement.replace('}', ',"x":1}'), sig: s.sig }), /unknown fields/);
  assert.throws(() => verifyRotation({ statement: 'null', sig: s.sig }), badSig);
  assert.throws(() => verifyRotation({ statement: 'x'.repeat(5000), sig: s.sig }), /too long/);
  assert.throws(
    () =>
      signRotation({ address: A, oldKey: old.publicKey, newKey: old.publicKey, ts: 1 }, old.secretKey) &&
      verifyRotation(signRotation({ address: A, oldKey: old.publicKey, newKey: old.publicKey, ts: 1 }, old.secretKey)),
    /new key is the old key/,
  );
  // the compact form a resolve answer carries rebuilds exactly the signed text
  const c = compactRotation(s);
  assert.equal(expandRotation(c, A, next.publicKey).statement, s.statement);
  assert.equal(encodeRotation(r), s.statement);
});

test('KeyLinks: verified links only, chains within one address, at most MAX_ROTATION_CHAIN steps, bounded size', () => {
  const keys = Array.from({ length: MAX_ROTATION_CHAIN + 2 }, () => generateIdentity());
  const links = new KeyLinks(100);
  for (let i = 0; i + 1 < keys.length; i++) {
    assert.ok(links.add(signRotation({ address: A, oldKey: keys[i]!.publicKey, newKey: keys[i + 1]!.publicKey, ts: i }, keys[i]!.secretKey)));
  }
  assert.equal(links.linked(keys[0]!.publicKey, keys[1]!.publicKey), true);
  assert.equal(links.linked(keys[0]!.publicKey, keys[MAX_ROTATION_CHAIN]!.publicKey), true, 'a chain of MAX_ROTATION_CHAIN links');
  assert.equal(links.linked(keys[0]!.publicKey, keys[MAX_ROTATION_CHAIN + 1]!.publicKey), false, 'one more is too long');
  assert.equal(links.linked(keys[1]!.publicKey, keys[0]!.publicKey), false, 'links point forward only');
  // a forged link (not signed by the old key) is not recorded
  const mallory = generateIdentity();
  const victim = generateIdentity();
  assert.equal(links.add(signRotation({ address: A, oldKey: victim.publicKey, newKey: mallory.publicKey, ts: 1 }, mallory.secretKey)), undefined);
  assert.equal(links.linked(victim.publicKey, mallory.publicKey), false);
  // a link that jumps to another address does not continue a chain
  const x = generateIdentity();
  links.add(
    signRotation({ address: makeAddress(0, 7), oldKey: keys[keys.length - 1]!.publicKey, newKey: x.publicKey, ts: 1 }, keys[keys.length - 1]!.secretKey),
  );
  assert.equal(links.linked(keys[keys.length - 2]!.publicKey, x.publicKey), false);
  // bounded: the oldest links go first
  const small = new KeyLinks(2);
  const k = Array.from({ length: 4 }, () => generateIdentity());
  for (let i = 0; i < 3; i++) small.add(signRotation({ address: A, oldKey: k[i]!.publicKey, newKey: k[i + 1]!.publicKey, ts: i }, k[i]!.secretKey));
  assert.equal(small.size, 2);
  assert.equal(small.linked(k[0]!.publicKey, k[1]!.publicKey), false);
  assert.equal(small.linked(k[1]!.publicKey, k[3]!.publicKey), true);
});

test('a credential for a rotated member or from a rotated admin counts only through a verified chain', () => {
  const NOW = 1_800_000_000_000;
  const admin = generateIdentity();
  const member = generateIdentity();
  const inv = makeInvite(admin, { net: 7, tags: ['worker'], now: NOW });
  const { credential } = makeBinding(inv.token, member, NOW + 1000);
  const member2 = generateIdentity();
  const admin2 = generateIdentity();
  const links = new KeyLinks();
  const linked = (o: Buffer, c: Buffer) => links.linked(o, c);
  const check = (adminKey: Buffer, nodeKey: Buffer) => verifyCredential(credential, { adminKey, net: 7, nodeKey, now: NOW + 2000, linked });
  // before any rotation is known: the new keys do not match
  assert.equal(check(admin.publicKey, member2.publicKey).ok, false);
  assert.equal(check(admin2.publicKey, member.publicKey).ok, false);
  // the member rotated (signed by its old key): its credential now counts for the new key
  links.add(signRotation({ address: A, oldKey: member.publicKey, newKey: member2.publicKey, ts: 1 }, member.secretKey));
  assert.equal(check(admin.publicKey, member2.publicKey).ok, true);
  // the admin rotated: certificates signed by its old key still count under the new admin key
  links.add(signRotation({ address: makeAddress(0, 1), oldKey: admin.publicKey, newKey: admin2.publicKey, ts: 1 }, admin.secretKey));
  assert.equal(check(admin2.publicKey, member2.publicKey).ok, true);
  // a key nobody linked is still refused, and without `linked` keys must match exactly
  assert.equal(check(admin2.publicKey, generateIdentity().publicKey).ok, false);
  assert.equal(verifyCredential(credential, { adminKey: admin.publicKey, net: 7, nodeKey: member2.publicKey, now: NOW + 2000 }).ok, false);
});
