// Fleets at the registry (issue 18), over real UDP with RegistryClients: networks,
// invites, joins, refusals with their codes, kicks and pushes, policy, audit, tickets,
// discovery, relay between co-members, paging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { limitsFromFlags } from '../../src/rendezvous/registry-limits.ts';
import { SqliteStore } from '../../src/rendezvous/store/sqlite-store.ts';
import { NetworkState, sweepEphemeral } from '../../src/rendezvous/network-handlers.ts';
import { OnlineIndex } from '../../src/rendezvous/online-index.ts';
import { formatAddress, type Address } from '../../src/wire/address.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { makeBinding, makeInvite, parseToken, signPolicy, verifyCredential, verifyTicket } from '../../src/registry/membership.ts';
import { splitPolicy, verifyStatement } from '../../src/registry/network-client.ts';
import type { Push } from '../../src/registry/protocol.ts';
import { PilotError } from '../../src/util/errors.ts';
import { relaySend, sleep, startServer, udpPeer, type Peer } from './helpers.ts';

const code = (c: string, msg?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof PilotError, String(e));
  assert.equal(e.code, c, e.message);
  if (msg) assert.match(e.message, msg);
  return true;
};

function pushes(p: Peer) {
  const got: Push[] = [];
  p.client.on('push', (x: Push) => got.push(x));
  return {
    got,
    async wait(event: string, timeoutMs = 2000): Promise<Record<string, unknown>> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const i = got.findIndex((x) => x.event === event);
        if (i >= 0) return got.splice(i, 1)[0]!.data as Record<string, unknown>;
        if (Date.now() > end) throw new Error(`no ${event} push within ${timeoutMs} ms (got ${got.map((x) => x.event).join(', ') || 'nothing'})`);
        await sleep(10);
      }
    },
  };
}

async function setup(t: { after(fn: () => Promise<unknown>): void }, n: number, extra: Parameters<typeof startServer>[0] = {}) {
  const store = new SqliteStore(':memory:');
  const s = await startServer({ store, ...extra });
  const peers: Peer[] = [];
  const addrs: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = await udpPeer(s.port);
    peers.push(p);
    addrs.push((await p.client.register({ email: `n${i}@example.com`, hostname: `node-${i}` })).address);
  }
  t.after(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await s.close();
    await store.close();
  });
  return { s, store, peers, addrs };
}

