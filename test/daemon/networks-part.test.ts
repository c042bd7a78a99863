// The daemon's Networks part with a fake rendezvous and a fake clock: joining (idempotent, persisted
// in networks.json 0600), peers' proofs (credential + ticket, verified locally: forged, foreign,
// expired, kicked and unknown-network proofs give nothing), the policy decisions both ways, kicks by
// push, bounds (16 networks a peer), and the MEMBERSHIP message decoder on hostile input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { generateIdentity, type Identity } from '../../src/crypto/identity.ts';
import { makeBinding, makeInvite, parseToken, signPolicy, signTicket } from '../../src/registry/membership.ts';
import type { NetworkClient } from '../../src/registry/network-client.ts';
import { decodeMembership, encodeMembership, HINT_TTL_MS, MEMBERSHIP_MAX_BYTES, Networks } from '../../src/daemon/networks.ts';
import { AccessPolicy } from '../../src/daemon/access-policy.ts';
import { formatAddress, makeAddress, type Address } from '../../src/wire/address.ts';
import { silentLogger } from '../../src/util/logger.ts';
import os from 'node:os';

const tmpDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

const NET = 7;
const POLICY = JSON.stringify({ rules: [{ from: ['tag:planner'], to: ['tag:worker'], ports: ['1000-1003', 7] }] });

interface World {
  admin: Identity;
  server: Identity;
  clock: { t: number };
  policyVersion: number;
  policyText: string;
  kicks: { node: string; ts: number }[];
  members: { address: string; tags: string[] }[];
  joins: number;
}

function world(): World {
  return {
    admin: generateIdentity(),
    server: generateIdentity(),
    clock: { t: 1_700_000_000_000 },
    policyVersion: 1000,
    policyText: POLICY,
    kicks: [],
    members: [],
    joins: 0,
  };
}

/** A node of the world: its own Networks part with a fake rendezvous. */
function nodeOf(w: World, id: Identity, address: Address, home = tmpDir('pilot-nets-')) {
  const fake = {
    join: async (token: string) => {
      w.joins++;
      const { credential } = makeBinding(token, id, w.clock.t);
      const tags = parseToken(token).invite.tags;
      return {
        net: NET,
        name: 'fleet',
        address: formatAddress(makeAddress(NET, address.node)),
        tags,
        adminKey: w.admin.publicKey.toString('base64'),
        ephemeral: false,
        credential,
      };
    },
    tickets: async () => {
      const t = signTicket(w.server, { net: NET, node: id.publicKey, now: w.clock.t });
      return [{ net: NET, ticket: t.ticket, sig: t.sig, exp: t.exp, decoded: { net: NET, node: id.publicKey, exp: t.exp } }];
    },
    getPolicy: async () => ({ text: w.policyText, sig: signPolicy(w.admin, NET, w.policyText, w.policyVersion), updated: w.policyVersion, verified: true }),
    kicks: async () => w.kicks.map((k) => ({ ...k, stmt: '', sig: '', verified: true })),
    members: async () => w.members.map((m) => ({ ...m, hostname: null, online: true, ephemeral: false })),
    leave: async () => ({ net: NET, left: true as const }),
  };
  let broadcasts = 0;
  const dropped: string[] = [];
  const nets = new Networks({
    log: silentLogger(),
    now: () => w.clock.t,
    home,
    nodeKey: id.publicKey,
    client: () => fake as unknown as NetworkClient,
    serverKey: () => w.server.publicKey,
    localAddress: () => address,
    broadcast: () => broadcasts++,
    peerChanged: (a) => dropped.push(formatAddress(a)),
  });
  return { nets, home, id, address, dropped, broadcasts: () => broadcasts };
}

const tokenFor = (w: World, tags: string[]) => makeInvite(w.admin, { net: NET, tags, now: w.clock.t }).token;

