// The RegistryStore contract: one suite run against every store (SQLite in
// sqlite-store.test.ts, PostgreSQL in postgres-store.test.ts), so both keep
// exactly the same semantics. `fresh()` gives an empty database and an opener
// that can be called several times on it (reconnect, a second process's pool).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity } from '../../../src/registry/signing.ts';
import { addressKey, makeAddress, type Address } from '../../../src/wire/address.ts';
import { PilotError } from '../../../src/util/errors.ts';
import type { RegistryStore } from '../../../src/rendezvous/store/store.ts';
import type { InviteRecord, MemberRecord } from '../../../src/rendezvous/store/network-store.ts';

export interface StoreFactory {
  fresh(): Promise<() => Promise<RegistryStore>>;
}

const key = () => generateIdentity().publicKey;
const isCode = (code: string) => (e: unknown) => e instanceof PilotError && e.code === code;

/** Opens a store on a fresh database, runs fn, always closes. */
async function withStore(f: StoreFactory, fn: (s: RegistryStore, open: () => Promise<RegistryStore>) => Promise<void>): Promise<void> {
  const open = await f.fresh();
  const s = await open();
  try {
    await fn(s, open);
  } finally {
    await s.close();
  }
}

export function storeContract(name: string, f: StoreFactory, opts: { skip?: string | false } = {}): void {
  const t = (title: string, fn: () => Promise<void>) => test(`${name}: ${title}`, { skip: opts.skip ?? false, timeout: 60_000 }, fn);

  t('allocates node ids from 1 on network 0; same key -> same address', () =>
    withStore(f, async (s) => {
      const k1 = key();
      const k2 = key();
      const a = await s.register({ publicKey: k1, email: 'a@x.io', lanEndpoints: ['10.0.0.1:1'], observed: '1.2.3.4:5', now: 1 });
      const b = await s.register({ publicKey: k2, email: 'b@x.io', public: true, now: 2 });
      assert.deepEqual(a.address, makeAddress(0, 1));
      assert.deepEqual(b.address, makeAddress(0, 2));
      assert.equal(a.public, false);
      assert.equal(b.public, true);
      assert.deepEqual(a.lanEndpoints, ['10.0.0.1:1']);
      assert.equal(a.observed, '1.2.3.4:5');
      assert.equal(a.created, 1);
      const again = await s.register({ publicKey: k1, email: 'new@x.io', now: 3 });
      assert.deepEqual(again.address, a.address);
      assert.equal(again.email, 'new@x.io');
      assert.equal(again.lastSeen, 3);
      assert.equal(again.created, 1);
      assert.deepEqual(again.lanEndpoints, ['10.0.0.1:1'], 'omitted fields keep their value');
      assert.equal(again.observed, '1.2.3.4:5');
      assert.deepEqual((await s.getByAddress(makeAddress(0, 2)))?.publicKey, k2);
      assert.equal(await s.getByAddress(makeAddress(0, 3)), undefined);
      assert.equal(await s.getByAddress(makeAddress(1, 1)), undefined, 'other network');
    }),
  );

  t('register: a wrong `known` hint (a concurrent registration) costs a retry, not a wrong record', () =>
    withStore(f, async (s) => {
      const k1 = key();
      const a = await s.register({ publicKey: k1, email: 'a@x.io', now: 1, known: false });
      // Said unknown, but registered: updated, same address.
      const again = await s.register({ publicKey: k1, email: 'b@x.io', now: 2, known: false });
      assert.deepEqual(again.address, a.address);
      assert.equal(again.email, 'b@x.io');
      // Said known, but not registered: inserted with the next id.
      const k2 = key();
      const b = await s.register({ publicKey: k2, email: 'c@x.io', now: 3, known: true });
      assert.deepEqual(b.address, makeAddress(0, a.address.node + 1));
      assert.deepEqual((await s.getByKey(k2))?.address, b.address);
    }),
  );

  t('mayRelay: an active destination that is public, trusted by the source or in a network with it', () =>
    withStore(f, async (s) => {
      const [src, priv, pub, trusted, member] = await Promise.all(
        ['s', 'p', 'u', 't', 'm'].map((e, i) => s.register({ publicKey: key(), email: `${e}@x.io`, public: e === 'u', now: i })),
      );
      const stmt = { stmtA: 'a', sigA: Buffer.alloc(64, 1), stmtB: 'b', sigB: Buffer.alloc(64, 2), created: 1 };
      await s.putTrustPair({ a: trusted!.address, b: src!.address, ...stmt });
      const net = (await s.networks.createNetwork({ name: 'relay', admin: key(), now: 1, maxPerAdmin: 16 })).id;
      await s.networks.putInvite(inviteRec(net, 1), { maxLive: 10, now: 0 });
      for (const r of [src!, member!])
        await s.networks.join(memberRec(net, 1, r.address.node, { key: r.publicKey, address: r.address }), { now: 0, maxMembers: 10 });
      const may = (dst: { address: typeof src.address }) => s.mayRelay(src!.address, dst.address);
      assert.equal(await may(priv!), false, 'private, no pair, no network');
      assert.equal(await may(pub!), true, 'public');
      assert.equal(await may(trusted!), true, 'a trust pair (either order)');
      assert.equal(await may(member!), true, 'a network they share');
      assert.equal(await may({ address: makeAddress(0, 999) }), false, 'unknown');
      await s.deregister(pub!.publicKey);
      assert.equal(await may(pub!), false, 'not active');
    }),
  );

  t('hostname is unique and optional; register keeps it when omitted', () =>
    withStore(f, async (s) => {
      const k1 = key();
      const k2 = key();
      await s.register({ publicKey: k1, email: 'a@x.io', hostname: 'alpha', now: 1 });
      await assert.rejects(s.register({ publicKey: k2, email: 'b@x.io', hostname: 'alpha', now: 1 }), isCode('HOSTNAME_TAKEN'));
      assert.equal(await s.getByKey(k2), undefined, 'failed register must not create the node');
      await s.register({ publicKey: k2, email: 'b@x.io', now: 1 });
      await assert.rejects(s.setHostname(k2, 'alpha'), isCode('HOSTNAME_TAKEN'));
      const r = await s.register({ publicKey: k1, email: 'a@x.io', now: 2 });
      assert.equal(r.hostname, 'alpha');
      assert.equal((await s.getByHostname('alpha'))?.publicKey.equals(k1), true);
      await s.setHostname(k1, null);
      assert.equal(await s.getByHostname('alpha'), undefined);
      assert.equal((await s.setHostname(k2, 'alpha')).hostname, 'alpha');
      await assert.rejects(s.setHostname(key(), 'beta'), isCode('NOT_REGISTERED'));
      await assert.rejects(s.setVisibility(key(), true), isCode('NOT_REGISTERED'));
    }),
  );

  t('hostname leases: names of nodes not seen since the cut-off are released, keys keep their addresses', () =>
    withStore(f, async (s) => {
      const idle = key();
      const busy = key();
      const a = await s.register({ publicKey: idle, email: 'a@x.io', hostname: 'squatted', now: 1000 });
      await s.register({ publicKey: busy, email: 'b@x.io', hostname: 'kept', now: 1000 });
      await s.touch(busy, { observed: '1.2.3.4:5', now: 5000 });
      assert.equal(await s.releaseLapsedHostnames(1000), 0, 'last seen exactly at the cut-off: still leased');
      assert.equal(await s.releaseLapsedHostnames(4000), 1);
      assert.equal((await s.getByKey(idle))?.hostname, null);
      assert.deepEqual((await s.getByKey(idle))?.address, a.address, 'the address stays with the key');
      assert.equal((await s.getByKey(idle))?.active, true);
      assert.equal((await s.getByHostname('kept'))?.publicKey.equals(busy), true);
      // The lapsed name is free for another key.
      const other = key();
      assert.equal((await s.register({ publicKey: other, email: 'c@x.io', hostname: 'squatted', now: 6000 })).hostname, 'squatted');
      assert.equal(await s.releaseLapsedHostnames(4000), 0);
    }),
  );

  t('touch, visibility, deregister keeps the address binding', () =>
    withStore(f, async (s) => {
      const k = key();
      const rec = await s.register({ publicKey: k, email: 'a@x.io', hostname: 'h1', lanEndpoints: ['10.0.0.1:1'], now: 1 });
      await assert.rejects(s.touch(key(), { observed: '1.2.3.4:5', now: 2 }), isCode('NOT_REGISTERED'));
      const t1 = await s.touch(k, { observed: '1.2.3.4:5', now: 5 });
      assert.equal(t1.observed, '1.2.3.4:5');
      assert.equal(t1.lastSeen, 5);
      assert.deepEqual(t1.lanEndpoints, ['10.0.0.1:1']);
      assert.deepEqual((await s.touch(k, { observed: '1.2.3.4:6', lanEndpoints: [], now: 6 })).lanEndpoints, []);
      assert.equal((await s.setVisibility(k, true)).public, true);
      await s.deregister(k);
      const gone = await s.getByKey(k);
      assert.equal(gone?.active, false);
      assert.equal(gone?.hostname, null);
      assert.equal(await s.getByHostname('h1'), undefined, 'deregister releases the hostname');
      await assert.rejects(s.deregister(k), isCode('NOT_REGISTERED'));
      await assert.rejects(s.touch(k, { observed: '1.2.3.4:5', now: 6 }), isCode('NOT_REGISTERED'));
      await assert.rejects(s.setHostname(k, 'h2'), isCode('NOT_REGISTERED'));
      const back = await s.register({ publicKey: k, email: 'a@x.io', now: 7 });
      assert.deepEqual(back.address, rec.address);
      assert.equal(back.active, true);
    }),
  );

  const inviteRec = (net: number, n: number, over: Partial<InviteRecord> = {}): InviteRecord => ({
    net,
    id: Buffer.alloc(16, n),
    cert: Buffer.from(`cert-${n}`),
    certSig: Buffer.alloc(64, n),
    uses: 0,
    used: 0,
    exp: 0,
    iat: 1,
    revoked: false,
    ephemeral: false,
    tags: ['worker'],
    created: n,
    ...over,
  });
  const memberRec = (net: number, inv: number, node: number, over: Partial<MemberRecord> = {}): MemberRecord => ({
    net,
    address: makeAddress(0, node),
    key: Buffer.alloc(32, node),
    tags: ['gpu', 'worker'],
    ephemeral: false,
    joined: node,
    inviteId: Buffer.alloc(16, inv),
    cert: Buffer.from(`cert-${inv}`),
    certSig: Buffer.alloc(64, 1),
    binding: Buffer.from(`b${node}`),
    bindingSig: Buffer.alloc(64, 2),
    ...over,
  });

  t('ephemeral nodes: the flag is one way; remove deletes the node, its memberships, trust pairs and requests (and says which); ids are never reused', () =>
    withStore(f, async (s) => {
      const eph = key();
      const peer = key();
      const other = key();
      const e = await s.register({ publicKey: eph, email: 'e@x.io', hostname: 'worker', ephemeral: true, now: 1000 });
      const p = await s.register({ publicKey: peer, email: 'p@x.io', now: 1000 });
      const o = await s.register({ publicKey: other, email: 'o@x.io', now: 1000 });
      assert.equal(e.ephemeral, true);
      assert.equal(p.ephemeral, false);
      assert.equal((await s.register({ publicKey: eph, email: 'e@x.io', ephemeral: false, now: 1500 })).ephemeral, true, 'false does not clear it');
      await s.markEphemeral(other);
      assert.equal((await s.getByKey(other))?.ephemeral, true);
      await assert.rejects(s.markEphemeral(key()), isCode('NOT_REGISTERED'));
      await s.touch(other, { observed: '1.2.3.4:5', now: 5000 });
      assert.deepEqual(
        (await s.listEphemeralSeenBefore(2000, 10)).map((r) => r.publicKey.toString('hex')),
        [eph.toString('hex')],
        'only ephemeral nodes last seen before the cut-off',
      );
      assert.equal((await s.listEphemeralSeenBefore(9000, 1)).length, 1, 'limit');
      const stmt = { stmtA: 'a', sigA: Buffer.alloc(64, 1), stmtB: 'b', sigB: Buffer.alloc(64, 2), created: 1 };
      await s.putTrustPair({ a: e.address, b: p.address, ...stmt });
      await s.putTrustPair({ a: p.address, b: o.address, ...stmt });
      await s.putTrustRequest({ from: e.address, to: o.address, reason: '', statement: 's', sig: Buffer.alloc(64), created: 1 });
      await s.putTrustRequest({ from: o.address, to: e.address, reason: '', statement: 's', sig: Buffer.alloc(64), created: 1 });
      const net = (await s.networks.createNetwork({ name: 'fleet', admin: peer, now: 1, maxPerAdmin: 16 })).id;
      await s.networks.putInvite(inviteRec(net, 1), { maxLive: 10, now: 0 });
      const asMember = makeAddress(net, e.address.node);
      await s.networks.join(memberRec(net, 1, 9, { key: eph, address: asMember, ephemeral: true }), { now: 0, maxMembers: 10 });
      await s.networks.join(memberRec(net, 1, 8, { key: peer, address: makeAddress(net, p.address.node) }), { now: 0, maxMembers: 10 });
      assert.equal(await s.remove(peer, { onlyEphemeral: true }), undefined, 'onlyEphemeral: a node that is not ephemeral stays');
      assert.ok(await s.getByKey(peer));
      const gone = await s.remove(eph, { onlyEphemeral: true });
      assert.deepEqual(gone?.node.address, e.address);
      assert.deepEqual(gone?.pairs, [{ a: e.address, b: p.address }], 'the pairs it was in, to tell the peers');
      assert.deepEqual(gone?.memberships, [asMember], 'its member addresses');
      assert.equal(await s.networks.getMember(net, eph), undefined, 'its membership is gone');
      assert.ok(await s.networks.getMember(net, peer), "the other member's stays");
      assert.equal(await s.remove(eph), undefined, 'a second remove (another instance) finds nothing');
      assert.equal(await s.getByKey(eph), undefined);
      assert.equal(await s.getByAddress(e.address), undefined, 'the address no longer resolves');
      assert.equal(await s.getByHostname('worker'), undefined);
      assert.equal(await s.getTrustPair(e.address, p.address), undefined);
      assert.ok(await s.getTrustPair(p.address, o.address), 'other pairs stay');
      assert.equal(await s.getTrustRequest(e.address, o.address), undefined);
      assert.equal(await s.getTrustRequest(o.address, e.address), undefined);
      // The hostname is free at once; the node id is not handed out again, not even to the same key.
      const taker = await s.register({ publicKey: key(), email: 't@x.io', hostname: 'worker', now: 6000 });
      assert.equal(taker.hostname, 'worker');
      assert.notDeepEqual(taker.address, e.address);
      const back = await s.register({ publicKey: eph, email: 'e@x.io', now: 7000 });
      assert.ok(addressKey(back.address) > addressKey(taker.address), 'a new, higher id');
      assert.equal(back.ephemeral, false, 'a new record starts permanent unless asked');
    }),
  );

  t('trust pairs and trust requests', () =>
    withStore(f, async (s) => {
      const a = makeAddress(0, 5);
      const b = makeAddress(0, 3);
      const c = makeAddress(1, 0xffffffff); // the largest keys must round-trip
      await s.putTrustPair({ a, b, stmtA: 'from-5', sigA: Buffer.alloc(64, 1), stmtB: 'from-3', sigB: Buffer.alloc(64, 2), created: 10 });
      const p = await s.getTrustPair(b, a);
      assert.ok(p);
      assert.deepEqual(p.a, b, 'stored with the lower address first');
      assert.deepEqual(p.sigA, Buffer.alloc(64, 2), 'signatures follow their node');
      assert.equal(p.stmtA, 'from-3', 'statements follow their node');
      assert.equal(p.stmtB, 'from-5');
      assert.equal(p.created, 10);
      await s.putTrustPair({ a: c, b: a, stmtA: 'c', sigA: Buffer.alloc(64, 3), stmtB: 'a', sigB: Buffer.alloc(64, 4), created: 9 });
      const pc = await s.getTrustPair(a, c);
      assert.deepEqual(pc?.b, c);
      assert.deepEqual(
        (await s.listTrustPairs(a)).map((x) => [addressKey(x.a), addressKey(x.b)]),
        [
          [addressKey(a), addressKey(c)],
          [addressKey(b), addressKey(a)],
        ],
        'oldest first',
      );
      assert.equal((await s.listTrustPairs(c)).length, 1);
      assert.equal(await s.deleteTrustPair(a, b), true);
      assert.equal(await s.deleteTrustPair(a, b), false);
      assert.equal(await s.getTrustPair(a, b), undefined);

      await s.putTrustRequest({ from: a, to: b, reason: 'hi', statement: '{"x":1}', sig: Buffer.alloc(64, 7), created: 11 });
      await s.putTrustRequest({ from: c, to: b, reason: '', statement: '{"x":2}', sig: Buffer.alloc(64, 8), created: 5 });
      const r = await s.getTrustRequest(a, b);
      assert.equal(r?.reason, 'hi');
      assert.equal(r?.statement, '{"x":1}');
      assert.deepEqual(r?.sig, Buffer.alloc(64, 7));
      assert.deepEqual(r?.from, a);
      assert.deepEqual(
        (await s.listTrustRequestsTo(b)).map((x) => addressKey(x.from)),
        [addressKey(c), addressKey(a)],
        'oldest first',
      );
      assert.equal((await s.listTrustRequestsTo(a)).length, 0);
      assert.equal((await s.listTrustRequestsFrom(a)).length, 1);
      assert.equal((await s.listTrustRequestsFrom(b)).length, 0);
      await s.putTrustRequest({ from: a, to: b, reason: 'again', statement: '{"x":3}', sig: Buffer.alloc(64, 9), created: 12 });
      assert.equal((await s.getTrustRequest(a, b))?.reason, 'again', 'a repeated request replaces the old one');
      assert.equal(await s.deleteTrustRequest(a, b), true);
      assert.equal(await s.deleteTrustRequest(a, b), false);
      assert.equal(await s.getTrustRequest(a, b), undefined);
    }),
  );

  t('everything survives closing and reopening; allocation continues', () =>
    withStore(f, async (s1, open) => {
      const k = key();
      const rec = await s1.register({ publicKey: k, email: 'a@x.io', hostname: 'keep', public: true, now: 1 });
      const a = rec.address;
      const b = makeAddress(0, 9);
      await s1.putTrustPair({ a, b, stmtA: 'sa', sigA: Buffer.alloc(64, 1), stmtB: 'sb', sigB: Buffer.alloc(64, 2), created: 3 });
      await s1.putTrustRequest({ from: b, to: a, reason: 'r', statement: 'st', sig: Buffer.alloc(64, 5), created: 4 });
      await s1.close();
      const s2 = await open();
      try {
        const back = await s2.getByHostname('keep');
        assert.deepEqual(back?.address, a);
        assert.equal(back?.public, true);
        assert.equal((await s2.getTrustPair(b, a))?.stmtB, 'sb');
        assert.equal((await s2.getTrustRequest(b, a))?.statement, 'st');
        assert.deepEqual((await s2.register({ publicKey: key(), email: 'b@x.io', now: 5 })).address, makeAddress(0, 2));
      } finally {
        await s2.close();
      }
    }),
  );

  t('two stores on one database register concurrently: no duplicate addresses, no gaps', () =>
    withStore(f, async (s1, open) => {
      const s2 = await open();
      try {
        const N = 40;
        const keys = Array.from({ length: 2 * N }, key);
        const recs = await Promise.all(keys.map((k, i) => (i % 2 ? s2 : s1).register({ publicKey: k, email: `n${i}@x.io`, now: i })));
        const ids = recs.map((r) => r.address.node).sort((x, y) => x - y);
        assert.deepEqual(
          ids,
          Array.from({ length: 2 * N }, (_, i) => i + 1),
        );
        // The same key from both at once: one node, one address.
        const k = key();
        const [x, y] = await Promise.all([s1.register({ publicKey: k, email: 'x@x.io', now: 100 }), s2.register({ publicKey: k, email: 'x@x.io', now: 100 })]);
        assert.deepEqual(x.address, y.address);
        assert.deepEqual(x.address, makeAddress(0, 2 * N + 1));
        // One hostname claimed by two keys at once: exactly one wins.
        const claims = await Promise.allSettled([
          s1.register({ publicKey: key(), email: 'p@x.io', hostname: 'race', now: 101 }),
          s2.register({ publicKey: key(), email: 'q@x.io', hostname: 'race', now: 101 }),
        ]);
        assert.equal(claims.filter((c) => c.status === 'fulfilled').length, 1);
        const lost = claims.find((c) => c.status === 'rejected') as PromiseRejectedResult;
        assert.ok(isCode('HOSTNAME_TAKEN')(lost.reason), String(lost.reason));
      } finally {
        await s2.close();
      }
    }),
  );

  t('withPairLock (when offered) excludes a second store on the same pair', () =>
    withStore(f, async (s1, open) => {
      if (!s1.withPairLock) return; // single-process store: the rendezvous serialises in memory
      const s2 = await open();
      try {
        const a: Address = makeAddress(0, 1);
        const b: Address = makeAddress(0, 2);
        const log: string[] = [];
        const critical = (s: RegistryStore, tag: string, x: Address, y: Address) =>
          s.withPairLock!(x, y, async () => {
            log.push(`${tag}+`);
            await new Promise((r) => setTimeout(r, 150));
            log.push(`${tag}-`);
          });
        await Promise.all([critical(s1, '1', a, b), critical(s2, '2', b, a)]);
        assert.ok(log.join() === '1+,1-,2+,2-' || log.join() === '2+,2-,1+,1-', `interleaved: ${log.join()}`);
        // Another pair is not blocked.
        const other: string[] = [];
        const slow = s1.withPairLock!(a, b, async () => {
          await new Promise((r) => setTimeout(r, 300));
          other.push('ab');
        });
        await s2.withPairLock!(a, makeAddress(0, 3), async () => void other.push('ac'));
        await slow;
        assert.deepEqual(other, ['ac', 'ab']);
      } finally {
        await s2.close();
      }
    }),
  );

  // ---------------- fleets (issue 18) ----------------

  t('networks: ids from 1, never reused; unique names; quota per admin; delete cascades', () =>
    withStore(f, async (s) => {
      const n = s.networks;
      const admin = key();
      const a = await n.createNetwork({ name: 'alpha', admin, now: 1, maxPerAdmin: 2 });
      const b = await n.createNetwork({ name: 'bravo', admin, now: 2, maxPerAdmin: 2 });
      assert.deepEqual([a.id, b.id], [1, 2]);
      assert.deepEqual(a.admin, admin);
      await assert.rejects(
        n.createNetwork({ name: 'alpha', admin: key(), now: 3, maxPerAdmin: 2 }),
        (e: unknown) => isCode('BAD_ARGUMENT')(e) && /already exists/.test((e as Error).message),
      );
      await assert.rejects(n.createNetwork({ name: 'charlie', admin, now: 3, maxPerAdmin: 2 }), isCode('QUOTA_EXCEEDED'));
      assert.equal((await n.getNetworkByName('bravo'))?.id, 2);
      assert.equal((await n.getNetwork(1))?.name, 'alpha');
      await n.putInvite(inviteRec(1, 1), { maxLive: 10, now: 0 });
      assert.equal((await n.join(memberRec(1, 1, 5), { now: 0, maxMembers: 10 })).ok, true);
      await n.setPolicy({ net: 1, text: '{}', sig: Buffer.alloc(64), updated: 1 });
      await n.appendAudit({ net: 1, ts: 1, actor: makeAddress(0, 1), action: 'create', detail: '{}', stmt: 's', sig: Buffer.alloc(64) }, 10);
      await n.putKick({ net: 1, address: makeAddress(0, 6), key: Buffer.alloc(32, 6), stmt: 'k', sig: Buffer.alloc(64), ts: 1 }, 10);
      assert.deepEqual(
        (await n.networksOf(admin)).map((x) => x.id),
        [1, 2],
        'administered',
      );
      assert.deepEqual(
        (await n.networksOf(Buffer.alloc(32, 5))).map((x) => x.id),
        [1],
        'member of',
      );
      assert.equal(await n.deleteNetwork(1), true);
      assert.equal(await n.deleteNetwork(1), false);
      assert.equal(await n.getNetwork(1), undefined);
      assert.equal(await n.getInvite(1, Buffer.alloc(16, 1)), undefined);
      assert.equal(await n.countMembers(1), 0);
      assert.equal(await n.getPolicy(1), undefined);
      assert.deepEqual(await n.listAudit(1, 0, 10), []);
      assert.deepEqual(await n.listKicks(1), []);
      const c = await n.createNetwork({ name: 'alpha', admin, now: 4, maxPerAdmin: 2 });
      assert.equal(c.id, 3, 'ids are never reused');
    }),
  );

  t('invites: live quota, revoke; join counts uses atomically and refuses with reasons', () =>
    withStore(f, async (s) => {
      const n = s.networks;
      const net = (await n.createNetwork({ name: 'fleet', admin: key(), now: 1, maxPerAdmin: 16 })).id;
      await n.putInvite(inviteRec(net, 1, { uses: 2, tags: ['a', 'b'] }), { maxLive: 3, now: 0 });
      await n.putInvite(inviteRec(net, 2, { exp: 100 }), { maxLive: 3, now: 0 });
      await n.putInvite(inviteRec(net, 3), { maxLive: 3, now: 0 });
      await assert.rejects(n.putInvite(inviteRec(net, 4), { maxLive: 3, now: 0 }), isCode('QUOTA_EXCEEDED'));
      // Invite 2 expired at 100 s: no longer live, so there is room again.
      await n.putInvite(inviteRec(net, 4), { maxLive: 3, now: 100_000 });
      const got = await n.getInvite(net, Buffer.alloc(16, 1));
      assert.deepEqual(got?.tags, ['a', 'b']);
      assert.equal(got?.uses, 2);
      assert.deepEqual(
        (await n.listInvites(net)).map((x) => x.id[0]),
        [1, 2, 3, 4],
      );
      assert.equal(await n.revokeInvite(net, Buffer.alloc(16, 3)), true);
      assert.equal(await n.revokeInvite(net, Buffer.alloc(16, 3)), false);
      assert.equal((await n.getInvite(net, Buffer.alloc(16, 3)))?.revoked, true);
      // Dead invites are kept, but only the newest 4 x maxLive of them.
      const other = (await n.createNetwork({ name: 'dead', admin: key(), now: 1, maxPerAdmin: 16 })).id;
      for (let i = 1; i <= 6; i++) await n.putInvite(inviteRec(other, i, { exp: 50 }), { maxLive: 1, now: 100_000 });
      assert.deepEqual(
        (await n.listInvites(other)).map((x) => x.id[0]),
        [3, 4, 5, 6],
      );

      const j1 = await n.join(memberRec(net, 1, 10), { now: 0, maxMembers: 3 });
      assert.ok(j1.ok && !j1.already);
      assert.deepEqual(j1.member.tags, ['gpu', 'worker']);
      const again = await n.join(memberRec(net, 1, 10, { joined: 99 }), { now: 0, maxMembers: 3 });
      assert.ok(again.ok && again.already, 'a member joining again uses nothing');
      assert.equal((await n.getInvite(net, Buffer.alloc(16, 1)))?.used, 1);
      assert.deepEqual(await n.join(memberRec(net, 3, 11), { now: 0, maxMembers: 3 }), { ok: false, why: 'revoked', uses: 0 });
      assert.deepEqual(await n.join(memberRec(net, 2, 11), { now: 100_000, maxMembers: 3 }), { ok: false, why: 'expired', uses: 0 });
      assert.deepEqual(await n.join(memberRec(net, 9, 11), { now: 0, maxMembers: 3 }), { ok: false, why: 'unknown', uses: 0 });
      assert.ok((await n.join(memberRec(net, 4, 12), { now: 0, maxMembers: 3 })).ok);
      assert.deepEqual(await n.join(memberRec(net, 4, 13, {}), { now: 0, maxMembers: 2 }), { ok: false, why: 'full', uses: 0 });
      // The last use of invite 1, claimed by several joiners at once: exactly one gets it.
      const racers = await Promise.all([20, 21, 22, 23].map((k) => n.join(memberRec(net, 1, k), { now: 0, maxMembers: 100 })));
      assert.equal(racers.filter((r) => r.ok).length, 1);
      assert.ok(racers.filter((r) => !r.ok).every((r) => !r.ok && r.why === 'used-up'));
      assert.equal((await n.getInvite(net, Buffer.alloc(16, 1)))?.used, 2);
      assert.equal(await n.countMembers(net), 3);
      assert.deepEqual(
        (await n.listMembers(net)).map((m) => m.address.node),
        [10, 12, ...racers.flatMap((r, i) => (r.ok ? [20 + i] : []))],
      );
    }),
  );

  t('join: one call checks the certificate and kicks, marks the node ephemeral and appends the audit entry once', () =>
    withStore(f, async (s) => {
      const n = s.networks;
      const net = (await n.createNetwork({ name: 'one-call', admin: key(), now: 1, maxPerAdmin: 16 })).id;
      await n.putInvite(inviteRec(net, 1, { uses: 3, iat: 10 }), { maxLive: 3, now: 0 });
      const k = key();
      await s.register({ publicKey: k, email: 'e@x.io', now: 1 });
      const m = memberRec(net, 1, 30, { key: k });
      // A certificate other than the registered one: refused, nothing used.
      assert.deepEqual(await n.join({ ...m, cert: Buffer.from('other') }, { now: 0, maxMembers: 10 }), { ok: false, why: 'forged', uses: 3 });
      // Kicked after the invite was issued (10 s): refused; a kick before it is dropped by the join.
      await n.putKick({ net, address: m.address, key: k, stmt: 'k', sig: Buffer.alloc(64), ts: 10_000 }, 10);
      assert.deepEqual(await n.join(m, { now: 0, maxMembers: 10 }), { ok: false, why: 'kicked', uses: 3 });
      assert.equal((await n.getInvite(net, Buffer.alloc(16, 1)))?.used, 0);
      await n.putKick({ net, address: m.address, key: k, stmt: 'k', sig: Buffer.alloc(64), ts: 9_999 }, 10);
      const entry = { net, ts: 5, actor: m.address, action: 'join', detail: '{"x":1}', stmt: 'signed', sig: Buffer.alloc(64, 7) };
      const j = await n.join(m, { now: 0, maxMembers: 10, markNodeEphemeral: true, audit: { entry, keep: 100 } });
      assert.ok(j.ok && !j.already);
      assert.equal(await n.getKick(net, k), undefined, 'the older kick is gone');
      assert.equal((await s.getByKey(k))?.ephemeral, true, 'the node is ephemeral now');
      const again = await n.join(m, { now: 0, maxMembers: 10, audit: { entry, keep: 100 } });
      assert.ok(again.ok && again.already);
      const log = await n.listAudit(net, 0, 10);
      assert.deepEqual(
        log.map((e) => [e.seq, e.action, e.detail, e.stmt, e.actor.node]),
        [[1, 'join', '{"x":1}', 'signed', 30]],
        'one entry: a member joining again is not audited again',
      );
      assert.equal((await n.getInvite(net, Buffer.alloc(16, 1)))?.used, 1);
    }),
  );

  t('join: the last use is taken once across two stores on one database', () =>
    withStore(f, async (s1, open) => {
      const s2 = await open();
      try {
        const net = (await s1.networks.createNetwork({ name: 'race', admin: key(), now: 1, maxPerAdmin: 16 })).id;
        await s1.networks.putInvite(inviteRec(net, 1, { uses: 5 }), { maxLive: 10, now: 0 });
        const results = await Promise.all(
          Array.from({ length: 16 }, (_, i) => (i % 2 ? s2 : s1).networks.join(memberRec(net, 1, 100 + i), { now: 0, maxMembers: 1000 })),
        );
        assert.equal(results.filter((r) => r.ok).length, 5);
        assert.equal((await s2.networks.getInvite(net, Buffer.alloc(16, 1)))?.used, 5);
        assert.equal(await s1.networks.countMembers(net), 5);
        // A member joining again (at the other store) takes no use and keeps its first join time.
        const first = results.findIndex((r) => r.ok);
        const again = await (first % 2 ? s1 : s2).networks.join({ ...memberRec(net, 1, 100 + first), joined: 999 }, { now: 0, maxMembers: 1000 });
        assert.ok(again.ok && again.already);
        assert.equal(again.member.joined, (results[first] as { member: { joined: number } }).member.joined);
        assert.equal((await s1.networks.getInvite(net, Buffer.alloc(16, 1)))?.used, 5);
        // Audit appends from both stores at once: every seq once, none lost.
        const seqs = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            (i % 2 ? s2 : s1).networks.appendAudit(
              { net, ts: i, actor: makeAddress(0, 1), action: 'join', detail: '{}', stmt: `s${i}`, sig: Buffer.alloc(64, i) },
              100,
            ),
          ),
        );
        assert.deepEqual(
          seqs.sort((x, y) => x - y),
          Array.from({ length: 30 }, (_, i) => i + 1),
        );
        assert.equal((await s1.networks.listAudit(net, 0, 100)).length, 30);
      } finally {
        await s2.close();
      }
    }),
  );

  t('members: verbatim credential, remove, shared networks, find by credential or self tag', () =>
    withStore(f, async (s) => {
      const n = s.networks;
      const admin = key();
      const x = (await n.createNetwork({ name: 'x', admin, now: 1, maxPerAdmin: 16 })).id;
      const y = (await n.createNetwork({ name: 'y', admin, now: 1, maxPerAdmin: 16 })).id;
      await n.putInvite(inviteRec(x, 1), { maxLive: 10, now: 0 });
      await n.putInvite(inviteRec(y, 2), { maxLive: 10, now: 0 });
      await n.join(memberRec(x, 1, 1, { tags: ['planner'], ephemeral: true }), { now: 0, maxMembers: 10 });
      await n.join(memberRec(x, 1, 2, { tags: [] }), { now: 0, maxMembers: 10 });
      await n.join(memberRec(y, 2, 3), { now: 0, maxMembers: 10 });
      const m = await n.getMember(x, Buffer.alloc(32, 1));
      assert.equal(m?.ephemeral, true);
      assert.deepEqual(m?.tags, ['planner']);
      assert.deepEqual(m?.binding, Buffer.from('b1'));
      assert.deepEqual(m?.bindingSig, Buffer.alloc(64, 2));
      assert.deepEqual(m?.address, makeAddress(0, 1));
      assert.equal(await n.sharesNetwork(makeAddress(0, 1), makeAddress(0, 2)), true);
      assert.equal(await n.sharesNetwork(makeAddress(0, 1), makeAddress(0, 3)), false);
      const withMembership = async (k: Buffer) => (await n.networksOfWithMembership(k)).map((w) => [w.network.id, w.network.name, w.tags, w.members]);
      assert.deepEqual(await withMembership(Buffer.alloc(32, 1)), [[x, 'x', ['planner'], 2]], "a member: its tags, the network's member count");
      assert.deepEqual(
        await withMembership(admin),
        [
          [x, 'x', null, 2],
          [y, 'y', null, 1],
        ],
        'the admin (not a member): no tags',
      );
      assert.deepEqual(await withMembership(key()), []);
      assert.deepEqual(
        (await n.sharedMemberships(Buffer.alloc(32, 2), Buffer.alloc(32, 1))).map((r) => [r.net, r.tags]),
        [[x, ['planner']]],
        "b's credential tags in the networks both are in",
      );
      assert.deepEqual(await n.sharedMemberships(Buffer.alloc(32, 1), Buffer.alloc(32, 3)), []);
      await n.setSelfTags(Buffer.alloc(32, 2), ['planner', 'search']);
      await n.setSelfTags(Buffer.alloc(32, 3), ['planner']);
      assert.deepEqual(await n.getSelfTags(Buffer.alloc(32, 2)), ['planner', 'search']);
      const page = (tag: string, caller: number, offset = 0, limit = 10) => n.findPage(x, tag, { caller: Buffer.alloc(32, caller), offset, limit });
      const nodes = (pg: Awaited<ReturnType<typeof page>>) => pg.found.map((f) => f.member.address.node);
      assert.deepEqual(nodes(await page('planner', 1)), [1, 2], 'credential tag or self tag');
      assert.deepEqual(nodes(await page('plan', 1)), [], 'whole tags only');
      assert.deepEqual(nodes(await page('planner', 1, 1, 5)), [2], 'from an offset');
      assert.deepEqual(nodes(await page('planner', 1, 0, 1)), [1], 'at most limit');
      assert.equal((await page('planner', 1)).callerIsMember, true);
      assert.equal((await page('planner', 3)).callerIsMember, false, 'not a member of this network');
      assert.equal((await page('nothing', 3)).callerIsMember, false, 'also when nothing matches');
      assert.equal((await page('nothing', 1)).callerIsMember, true, 'also when nothing matches');
      assert.deepEqual(
        (await page('planner', 1)).found.map((f) => f.about),
        [
          { hostname: null, selfTags: [] },
          { hostname: null, selfTags: ['planner', 'search'] },
        ],
        "each with its node's summary",
      );
      assert.deepEqual(
        (await n.findSelfTag('planner', 10)).map((k) => k[0]),
        [2, 3],
      );
      // A page of discovery results described in one query: hostname only while registered and
      // active, self tags sorted, in the order asked; an unknown key has neither.
      const named = await s.register({ publicKey: key(), email: 'h@x.io', hostname: 'host-h', now: 1 });
      const gone = await s.register({ publicKey: key(), email: 'g@x.io', hostname: 'host-g', now: 1 });
      await n.setSelfTags(named.publicKey, ['zeta', 'alpha']);
      await s.deregister(gone.publicKey);
      assert.deepEqual(await n.describeNodes([Buffer.alloc(32, 2), named.publicKey, key(), gone.publicKey]), [
        { hostname: null, selfTags: ['planner', 'search'] },
        { hostname: 'host-h', selfTags: ['alpha', 'zeta'] },
        { hostname: null, selfTags: [] },
        { hostname: null, selfTags: [] },
      ]);
      assert.deepEqual(await n.describeNodes([]), []);
      await n.setSelfTags(Buffer.alloc(32, 2), []);
      assert.deepEqual(await n.getSelfTags(Buffer.alloc(32, 2)), []);
      assert.deepEqual(
        (await n.findSelfTag('planner', 10)).map((k) => k[0]),
        [3],
      );
      assert.deepEqual(
        (await n.listEphemeralMembers(10)).map((r) => [r.net, r.address.node]),
        [[x, 1]],
      );
      assert.deepEqual(
        (await n.membershipsOf(Buffer.alloc(32, 3))).map((r) => r.net),
        [y],
      );
      assert.deepEqual(await n.membershipsOf(Buffer.alloc(32, 9)), []);
      assert.equal(await n.removeMember(x, Buffer.alloc(32, 1)), true);
      assert.equal(await n.removeMember(x, Buffer.alloc(32, 1)), false);
      assert.equal(await n.sharesNetwork(makeAddress(0, 1), makeAddress(0, 2)), false);
    }),
  );

  t('kicks (bounded, newest kept), policy, audit (ordered, bounded)', () =>
    withStore(f, async (s) => {
      const n = s.networks;
      const net = (await n.createNetwork({ name: 'k', admin: key(), now: 1, maxPerAdmin: 16 })).id;
      for (let i = 1; i <= 5; i++)
        await n.putKick({ net, address: makeAddress(0, i), key: Buffer.alloc(32, i), stmt: `kick-${i}`, sig: Buffer.alloc(64, i), ts: i }, 3);
      assert.deepEqual(
        (await n.listKicks(net)).map((k) => k.stmt),
        ['kick-3', 'kick-4', 'kick-5'],
      );
      assert.equal((await n.getKick(net, Buffer.alloc(32, 4)))?.sig[0], 4);
      assert.equal(await n.getKick(net, Buffer.alloc(32, 1)), undefined);
      assert.equal(await n.deleteKick(net, Buffer.alloc(32, 4)), true);
      assert.equal(await n.deleteKick(net, Buffer.alloc(32, 4)), false);
      assert.equal(await n.getPolicy(net), undefined);
      await n.setPolicy({ net, text: '{ "rules": [] }', sig: Buffer.alloc(64, 7), updated: 5 });
      await n.setPolicy({ net, text: '{}', sig: Buffer.alloc(64, 8), updated: 6 });
      assert.deepEqual(await n.getPolicy(net), { net, text: '{}', sig: Buffer.alloc(64, 8), updated: 6 });
      const seqs: number[] = [];
      for (let i = 0; i < 7; i++)
        seqs.push(
          await n.appendAudit(
            { net, ts: 100 + i, actor: makeAddress(0, i), action: `a${i}`, detail: `{"i":${i}}`, stmt: `st${i}`, sig: Buffer.alloc(64, i) },
            5,
          ),
        );
      assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7]);
      const all = await n.listAudit(net, 0, 100);
      assert.deepEqual(
        all.map((e) => e.seq),
        [3, 4, 5, 6, 7],
        'the newest 5 are kept',
      );
      assert.deepEqual(
        (await n.listAudit(net, 4, 2)).map((e) => e.action),
        ['a4', 'a5'],
      );
      const e = await n.getAudit(net, 6);
      assert.deepEqual(e, { net, seq: 6, ts: 105, actor: makeAddress(0, 5), action: 'a5', detail: '{"i":5}', stmt: 'st5', sig: Buffer.alloc(64, 5) });
    }),
  );
}
