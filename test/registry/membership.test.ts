// Membership formats (issue 18): invite certificate, join token, binding, ticket, policy
// signature. Round trips, every single-byte tamper, wrong keys, expiry, bounds, garbage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity } from '../../src/registry/signing.ts';
import { PilotError } from '../../src/util/errors.ts';
import {
  BINDING_BYTES,
  CERT_MAX_BYTES,
  decodeBinding,
  decodeCert,
  decodeTicket,
  encodeCert,
  makeBinding,
  makeInvite,
  parseToken,
  signPolicy,
  signTicket,
  TOKEN_PREFIX,
  verifyCertSig,
  verifyCredential,
  verifyPolicy,
  verifyTicket,
  type Credential,
} from '../../src/registry/membership.ts';

const isArg = (msg: RegExp) => (e: unknown) => e instanceof PilotError && e.code === 'BAD_ARGUMENT' && msg.test(e.message);
const NOW = 1_800_000_000_000;

function setup(opts: Partial<Parameters<typeof makeInvite>[1]> = {}) {
  const admin = generateIdentity();
  const node = generateIdentity();
  const inv = makeInvite(admin, { net: 7, tags: ['worker', 'gpu'], uses: 3, expiresIn: 3600, now: NOW, ...opts });
  const { credential } = makeBinding(inv.token, node, NOW + 1000);
  return { admin, node, inv, credential };
}

const expectFor = (s: ReturnType<typeof setup>) => ({ adminKey: s.admin.publicKey, net: 7, nodeKey: s.node.publicKey, now: NOW + 2000 });

test('invite round trip: token parses back to the signed certificate; canonical tags', () => {
  const s = setup();
  assert.ok(s.inv.token.startsWith(TOKEN_PREFIX));
  const t = parseToken(s.inv.token, NOW);
  assert.deepEqual(t.cert, s.inv.cert);
  assert.deepEqual(t.certSig, s.inv.certSig);
  assert.equal(t.inviteId, s.inv.inviteId);
  assert.equal(t.inviteId.length, 32);
  assert.deepEqual(t.invite.tags, ['gpu', 'worker'], 'sorted');
  assert.equal(t.invite.net, 7);
  assert.equal(t.invite.uses, 3);
  assert.equal(t.invite.exp, NOW / 1000 + 3600);
  assert.equal(t.invite.ephemeral, false);
  assert.deepEqual(t.inviteKey.publicKey, t.invite.invKey);
  assert.deepEqual(decodeCert(encodeCert(t.invite)), t.invite);
  assert.ok(verifyCertSig(t.cert, t.certSig, s.admin.publicKey));
  const e = makeInvite(s.admin, { net: 1, ephemeral: true, now: NOW });
  const pe = parseToken(e.token);
  assert.equal(pe.invite.ephemeral, true);
  assert.equal(pe.invite.exp, 0, 'never expires');
  assert.equal(pe.invite.uses, 0, 'unlimited');
});

test('credential verifies; tags and ephemeral come from the certificate', () => {
  const s = setup({ ephemeral: true });
  const v = verifyCredential(s.credential, expectFor(s));
  assert.ok(v.ok, JSON.stringify(v));
  assert.deepEqual(v.tags, ['gpu', 'worker']);
  assert.equal(v.ephemeral, true);
  assert.equal(v.inviteId, s.inv.inviteId);
  assert.equal(v.binding.ts, (NOW + 1000) / 1000);
  assert.equal(decodeBinding(s.credential.binding).node.equals(s.node.publicKey), true);
});

test('every single-byte flip in cert, certSig, binding or bindingSig fails verification', () => {
  const s = setup();
  const exp = expectFor(s);
  for (const field of ['cert', 'certSig', 'binding', 'bindingSig'] as const) {
    const orig = s.credential[field];
    for (let i = 0; i < orig.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const b = Buffer.from(orig);
        b[i]! ^= bit;
        const c: Credential = { ...s.credential, [field]: b };
        const v = verifyCredential(c, exp);
        assert.equal(v.ok, false, `${field}[${i}] ^ ${bit} still verified`);
      }
    }
    // Truncated and extended.
    assert.equal(verifyCredential({ ...s.credential, [field]: orig.subarray(0, orig.length - 1) }, exp).ok, false);
    assert.equal(verifyCredential({ ...s.credential, [field]: Buffer.concat([orig, Buffer.alloc(1)]) }, exp).ok, false);
  }
});