async function fleet() {
  const w = world();
  const P = nodeOf(w, generateIdentity(), makeAddress(0, 0x11));
  const W = nodeOf(w, generateIdentity(), makeAddress(0, 0x22));
  await P.nets.join(tokenFor(w, ['planner']));
  await W.nets.join(tokenFor(w, ['worker']));
  return { w, P, W };
}

/** `from` presents its proofs to `to` over their (authenticated) session. */
function present(from: ReturnType<typeof nodeOf>, to: ReturnType<typeof nodeOf>, key = from.id.publicKey): void {
  for (const m of from.nets.presentations()) to.nets.onMessage(from.address, key, m);
}

test('join: persisted 0600, reloaded after a restart, and not asked again for the same network', async () => {
  const w = world();
  const id = generateIdentity();
  const a = nodeOf(w, id, makeAddress(0, 5));
  const token = tokenFor(w, ['worker']);
  const r = await a.nets.join(token);
  assert.equal(r.already, false);
  assert.deepEqual(r.membership.tags, ['worker']);
  const file = path.join(a.home, 'networks.json');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.ok(a.broadcasts() >= 1, 'our proofs go to the peers after a join');
  const again = nodeOf(w, id, makeAddress(0, 5), a.home); // a restart
  assert.equal(again.nets.list().length, 1);
  const r2 = await again.nets.join(token);
  assert.equal(r2.already, true);
  assert.equal(w.joins, 1);
  // another node's key cannot reuse the file: its credential does not verify for that key
  const thief = nodeOf(w, generateIdentity(), makeAddress(0, 6), a.home);
  assert.equal(thief.nets.list().length, 0);
});

test('proofs: the planner reaches the worker on the policy ports only; the worker does not reach the planner', async () => {
  const { P, W } = await fleet();
  assert.equal(W.nets.incomingAllowed(P.address, 1000), false, 'nothing before a proof');
  present(P, W);
  present(W, P);
  assert.equal(W.nets.isCoMember(P.address), true);
  for (const port of [7, 1000, 1003]) assert.equal(W.nets.incomingAllowed(P.address, port), true, `port ${port}`);
  for (const port of [1, 999, 1004, 5000]) assert.equal(W.nets.incomingAllowed(P.address, port), false, `port ${port}`);
  assert.equal(P.nets.incomingAllowed(W.address, 1000), false, 'worker -> planner is not in the policy');
  assert.equal(P.nets.outgoing(W.address, 1000), true);
  assert.deepEqual(W.nets.outgoing(P.address, 1000), { refusedBy: ['fleet'] });
  assert.equal(W.nets.outgoing(makeAddress(0, 0x99), 1000), 'no-network');
});

test('forged, foreign-key, expired and unknown-network proofs give nothing', async () => {
  const { w, P, W } = await fleet();
  // the session key is another node's: the binding names P's key
  present(P, W, generateIdentity().publicKey);
  assert.equal(W.nets.isCoMember(P.address), false);
  // a flipped bit in the certificate signature
  const m = P.nets.presentations()[0]!;
  const bad = Buffer.from(m);
  bad[10] ^= 1;
  W.nets.onMessage(P.address, P.id.publicKey, bad);
  assert.equal(W.nets.isCoMember(P.address), false);
  // a credential from another admin (a rendezvous cannot mint members)
  const w2 = { ...world(), server: w.server, clock: w.clock };
  const X = nodeOf(w2, generateIdentity(), makeAddress(0, 0x33));
  await X.nets.join(tokenFor(w2, ['planner']));
  present(X, W);
  assert.equal(W.nets.isCoMember(X.address), false);
  // a network we are not in: ignored (we could not check it, and it would give nothing)
  const other = Buffer.from(P.nets.presentations()[0]!);
  other.writeUInt16BE(NET + 1, 2);
  W.nets.onMessage(P.address, P.id.publicKey, other);
  assert.equal(W.nets.isCoMember(P.address), false);
  // a good proof expires with its ticket (5 min)
  present(P, W);
  assert.equal(W.nets.isCoMember(P.address), true);
  w.clock.t += 301_000;
  assert.equal(W.nets.isCoMember(P.address), false);
  assert.equal(W.nets.incomingAllowed(P.address, 1000), false);
});