test('create, invite, three joins, members with tags, list, tickets, credentials verify', async (t) => {
  const { s, peers, addrs } = await setup(t, 4);
  const [admin, a, b, c] = peers as [Peer, Peer, Peer, Peer];
  const net = await admin.client.networks.create('build-farm');
  assert.equal(net.net, 1);
  assert.equal(net.admin, admin.identity.publicKey.toString('base64'));
  await assert.rejects(admin.client.networks.create('build-farm'), code('BAD_ARGUMENT', /already exists/));
  await assert.rejects(admin.client.networks.create('Bad Name!'), code('BAD_ARGUMENT', /network name/));
  const inv = await admin.client.networks.invite({ net: net.net, tags: ['worker'], uses: 3, expiresIn: 3600 });
  assert.ok(inv.token.startsWith('pilot-join-1.'));
  const pa = pushes(a);
  const joined = [];
  for (const p of [a, b, c]) joined.push(await p.client.networks.join(inv.token));
  assert.deepEqual(joined[0]!.tags, ['worker']);
  assert.equal(joined[0]!.name, 'build-farm');
  assert.equal(joined[0]!.address, addrs[1]);
  assert.equal(joined[0]!.adminKey, admin.identity.publicKey.toString('base64'));
  // No push to every member per join (N^2 for a fleet): a member learns of another from the
  // answer about it, which names the networks they share and its tags there.
  const about = await a.client.resolve({ address: addrs[2]! });
  assert.deepEqual(about.networks, [{ net: 1, tags: ['worker'] }]);
  assert.equal((await admin.client.resolve({ address: addrs[2]! })).networks, undefined, 'the admin is not a member');
  assert.equal((await a.client.resolve({ address: addrs[0]! })).networks, undefined, 'nor is it listed to members');
  await sleep(200);
  assert.deepEqual(
    pa.got.filter((x) => x.event === 'network_member_joined'),
    [],
  );
  // Joining again uses nothing and changes nothing.
  await a.client.networks.join(inv.token);
  const invites = await admin.client.networks.invites(net.net);
  assert.equal(invites.length, 1);
  assert.equal(invites[0]!.used, 3);
  assert.equal(invites[0]!.uses, 3);

  const members = await b.client.networks.members(net.net);
  assert.deepEqual(
    members.map((m) => [m.address, m.hostname, m.tags, m.online]),
    [1, 2, 3].map((i) => [addrs[i], `node-${i}`, ['worker'], true]),
  );
  const lists = await a.client.networks.list();
  assert.deepEqual(lists, [{ net: 1, name: 'build-farm', admin: false, adminKey: net.admin, tags: ['worker'], members: 3 }]);
  assert.deepEqual(
    (await admin.client.networks.list()).map((x) => [x.admin, x.members]),
    [[true, 3]],
  );

  // Credentials a peer checks on its own, and a rendezvous-signed ticket.
  const cred = joined[1]!.credential;
  const v = verifyCredential(cred, { adminKey: admin.identity.publicKey, net: 1, nodeKey: b.identity.publicKey, now: Date.now() });
  assert.ok(v.ok);
  const tickets = await b.client.networks.tickets();
  assert.equal(tickets.length, 1);
  assert.equal(verifyTicket(tickets[0]!.ticket, tickets[0]!.sig, s.publicKey, { net: 1, nodeKey: b.identity.publicKey }), true);
  assert.deepEqual(await admin.client.networks.tickets(), [], 'the admin is no member until it joins');

  // Non-members cannot read the network (it looks unknown to them).
  const outsider = await udpPeer(s.port);
  t.after(() => outsider.close());
  await outsider.client.register({ email: 'x@example.com' });
  await assert.rejects(outsider.client.networks.members(1), code('NOT_FOUND'));
  await assert.rejects(outsider.client.networks.invite({ net: 1 }), code('PERMISSION_DENIED'));
  await assert.rejects(a.client.networks.kick(1, addrs[2]!), code('PERMISSION_DENIED'));
});

