// The store contract against a real PostgreSQL (a private cluster started for
// this file), plus what only the PostgreSQL store has: URL and connection errors.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PostgresStore } from '../../../src/rendezvous/store/postgres-store.ts';
import { PilotError } from '../../../src/util/errors.ts';
import { usePostgresForFile } from '../../helpers/postgres.ts';
import { storeContract } from './store-contract.ts';
import { rotationContract } from './rotation-contract.ts';

const { skip, cluster, database } = usePostgresForFile({ before, after });

storeContract(
  'postgres',
  {
    async fresh() {
      const url = database('contract');
      return () => PostgresStore.open(url);
    },
  },
  { skip },
);

test('postgres: two stores migrating one empty database at the same moment', { skip }, async () => {
  const url = cluster().createDatabase('migrate_race');
  const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.open(url)));
  await Promise.all(stores.map((s) => s.close()));
  const again = await PostgresStore.open(url); // migrations already applied: a no-op
  await again.close();
});

test('postgres: bad URL, server down, missing database -> coded errors with hints', { skip }, async () => {
  const code = (c: string) => (e: unknown) => e instanceof PilotError && e.code === c && typeof e.hint === 'string' && e.hint.length > 0;
  await assert.rejects(PostgresStore.open('postgres://['), code('BAD_ARGUMENT'));
  await assert.rejects(PostgresStore.open('mysql://x@localhost/db'), code('BAD_ARGUMENT'));
  // Nothing listens on this socket directory.
  await assert.rejects(PostgresStore.open('postgres://postgres@/pilot?host=/nonexistent-pilot-dir'), code('UNREACHABLE'));
  // Nothing listens on TCP port 1.
  await assert.rejects(
    PostgresStore.open('postgres://u:secret@127.0.0.1:1/pilot'),
    (e: unknown) => code('UNREACHABLE')(e) && !(e as Error).message.includes('secret'),
  );
  const missing = cluster().url.replace('/pilot?', '/no_such_db?');
  await assert.rejects(PostgresStore.open(missing), code('BAD_ARGUMENT'));
});

// Key rotation (issue 18) against the real PostgreSQL.
rotationContract(
  'postgres',
  {
    async fresh() {
      const url = database('rotation');
      return () => PostgresStore.open(url);
    },
  },
  { skip },
);

test("postgres: a network's row is reused for a second; this instance's delete shows at once, another's within that second", { skip }, async () => {
  const url = cluster().createDatabase('net_cache');
  const [a, b] = await Promise.all([PostgresStore.open(url), PostgresStore.open(url)]);
  try {
    const admin = Buffer.alloc(32, 7);
    const x = await a.networks.createNetwork({ name: 'x', admin, now: 1, maxPerAdmin: 16 });
    const y = await a.networks.createNetwork({ name: 'y', admin, now: 1, maxPerAdmin: 16 });
    assert.equal((await a.networks.getNetwork(x.id))?.name, 'x');
    assert.equal((await a.networks.getNetwork(y.id))?.name, 'y');
    assert.equal(await a.networks.deleteNetwork(x.id), true);
    assert.equal(await a.networks.getNetwork(x.id), undefined, 'own delete: at once');
    assert.equal(await b.networks.deleteNetwork(y.id), true);
    const t0 = Date.now();
    while ((await a.networks.getNetwork(y.id)) !== undefined) await new Promise((r) => setTimeout(r, 50));
    assert.ok(Date.now() - t0 <= 1_500, `another instance's delete seen after ${Date.now() - t0} ms`);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('postgres: dbStats counts every statement sent (one per round trip) and the pool it used', { skip }, async () => {
  const url = database('db_stats');
  const store = await PostgresStore.open(url);
  try {
    const before = store.dbStats().statements;
    const key = Buffer.alloc(32, 9);
    await store.getByKey(key);
    await store.getByKey(key);
    assert.equal(store.dbStats().statements - before, 2);
    const s = store.dbStats();
    assert.ok(s.connections >= 1 && s.idle <= s.connections && s.waiting === 0, JSON.stringify(s));
  } finally {
    await store.close();
  }
});