test('wrong admin, wrong network, wrong node, binding signed by a key that did not hold the token', () => {
  const s = setup();
  const exp = expectFor(s);
  assert.match(String((verifyCredential(s.credential, { ...exp, adminKey: generateIdentity().publicKey }) as { reason: string }).reason), /admin/);
  assert.equal(verifyCredential(s.credential, { ...exp, net: 8 }).ok, false);
  assert.equal(verifyCredential(s.credential, { ...exp, nodeKey: generateIdentity().publicKey }).ok, false);
  // A certificate re-signed by another admin key for the same network: refused (the peer knows A).
  const mallory = generateIdentity();
  const forged = makeInvite(mallory, { net: 7, now: NOW });
  const fb = makeBinding(forged.token, s.node, NOW);
  assert.equal(verifyCredential(fb.credential, exp).ok, false);
  // Someone without the invite seed signs a binding with its own key: refused.
  const other = generateIdentity();
  const t = parseToken(s.inv.token);
  const fake = makeBinding({ ...t, inviteKey: other }, s.node, NOW);
  const v = verifyCredential(fake.credential, exp);
  assert.equal(v.ok, false);
  assert.match((v as { reason: string }).reason, /binding signature/);
  // A binding for another invite of the same admin: refused.
  const inv2 = makeInvite(s.admin, { net: 7, now: NOW });
  const b2 = makeBinding(inv2.token, s.node, NOW);
  assert.equal(verifyCredential({ ...s.credential, binding: b2.binding, bindingSig: b2.bindingSig }, exp).ok, false);
});

test('expired invites: token refused after exp, binding after exp refused by verifiers, future binding refused', () => {
  const s = setup({ expiresIn: 60 });
  assert.throws(() => parseToken(s.inv.token, NOW + 60_000), isArg(/token expired/));
  assert.ok(parseToken(s.inv.token, NOW + 59_000));
  assert.throws(() => makeBinding(s.inv.token, s.node, NOW + 61_000), isArg(/token expired/));
  // Made (by hand) after the expiry: a verifier refuses it.
  const late = makeBinding(parseToken(s.inv.token), s.node, NOW + 120_000);
  assert.match(String((verifyCredential(late.credential, expectFor(s)) as { reason: string }).reason), /after the invite expired/);
  const future = makeBinding(parseToken(makeInvite(s.admin, { net: 7, now: NOW }).token), s.node, NOW + 3600_000);
  const v = verifyCredential(future.credential, { ...expectFor(s), now: NOW });
  assert.equal(v.ok, false);
});

test('tags: too many, too long, upper case refused at invite time; certificate bounds', () => {
  const admin = generateIdentity();
  assert.throws(() => makeInvite(admin, { net: 1, tags: Array.from({ length: 9 }, (_, i) => `t${i}`) }), isArg(/at most 8/));
  assert.throws(() => makeInvite(admin, { net: 1, tags: ['x'.repeat(33)] }), isArg(/1-32/));
  assert.throws(() => makeInvite(admin, { net: 1, tags: ['Worker'] }), isArg(/only a-z/));
  assert.throws(() => makeInvite(admin, { net: 0 }), isArg(/network id/));
  assert.throws(() => makeInvite(admin, { net: 65536 }), isArg(/network id/));
  const big = makeInvite(admin, { net: 65535, tags: Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(32, 'x')) });
  assert.equal(big.cert.length, CERT_MAX_BYTES);
  assert.ok(parseToken(big.token));
  // Non-canonical encodings of the same data are refused.
  const c = decodeCert(big.cert);
  const raw = Buffer.from(big.cert);
  // Swap the first two tags' first bytes: still valid tags, no longer sorted.
  const swapped = encodeRaw({ ...c, tags: [c.tags[1]!, c.tags[0]!, ...c.tags.slice(2)] });
  assert.throws(() => decodeCert(swapped), isArg(/sorted/));
  assert.throws(() => decodeCert(Buffer.concat([raw, Buffer.from([0])])), isArg(/length|trailing/));
  const flags = Buffer.from(makeInvite(admin, { net: 1 }).cert);
  flags[flags.length - 2] = 2;
  assert.throws(() => decodeCert(flags), isArg(/flags/));
  const ver = Buffer.from(flags);
  ver[0] = 2;
  assert.throws(() => decodeCert(ver), isArg(/version/));
  assert.throws(() => decodeBinding(Buffer.alloc(BINDING_BYTES)), isArg(/version|network 0/));
});