test('refusals: used up, expired, revoked, forged, unregistered, wrong key, unknown network', async (t) => {
  const { peers } = await setup(t, 5);
  const [admin, a, b, c, d] = peers as [Peer, Peer, Peer, Peer, Peer];
  const { net } = await admin.client.networks.create('strict');
  const once = await admin.client.networks.invite({ net, uses: 1 });
  await a.client.networks.join(once.token);
  await assert.rejects(b.client.networks.join(once.token), code('QUOTA_EXCEEDED', /used up/));

  const short = await admin.client.networks.invite({ net, expiresIn: 1 });
  const early = makeBinding(parseToken(short.token), b.identity, Date.now());
  await sleep(1100);
  await assert.rejects(b.client.networks.join(short.token), code('BAD_ARGUMENT', /token expired/), 'refused by the client');
  await assert.rejects(b.client.networks.joinWith(early.credential), code('BAD_ARGUMENT', /token expired/), 'and by the rendezvous');

  const rev = await admin.client.networks.invite({ net });
  assert.deepEqual(await admin.client.networks.revokeInvite(net, rev.inviteId), { inviteId: rev.inviteId, revoked: true });
  await assert.rejects(b.client.networks.join(rev.token), code('PERMISSION_DENIED', /revoked/));
  await assert.rejects(admin.client.networks.revokeInvite(net, '0'.repeat(32)), code('NOT_FOUND'));

  // A certificate for this network signed by someone else's key.
  const mallory = generateIdentity();
  const forged = makeInvite(mallory, { net });
  await assert.rejects(b.client.networks.join(forged.token), code('BAD_SIGNATURE', /not signed by the admin/));
  await assert.rejects(c.client.networks.registerInvite(forged.cert, forged.certSig), code('PERMISSION_DENIED'));

  // Made by the admin but never registered at the rendezvous.
  const unregistered = makeInvite(admin.identity, { net });
  await assert.rejects(b.client.networks.join(unregistered.token), code('NOT_FOUND', /not registered/));

  // A binding signed by a key that did not hold the token (no invite seed).
  const good = await admin.client.networks.invite({ net });
  const tok = parseToken(good.token);
  const fake = makeBinding({ ...tok, inviteKey: generateIdentity() }, c.identity);
  await assert.rejects(c.client.networks.joinWith(fake.credential), code('BAD_SIGNATURE', /binding signature/));
  // A valid binding for someone else's key, presented by c.
  const dBinding = makeBinding(tok, d.identity);
  await assert.rejects(c.client.networks.joinWith(dBinding.credential), code('BAD_SIGNATURE', /another node key/));
  // A stale binding (older than the freshness window).
  const stale = makeBinding(tok, c.identity, Date.now() - 120_000);
  await assert.rejects(c.client.networks.joinWith(stale.credential), code('STALE_REQUEST'));
  await d.client.networks.joinWith(dBinding.credential);

  // An unknown network.
  const other = makeInvite(admin.identity, { net: 999 });
  await assert.rejects(b.client.networks.join(other.token), code('NOT_FOUND', /no network 999/));
  await assert.rejects(b.client.networks.members(999), code('NOT_FOUND'));
  // Garbage tokens never leave the client.
  await assert.rejects(b.client.networks.join('pilot-join-1.abc'), code('BAD_ARGUMENT', /damaged/));
  await assert.rejects(b.client.networks.join('hello'), code('BAD_ARGUMENT', /not a join token/));
  // Too many / bad self tags.
  await assert.rejects(b.client.networks.setTags(Array.from({ length: 9 }, (_, i) => `t${i}`)), code('BAD_ARGUMENT', /at most 8/));
  await assert.rejects(b.client.networks.setTags(['UPPER']), code('BAD_ARGUMENT'));
});

test('kick (pushed, signed statement kept, no rejoin with the old token), leave, delete', async (t) => {
  const { peers, addrs } = await setup(t, 4);
  const [admin, a, b, c] = peers as [Peer, Peer, Peer, Peer];
  const { net } = await admin.client.networks.create('kicks');
  const inv = await admin.client.networks.invite({ net });
  for (const p of [a, b, c]) await p.client.networks.join(inv.token);
  const pa = pushes(a);
  const pb = pushes(b);
  const pc = pushes(c);
  assert.deepEqual(await admin.client.networks.kick(net, addrs[2]!), { net, node: addrs[2], kicked: true });
  const kicked = await pb.wait('network_member_kicked');
  assert.equal(kicked.node, addrs[2]);
  const seenByA = await pa.wait('network_member_kicked');
  assert.ok(verifyStatement(seenByA.stmt as string, seenByA.sig as string, 'network_kick'), 'the push carries the admin-signed kick');
  const kicks = await a.client.networks.kicks(net, admin.identity.publicKey);
  assert.equal(kicks.length, 1);
  assert.equal(kicks[0]!.verified, true);
  assert.equal(kicks[0]!.node, addrs[2]);
  assert.deepEqual(
    (await a.client.networks.members(net)).map((m) => m.address),
    [addrs[1], addrs[3]],
  );
  await assert.rejects(b.client.networks.join(inv.token), code('PERMISSION_DENIED', /kicked/));
  await assert.rejects(b.client.networks.members(net), code('NOT_FOUND'));
  // A new invite (issued after the kick) lets it back in.
  await sleep(1000);
  const again = await admin.client.networks.invite({ net });
  await b.client.networks.join(again.token);
  assert.equal((await a.client.networks.members(net)).length, 3);
  assert.equal((await a.client.networks.kicks(net)).length, 0, 'the kick was lifted by the newer invite');

  assert.deepEqual(await c.client.networks.leave(net), { net, left: true });
  assert.equal((await a.client.resolve({ address: addrs[3]! })).networks, undefined, 'no longer listed as a co-member');
  assert.ok(!(await a.client.networks.members(net)).some((m) => m.address === addrs[3]));
  await assert.rejects(c.client.networks.leave(net), code('NOT_FOUND'));

  await assert.rejects(a.client.networks.delete(net), code('PERMISSION_DENIED'));
  assert.deepEqual(await admin.client.networks.delete(net), { net, deleted: true });
  assert.equal((await pa.wait('network_deleted')).name, 'kicks');
  await pb.wait('network_deleted');
  assert.equal(pc.got.filter((x) => x.event === 'network_deleted').length, 0, 'the node that left is not told');
  assert.deepEqual(await a.client.networks.list(), []);
  await assert.rejects(a.client.networks.members(net), code('NOT_FOUND'));
});