test('a kick (push) drops the proof at once and refuses it afterwards; a kicked node drops its own membership', async () => {
  const { P, W } = await fleet();
  present(P, W);
  assert.equal(W.nets.incomingAllowed(P.address, 1000), true);
  W.nets.onPush('network_member_kicked', { net: NET, node: formatAddress(P.address) });
  assert.equal(W.nets.incomingAllowed(P.address, 1000), false);
  present(P, W);
  assert.equal(W.nets.isCoMember(P.address), false, 'a proof presented again after the kick');
  P.nets.onPush('network_member_kicked', { net: NET, node: formatAddress(P.address) });
  assert.equal(P.nets.list().length, 0);
  assert.deepEqual(P.nets.presentations(), []);
});

test('policy: refetched on push; a rollback to an older version is refused', async () => {
  const { w, P, W } = await fleet();
  present(P, W);
  w.policyText = JSON.stringify({ rules: [{ from: ['*'], to: ['*'], ports: ['*'] }] });
  w.policyVersion = 2000;
  W.nets.onPush('network_policy_changed', { net: NET });
  await new Promise((r) => setImmediate(r));
  assert.equal(W.nets.incomingAllowed(P.address, 5000), true);
  w.policyText = POLICY;
  w.policyVersion = 1500; // older: a rollback
  W.nets.onPush('network_policy_changed', { net: NET });
  await new Promise((r) => setImmediate(r));
  assert.equal(W.nets.incomingAllowed(P.address, 5000), true, 'the newer policy holds');
});

test('member hints (from the answer about that peer) open sessions, not access, and expire; N:<node> names 0:<node> only in a network we are in', async () => {
  const { W, w } = await fleet();
  const other = makeAddress(0, 0x44);
  assert.equal(W.nets.maybeCoMember(other), false);
  W.nets.noteListed(other, [{ net: NET, tags: ['planner'] }]);
  assert.equal(W.nets.maybeCoMember(other), true);
  assert.equal(W.nets.incomingAllowed(other, 1000), false, 'a hint is no proof');
  W.nets.noteListed(other, [{ net: 999, tags: ['planner'] }]);
  assert.equal(W.nets.maybeCoMember(other), false, 'a later answer without our network takes the hint back');
  W.nets.noteListed(other, [{ net: NET, tags: ['planner'] }]);
  w.clock.t += HINT_TTL_MS;
  assert.equal(W.nets.maybeCoMember(other), false, 'an old answer is no hint');
  assert.deepEqual(W.nets.globalAddress(makeAddress(NET, 0x44)), makeAddress(0, 0x44));
  assert.throws(() => W.nets.globalAddress(makeAddress(9, 0x44)), { code: 'NOT_FOUND' });
});

test('bounds: the decoder refuses every malformed or oversized message, and re-encodes what it accepts', async () => {
  const { P } = await fleet();
  const m = P.nets.presentations()[0]!;
  assert.ok(decodeMembership(m));
  assert.ok(m.length <= MEMBERSHIP_MAX_BYTES);
  for (let cut = 0; cut < m.length; cut += 7) assert.equal(decodeMembership(m.subarray(0, cut)), undefined);
  assert.equal(decodeMembership(Buffer.concat([m, Buffer.alloc(1)])), undefined);
  const zeroNet = Buffer.from(m);
  zeroNet.writeUInt16BE(0, 2);
  assert.equal(decodeMembership(zeroNet), undefined);
  assert.equal(decodeMembership(Buffer.alloc(MEMBERSHIP_MAX_BYTES + 1, 4)), undefined);
  const d = decodeMembership(m)!;
  assert.deepEqual(encodeMembership(d.net, d.credential, { ticket: d.ticket, sig: d.ticketSig }), m);
});

