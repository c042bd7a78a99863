// RegistryStore.rotateKey/listRotations/retiredKey (issue 18 key rotation): one suite
// run against both stores (sqlite-store.test.ts, postgres-store.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity } from '../../../src/registry/signing.ts';
import { PilotError } from '../../../src/util/errors.ts';
import { makeAddress, type Address } from '../../../src/wire/address.ts';
import type { KeyRotationRecord, RegistryStore } from '../../../src/rendezvous/store/store.ts';
import type { StoreFactory } from './store-contract.ts';

const key = () => generateIdentity().publicKey;
const isCode = (code: string) => (e: unknown) => e instanceof PilotError && e.code === code && typeof e.hint === 'string';
const OPTS = { keep: 3, minIntervalMs: 60_000 };

function rec(address: Address, oldKey: Buffer, newKey: Buffer, created: number): KeyRotationRecord {
  return { address, oldKey, newKey, statement: `stmt-${created}`, sig: Buffer.alloc(64, created % 256), created };
}

export function rotationContract(name: string, f: StoreFactory, opts: { skip?: string | false } = {}): void {
  const t = (title: string, fn: () => Promise<void>) => test(`${name}: ${title}`, { skip: opts.skip ?? false, timeout: 60_000 }, fn);

  t('rotateKey rebinds the address, keeps hostname, moves admin/member rows, retires the old key', async () => {
    const open = await f.fresh();
    const s: RegistryStore = await open();
    try {
      const k0 = key();
      const k1 = key();
      const a = await s.register({ publicKey: k0, email: 'a@x.io', hostname: 'alpha', now: 1 });
      const other = await s.register({ publicKey: key(), email: 'b@x.io', now: 1 });
      const net = await s.networks.createNetwork({ name: 'fleet', admin: k0, now: 1, maxPerAdmin: 5 });
      await s.networks.putInvite(
        {
          net: net.id,
          id: Buffer.alloc(16, 1),
          cert: Buffer.from('c'),
          certSig: Buffer.alloc(64),
          uses: 0,
          used: 0,
          exp: 0,
          iat: 1,
          revoked: false,
          ephemeral: false,
          tags: ['w'],
          created: 1,
        },
        { maxLive: 5, now: 1 },
      );
      const joined = await s.networks.join(
        {
          net: net.id,
          address: a.address,
          key: k0,
          tags: ['w'],
          ephemeral: false,
          joined: 1,
          inviteId: Buffer.alloc(16, 1),
          cert: Buffer.from('c'),
          certSig: Buffer.alloc(64),
          binding: Buffer.from('b'),
          bindingSig: Buffer.alloc(64),
        },
        { now: 1, maxMembers: 10 },
      );
      assert.ok(joined.ok);

      const r = await s.rotateKey(rec(a.address, k0, k1, 100_000), OPTS);
      assert.equal(r.status, 'rotated');
      assert.deepEqual(r.node.address, a.address);
      assert.equal(r.node.hostname, 'alpha');
      assert.deepEqual(r.node.publicKey, k1);
      assert.deepEqual((await s.getByAddress(a.address))?.publicKey, k1);
      assert.equal(await s.getByKey(k0), undefined);
      assert.deepEqual((await s.getByHostname('alpha'))?.publicKey, k1);
      assert.deepEqual((await s.networks.getNetwork(net.id))?.admin, k1, 'admin rights move to the new key');
      assert.ok(await s.networks.getMember(net.id, k1), 'membership moves to the new key');
      assert.equal(await s.networks.getMember(net.id, k0), undefined);
      assert.deepEqual(await s.retiredKey(k0), a.address);
      assert.equal(await s.retiredKey(k1), undefined);
      const hist = await s.listRotations(a.address);
      assert.equal(hist.length, 1);
      assert.deepEqual(hist[0], rec(a.address, k0, k1, 100_000));
      // Lookups may bring the statement that bound the key along (boundBy: PostgreSQL does, to spare
      // a resolve a round trip); where they do, it is this one, and null for a node never rotated.
      for (const got of [await s.getByAddress(a.address), await s.getByKey(k1), await s.getByHostname('alpha')]) {
        if (got?.boundBy !== undefined) assert.deepEqual(got.boundBy, { statement: hist[0]!.statement, sig: hist[0]!.sig });
      }
      const never = (await s.getByKey(other.publicKey))?.boundBy;
      if (never !== undefined) assert.equal(never, null);
      // The retired key cannot come back as a new node.
      await assert.rejects(s.register({ publicKey: k0, email: 'thief@x.io', now: 2 }), isCode('KEY_ROTATED'));

      // The same rotation again (a retry): answered, nothing changes.
      assert.equal((await s.rotateKey(rec(a.address, k0, k1, 100_500), OPTS)).status, 'already');
      assert.equal((await s.listRotations(a.address)).length, 1);
      // The old key cannot rotate the address any more; nor can anyone rotate too soon.
      await assert.rejects(s.rotateKey(rec(a.address, k0, key(), 200_000), OPTS), isCode('KEY_ROTATED'));
      await assert.rejects(s.rotateKey(rec(a.address, k1, key(), 120_000), OPTS), isCode('RATE_LIMITED'));
      // A key in use (another node's, or a retired one) is refused.
      await assert.rejects(s.rotateKey(rec(a.address, k1, other.publicKey, 200_000), OPTS), isCode('BAD_ARGUMENT'));
      await assert.rejects(s.rotateKey(rec(a.address, k1, k0, 200_000), OPTS), isCode('BAD_ARGUMENT'));
      await assert.rejects(s.rotateKey(rec(makeAddress(0, 99), k1, key(), 200_000), OPTS), isCode('NOT_FOUND'));
      // Bounded history: the newest `keep` statements.
      let cur = k1;
      for (let i = 0; i < 4; i++) {
        const next = key();
        await s.rotateKey(rec(a.address, cur, next, 200_000 + i * 60_000), OPTS);
        cur = next;
      }
      const kept = await s.listRotations(a.address);
      assert.deepEqual(
        kept.map((x) => x.created),
        [260_000, 320_000, 380_000],
      );
      assert.deepEqual(kept[2]!.newKey, cur);
      assert.deepEqual((await s.getByAddress(a.address))?.publicKey, cur);
      assert.deepEqual(await s.retiredKey(k1), a.address, 'retired keys outlive the statement history');
    } finally {
      await s.close();
    }
  });

  t('two store handles (two instances) rotating one address at once: exactly one wins', async () => {
    const open = await f.fresh();
    const s1 = await open();
    const s2 = await open();
    try {
      const k0 = key();
      const a = await s1.register({ publicKey: k0, email: 'a@x.io', now: 1 });
      const results = await Promise.allSettled([s1.rotateKey(rec(a.address, k0, key(), 10), OPTS), s2.rotateKey(rec(a.address, k0, key(), 10), OPTS)]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results.map((r) => r.status)));
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.ok(isCode('KEY_ROTATED')(lost.reason) || isCode('RATE_LIMITED')(lost.reason), String(lost.reason));
      assert.equal((await s2.listRotations(a.address)).length, 1);
    } finally {
      await s1.close();
      await s2.close();
    }
  });
}