test('policy: set in parts, get back verbatim with a valid admin signature; bad policies name line:column', async (t) => {
  const { peers } = await setup(t, 2);
  const [admin, a] = peers as [Peer, Peer];
  const { net } = await admin.client.networks.create('policy');
  const inv = await admin.client.networks.invite({ net });
  await a.client.networks.join(inv.token);
  const pa = pushes(a);
  const empty = await a.client.networks.getPolicy(net, admin.identity.publicKey);
  assert.equal(empty.text, '');
  assert.equal(empty.sig, null);
  // A large policy, full of quotes (4 bytes each on the wire): many parts.
  const rules = Array.from({ length: 120 }, (_, i) => `    { "from": ["tag:planner-${i}"], "to": ["tag:worker-x", "*"], "ports": ["1000-1003", ${80 + i}] }`);
  const text = `{\n  "rules": [\n${rules.join(',\n')}\n  ]\n}\n`;
  assert.ok(splitPolicy(text).length > 5);
  assert.equal(splitPolicy(text).join(''), text);
  const r = await admin.client.networks.setPolicy(net, text);
  assert.equal(r.done, true);
  assert.equal(r.parts, splitPolicy(text).length);
  assert.equal((await pa.wait('network_policy_changed')).net, net);
  const got = await a.client.networks.getPolicy(net, admin.identity.publicKey);
  assert.equal(got.text, text);
  assert.equal(got.verified, true);
  assert.equal((await a.client.networks.getPolicy(net, a.identity.publicKey)).verified, false, 'not signed by that key');
  // A shorter one replaces it.
  const uni = '{ "rules": [ { "from": ["*"], "to": ["*"], "ports": ["*"] } ] }\n'.padEnd(700, ' ') + '\n';
  await admin.client.networks.setPolicy(net, uni);
  assert.equal((await a.client.networks.getPolicy(net, admin.identity.publicKey)).text, uni);

  // A bad policy is caught by the client's parser...
  const bad = '{\n  "rules": [\n    { "from": ["*"], "to": ["*"], "ports": [80, "70000"] }\n  ]\n}\n';
  await assert.rejects(admin.client.networks.setPolicy(net, bad), code('BAD_ARGUMENT', /policy\.json:3:\d+: rules\[0\]\.ports\[1\]/));
  // ...and by the rendezvous's, for a client that skips it.
  const version = Date.now() + 10_000;
  const sig = signPolicy(admin.identity, net, bad, version).toString('base64');
  await assert.rejects(
    admin.client.request('network_policy_set', { net, part: 0, parts: 1, text: bad, sig, version }),
    code('BAD_ARGUMENT', /policy\.json:3:\d+: rules\[0\]\.ports\[1\]/),
  );
  // A signature over other text, parts out of order, members setting it.
  await assert.rejects(
    admin.client.request('network_policy_set', {
      net,
      part: 0,
      parts: 1,
      text: '{}',
      sig: signPolicy(admin.identity, net, '{ }', version).toString('base64'),
      version,
    }),
    code('BAD_SIGNATURE'),
  );
  // A validly signed but older version (a replayed upload): refused, no rollback.
  const old = (await a.client.networks.getPolicy(net)).updated;
  await assert.rejects(
    admin.client.request('network_policy_set', {
      net,
      part: 0,
      parts: 1,
      text: '{}',
      sig: signPolicy(admin.identity, net, '{}', old).toString('base64'),
      version: old,
    }),
    code('BAD_ARGUMENT', /not newer/),
  );
  await assert.rejects(admin.client.request('network_policy_set', { net, part: 1, parts: 2, text: '{}' }), code('BAD_ARGUMENT', /out of order/));
  await assert.rejects(a.client.networks.setPolicy(net, '{}'), code('PERMISSION_DENIED'));
  assert.equal((await a.client.networks.getPolicy(net)).text, uni, 'refused uploads changed nothing');
});