test('AccessPolicy with co-members: streams and datagrams by policy, echo replies from a co-member we pinged', async () => {
  const { P, W } = await fleet();
  present(P, W);
  present(W, P);
  const access = (n: ReturnType<typeof nodeOf>) =>
    new AccessPolicy({
      isTrusted: () => false,
      amPublic: () => false,
      peerIsPublic: () => false,
      coMemberMayReach: (a, port) => n.nets.incomingAllowed(a, port),
      coMemberOutgoing: (a, port) => n.nets.outgoing(a, port),
    });
  const aw = access(W);
  const ap = access(P);
  assert.equal(aw.mayAcceptStream(P.address, 1000), true);
  assert.equal(aw.mayAcceptStream(P.address, 5000), false);
  assert.equal(aw.mayReceiveDatagram(P.address, 40000, 1001), true);
  assert.equal(aw.mayReceiveDatagram(P.address, 40000, 5000), false);
  assert.equal(ap.mayOpenStream(W.address, 1000), true);
  assert.equal(ap.mayOpenStream(W.address, 5000), false);
  assert.deepEqual(ap.policyRefusal(W.address, 5000), ['fleet']);
  assert.equal(aw.mayOpenStream(P.address, 1000), false);
  assert.equal(ap.mayAcceptStream(W.address, 1000), false, 'worker -> planner refused at the receiver');
  // ping: the planner's echo request goes out, the worker's reply from 7 gets in (and only then)
  assert.equal(ap.mayReceiveDatagram(W.address, 7, 40001), false);
  assert.equal(ap.sendRefusal(W.address, 40001, 7), undefined);
  assert.equal(ap.mayReceiveDatagram(W.address, 7, 40001), true);
  assert.equal(aw.sendRefusal(P.address, 40002, 7), 'not-trusted', 'the worker may not ping the planner');
});

test('leave forgets the membership (and networks.json with it); a listed member without a proof is "pending" until it proves', async () => {
  const { P, W } = await fleet();
  W.nets.noteListed(P.address, [{ net: NET, tags: ['planner'] }]);
  assert.equal(W.nets.proofPending(P.address), true);
  present(P, W);
  assert.equal(W.nets.proofPending(P.address), false);
  await P.nets.leave(NET);
  assert.equal(P.nets.list().length, 0);
  const raw = JSON.parse(fs.readFileSync(path.join(P.home, 'networks.json'), 'utf8')) as { networks: unknown[] };
  assert.deepEqual(raw.networks, []);
  await assert.rejects(P.nets.leave(NET), { code: 'NOT_FOUND' });
  W.nets.onPush('network_member_left', { net: NET, node: formatAddress(P.address) });
  assert.equal(W.nets.isCoMember(P.address), false);
  assert.deepEqual(W.dropped, [formatAddress(P.address)], 'its session is cut too');
  assert.equal(W.nets.proofPending(P.address), false, 'no longer listed');
});

test('our proofs go only to peers in the network (listed or proven): a stranger learns nothing; a new proof is answered once', async () => {
  const { P, W } = await fleet();
  const stranger = makeAddress(0, 0x55);
  assert.deepEqual(W.nets.presentations(stranger), []);
  assert.deepEqual(W.nets.presentations(P.address), [], 'the planner is not listed to the worker yet');
  // the planner proves itself: new, so the caller answers with the worker's proof for that network
  const m = P.nets.presentations()[0]!;
  assert.equal(W.nets.onMessage(P.address, P.id.publicKey, m), NET);
  assert.equal(W.nets.presentations(P.address, NET).length, 1);
  assert.equal(W.nets.onMessage(P.address, P.id.publicKey, m), undefined, 'the same proof again: no answer (no ping-pong)');
  W.nets.noteListed(stranger, [{ net: NET, tags: [] }]);
  assert.equal(W.nets.presentations(stranger).length, 1, 'listed by the rendezvous: it gets ours');
});