/** A certificate encoding that skips encodeCert's normalisation (to build non-canonical ones). */
function encodeRaw(c: ReturnType<typeof decodeCert>): Buffer {
  const head = encodeCert({ ...c, tags: [] });
  const parts = [head.subarray(0, head.length - 1), Buffer.from([c.tags.length])];
  for (const t of c.tags) parts.push(Buffer.from([t.length]), Buffer.from(t));
  return Buffer.concat(parts);
}

test('token garbage gets coded errors', () => {
  const s = setup();
  const [cert, sig, seed] = s.inv.token.slice(TOKEN_PREFIX.length).split('.') as [string, string, string];
  const cases: [string, RegExp][] = [
    ['', /not a join token/],
    ['hello', /not a join token/],
    ['pilot-join-2.a.b.c', /not a join token/],
    [`${TOKEN_PREFIX}`, /damaged/],
    [`${TOKEN_PREFIX}${cert}.${sig}`, /damaged/],
    [`${TOKEN_PREFIX}${cert}.${sig}.${seed}.x`, /damaged/],
    [`${TOKEN_PREFIX}${cert}.${sig}.${seed}!`, /base64url/],
    [`${TOKEN_PREFIX}${cert}.${sig}.${seed.slice(0, -2)}`, /damaged/],
    [`${TOKEN_PREFIX}${cert.slice(0, 20)}.${sig}.${seed}`, /damaged|length/],
    [`${TOKEN_PREFIX}${cert}.${Buffer.alloc(64).toString('base64url')}.${seed}`, /signature/],
    [`${TOKEN_PREFIX}${cert}.${sig}.${Buffer.alloc(32, 1).toString('base64url')}`, /secret does not match/],
    [`${TOKEN_PREFIX}${'A'.repeat(5000)}`, /too long/],
  ];
  for (const [tok, re] of cases) assert.throws(() => parseToken(tok), isArg(re), tok.slice(0, 40));
  assert.throws(() => parseToken(123 as unknown as string), isArg(/not a join token/));
});

test('tickets: signed by the rendezvous, bound to net and node, expire', () => {
  const server = generateIdentity();
  const node = generateIdentity().publicKey;
  const { ticket, sig, exp } = signTicket(server, { net: 9, node, now: NOW });
  assert.equal(exp, NOW / 1000 + 300);
  assert.deepEqual(decodeTicket(ticket), { net: 9, node, exp });
  assert.equal(verifyTicket(ticket, sig, server.publicKey, { net: 9, nodeKey: node, now: NOW }), true);
  assert.match(String(verifyTicket(ticket, sig, server.publicKey, { net: 9, nodeKey: node, now: NOW + 300_000 })), /expired/);
  assert.match(String(verifyTicket(ticket, sig, server.publicKey, { net: 8, nodeKey: node, now: NOW })), /network/);
  assert.match(String(verifyTicket(ticket, sig, server.publicKey, { net: 9, nodeKey: server.publicKey, now: NOW })), /node/);
  assert.match(String(verifyTicket(ticket, sig, generateIdentity().publicKey, { net: 9, nodeKey: node, now: NOW })), /signature/);
  for (let i = 0; i < ticket.length; i++) {
    const b = Buffer.from(ticket);
    b[i]! ^= 1;
    assert.notEqual(verifyTicket(b, sig, server.publicKey, { net: 9, nodeKey: node, now: NOW }), true);
  }
  // A ticket signature is no certificate signature (domain separation), and vice versa.
  assert.equal(verifyCertSig(ticket, sig, server.publicKey), false);
});

test('policy signatures are bound to the network, the version and the exact text', () => {
  const admin = generateIdentity();
  const text = '{ "rules": [] }';
  const sig = signPolicy(admin, 3, text, NOW);
  assert.ok(verifyPolicy(3, text, sig, admin.publicKey, NOW));
  assert.equal(verifyPolicy(4, text, sig, admin.publicKey, NOW), false);
  assert.equal(verifyPolicy(3, text, sig, admin.publicKey, NOW - 1), false, 'another version');
  assert.equal(verifyPolicy(3, `${text} `, sig, admin.publicKey, NOW), false);
  assert.equal(verifyPolicy(3, text, sig, generateIdentity().publicKey, NOW), false);
  assert.equal(verifyPolicy(3, text, sig, admin.publicKey, -1), false);
  assert.throws(() => signPolicy(admin, 3, text, 0), isArg(/version/));
});