test('audit: entries in order, each with the actor-signed request', async (t) => {
  const { peers, addrs } = await setup(t, 3);
  const [admin, a, b] = peers as [Peer, Peer, Peer];
  const { net } = await admin.client.networks.create('audited');
  const inv = await admin.client.networks.invite({ net, tags: ['gpu'] });
  await a.client.networks.join(inv.token);
  await b.client.networks.join(inv.token);
  await admin.client.networks.setPolicy(net, '{ "rules": [] }');
  await admin.client.networks.kick(net, addrs[2]!);
  await a.client.networks.leave(net);
  await admin.client.networks.revokeInvite(net, inv.inviteId);
  const log = await admin.client.networks.audit(net, { statements: true });
  assert.deepEqual(
    log.map((e) => [e.seq, e.action, e.actor]),
    [
      [1, 'create', addrs[0]],
      [2, 'invite', addrs[0]],
      [3, 'join', addrs[1]],
      [4, 'join', addrs[2]],
      [5, 'policy_set', addrs[0]],
      [6, 'kick', addrs[0]],
      [7, 'leave', addrs[1]],
      [8, 'revoke_invite', addrs[0]],
    ],
  );
  assert.ok(
    log.every((e) => e.verified === true),
    'every entry verifies under the key its statement names',
  );
  assert.equal(JSON.parse(log[2]!.stmt!).key, a.identity.publicKey.toString('base64'));
  assert.deepEqual(log[2]!.detail.tags, ['gpu']);
  assert.ok(log[2]!.stmt!.length > 600, 'a join statement spans several chunks');
  assert.deepEqual(
    (await admin.client.networks.audit(net, { after: 6 })).map((e) => e.seq),
    [7, 8],
  );
});

test('find by credential tag and self tag; public discovery without a network; online filter', async (t) => {
  const { peers, addrs } = await setup(t, 4);
  const [admin, a, b, c] = peers as [Peer, Peer, Peer, Peer];
  const { net } = await admin.client.networks.create('find');
  const workers = await admin.client.networks.invite({ net, tags: ['worker'] });
  const plain = await admin.client.networks.invite({ net });
  await a.client.networks.join(workers.token);
  await b.client.networks.join(plain.token);
  assert.deepEqual(await b.client.networks.setTags(['worker', 'search', 'worker']), { tags: ['search', 'worker'] });
  await c.client.networks.setTags(['worker']);
  await c.client.setVisibility(true);
  const found = await a.client.networks.find({ tag: 'worker', net });
  assert.deepEqual(
    found.map((f) => [f.address, f.tags, f.selfTags]),
    [
      [addrs[1], ['worker'], []],
      [addrs[2], [], ['search', 'worker']],
    ],
  );
  assert.deepEqual(
    (await a.client.networks.find({ tag: 'search', net })).map((f) => f.address),
    [addrs[2]],
  );
  // Without a network: public nodes only (b is private, c is public).
  assert.deepEqual(
    (await a.client.networks.find({ tag: 'worker' })).map((f) => f.address),
    [addrs[3]],
  );
  await assert.rejects(c.client.networks.find({ tag: 'worker', net }), code('NOT_FOUND'), 'not a member');
  await assert.rejects(a.client.networks.find({ tag: 'Bad' }), code('BAD_ARGUMENT'));
  await b.client.networks.clearTags();
  assert.deepEqual(
    (await a.client.networks.find({ tag: 'search', net, online: true })).map((f) => f.address),
    [],
  );
  assert.deepEqual(
    (await a.client.networks.find({ tag: 'worker', net, online: true })).map((f) => f.address),
    [addrs[1]],
  );
});

test('a caller online here is not looked up in the store: fleet methods, trust lists and resolve take its online entry', async (t) => {
  const { store, peers, addrs } = await setup(t, 3);
  const [admin, a, b] = peers as [Peer, Peer, Peer];
  const { net } = await admin.client.networks.create('lookups');
  const inv = await admin.client.networks.invite({ net, tags: ['worker'] });
  await a.client.networks.join(inv.token);
  await b.client.networks.join(inv.token);
  let lookups = 0;
  const getByKey = store.getByKey.bind(store);
  store.getByKey = (k) => (lookups++, getByKey(k));
  await a.client.networks.find({ tag: 'worker', net });
  await a.client.networks.list();
  await a.client.trustList();
  await a.client.trustPending();
  const r = await a.client.resolve({ address: addrs[2]! });
  assert.deepEqual(r.networks, [{ net, tags: ['worker'] }], 'co-members: the answer names the network');
  assert.equal(lookups, 0, 'each of these was a round trip to a shared database');
  // A caller the store no longer has (removed meanwhile) is refused all the same once it is not online.
  await a.client.deregister();
  await assert.rejects(a.client.networks.list(), code('NOT_REGISTERED'));
});

test('relay: co-members reach each other, non-members are refused, a kick takes it back at once', async (t) => {
  const { s, peers, addrs } = await setup(t, 4);
  const [admin, a, b, c] = peers as [Peer, Peer, Peer, Peer];
  const { net } = await admin.client.networks.create('relay');
  const inv = await admin.client.networks.invite({ net });
  await a.client.networks.join(inv.token);
  await b.client.networks.join(inv.token);
  const inner = Buffer.alloc(40, 7);
  inner[0] = 0x12;
  a.sendRaw(relaySend(addrs[2]!, inner));
  const got = await b.nextPacket(0x21);
  assert.equal(got.length, 7 + inner.length);
  a.sendRaw(relaySend(addrs[3]!, inner));
  await sleep(200);
  assert.equal(s.stats().relay.droppedNotTrusted, 1, 'c is not a member');
  await admin.client.networks.kick(net, addrs[2]!);
  a.sendRaw(relaySend(addrs[2]!, inner));
  await sleep(200);
  assert.equal(s.stats().relay.droppedNotTrusted, 2, 'the cached decision was dropped by the kick');
  assert.equal(c.received.filter((x) => x[0] === 0x21).length, 0);
});

test('members page beyond one packet; the largest certificate fits a join; networks per admin are limited', async (t) => {
  const { peers } = await setup(t, 14);
  const [admin, ...rest] = peers as [Peer, ...Peer[]];
  const { net } = await admin.client.networks.create('big');
  const inv = await admin.client.networks.invite({ net, tags: ['a-rather-long-tag-for-paging', 'second-long-tag-for-paging'] });
  await Promise.all(rest.map((p) => p.client.networks.join(inv.token)));
  const first = await admin.client.request<{ members: unknown[]; total: number; more: boolean }>('network_members', { net });
  assert.equal(first.total, 13);
  assert.equal(first.more, true);
  assert.ok(first.members.length < 13);
  const all = await admin.client.networks.members(net);
  assert.equal(all.length, 13);
  assert.equal(new Set(all.map((m) => m.address)).size, 13);
  // 8 tags of 32 characters: the largest certificate still fits one join request.
  const maxTags = Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(32, 'x'));
  const big = await admin.client.networks.invite({ net, tags: maxTags, uses: 1000, expiresIn: 86400, ephemeral: true });
  assert.deepEqual((await rest[0]!.client.networks.join(big.token)).tags, maxTags);
  for (let i = 1; i < 16; i++) await admin.client.networks.create(`net-${i}`);
  await assert.rejects(admin.client.networks.create('one-too-many'), code('QUOTA_EXCEEDED', /16 networks/));
});

test('ephemeral members leave their networks on deregister, and after 2 min of silence', async (t) => {
  const { store, peers, addrs } = await setup(t, 4);
  const [admin, a, b, c] = peers as [Peer, Peer, Peer, Peer];
  const { net } = await admin.client.networks.create('ephemeral');
  const eph = await admin.client.networks.invite({ net, ephemeral: true });
  const plain = await admin.client.networks.invite({ net });
  assert.equal((await a.client.networks.join(eph.token)).ephemeral, true);
  await b.client.networks.join(plain.token);
  await c.client.networks.join(eph.token);
  await a.client.deregister();
  assert.deepEqual(
    (await b.client.networks.members(net)).map((m) => m.address),
    [addrs[2], addrs[3]],
  );

  // The sweep (normally the server's, every 15 s) with a clock 3 minutes ahead: c is silent.
  const changed: string[] = [];
  const ctx = {
    store,
    online: new OnlineIndex(),
    net: new NetworkState(generateIdentity()),
    hooks: { push: () => {}, nodeChanged: (x: Address) => void changed.push(formatAddress(x)) },
  };
  assert.equal(await sweepEphemeral(ctx, Date.now()), 0, 'joined just now');
  assert.equal(await sweepEphemeral(ctx, Date.now() + 180_000), 1);
  assert.deepEqual(changed, [addrs[3]]);
  assert.deepEqual(
    (await b.client.networks.members(net)).map((m) => m.address),
    [addrs[2]],
    'the non-ephemeral member stays',
  );
});

test('pilot-rendezvous --members-per-network / --networks-per-admin: the limits come from the flags, checked', async (t) => {
  assert.deepEqual(limitsFromFlags({ membersPerNetwork: '2', networksPerAdmin: '1' }), { membersPerNetwork: 2, networksPerAdmin: 1 });
  assert.throws(() => limitsFromFlags({ membersPerNetwork: '1.5' }), code('BAD_ARGUMENT', /members-per-network/));
  const { peers } = await setup(t, 4, { registryLimits: limitsFromFlags({ membersPerNetwork: '2', networksPerAdmin: '1' }) });
  const [admin, a, b, c] = peers as [Peer, Peer, Peer, Peer];
  const { net } = await admin.client.networks.create('small');
  await assert.rejects(admin.client.networks.create('second'), code('QUOTA_EXCEEDED', /1 network/));
  const inv = await admin.client.networks.invite({ net });
  await a.client.networks.join(inv.token);
  await b.client.networks.join(inv.token);
  await assert.rejects(c.client.networks.join(inv.token), code('QUOTA_EXCEEDED', /full/));
});

test('find pages through a network bigger than a window: every match once, in join order; online skips the offline ones', async (t) => {
  // 40 workers: windows of 16 (one store query each) and pages of what fits a packet (about 5);
  // with `online`, windows slide past offline members.
  const { peers, addrs } = await setup(t, 43);
  const [admin, a, outsider, ...workers] = peers as [Peer, Peer, Peer, ...Peer[]];
  const { net } = await admin.client.networks.create('pages');
  const inv = await admin.client.networks.invite({ net, tags: ['worker'] });
  const plain = await admin.client.networks.invite({ net });
  await a.client.networks.join(plain.token);
  for (const w of workers) await w.client.networks.join(inv.token);
  const all = addrs.slice(3);
  assert.deepEqual(
    (await a.client.networks.find({ tag: 'worker', net })).map((f) => [f.address, f.hostname]),
    all.map((x, i) => [x, `node-${i + 3}`]),
  );
  // Every third worker stops cleanly (offline at once), and more than a window's worth in a row.
  const off = new Set<number>();
  for (let i = 0; i < workers.length; i++) if (i % 3 === 0 || (i >= 17 && i < 35)) off.add(i);
  for (const i of off) await workers[i]!.client.offline();
  const found = await a.client.networks.find({ tag: 'worker', net, online: true });
  assert.deepEqual(
    found.map((f) => f.address),
    all.filter((_, i) => !off.has(i)),
  );
  assert.ok(found.every((f) => f.online && f.tags.includes('worker')));
  // The admin may read it too; a non-member may not (as an unknown network).
  assert.equal((await admin.client.networks.find({ tag: 'worker', net })).length, 40);
  await assert.rejects(outsider.client.networks.find({ tag: 'worker', net }), code('NOT_FOUND', /no network/));
});
