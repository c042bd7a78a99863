// Group commit in the SQLite store: writes of one event-loop turn share one
// transaction (one fsync), fail alone, and are committed before they resolve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../../src/rendezvous/store/sqlite-store.ts';
import { generateIdentity } from '../../../src/registry/signing.ts';
import { addressKey } from '../../../src/wire/address.ts';
import { PilotError } from '../../../src/util/errors.ts';

const key = () => generateIdentity().publicKey;
const dbFile = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-group-')), 'registry.db');

test('registers of one turn share one commit; a taken hostname fails alone; all are on disk when they resolve', async (t) => {
  const file = dbFile();
  const s = new SqliteStore(file);
  t.after(() => s.close());
  const owner = key();
  await s.register({ publicKey: owner, email: 'o@x.io', hostname: 'taken', now: 1 });
  const commits0 = s.group.stats.commits;

  const keys = Array.from({ length: 50 }, key);
  const results = keys.map((k, i) =>
    s.register({ publicKey: k, email: `n${i}@x.io`, hostname: i === 20 ? 'taken' : `n${i}`, now: 2 }).then(
      (r) => r,
      (e: unknown) => e,
    ),
  );
  const settled = await Promise.all(results);
  assert.equal(s.group.stats.commits - commits0, 1, 'one transaction for the whole burst');

  const failed = settled[20];
  assert.ok(failed instanceof PilotError && failed.code === 'HOSTNAME_TAKEN', `got ${String(failed)}`);
  const ok = settled.filter((_r, i) => i !== 20) as { address: { network: number; node: number } }[];
  const ids = ok.map((r) => addressKey(r.address as never));
  assert.equal(new Set(ids).size, 49, 'distinct addresses');
  // The failed one was rolled back to its savepoint: it took no node id, the ids stay contiguous.
  assert.deepEqual(
    [...ids].sort((a, b) => a - b),
    Array.from({ length: 49 }, (_, i) => i + 2),
  );

  // Another connection (another process) sees every resolved write: committed, not just queued.
  const other = new SqliteStore(file);
  t.after(() => other.close());
  for (const [i, k] of keys.entries()) {
    const rec = await other.getByKey(k);
    if (i === 20) assert.equal(rec, undefined);
    else assert.equal(rec?.hostname, `n${i}`);
  }
});

test('touch joins the batch; NOT_REGISTERED rejects alone; close() commits what is queued', async () => {
  const file = dbFile();
  const s = new SqliteStore(file);
  const k = key();
  await s.register({ publicKey: k, email: 'a@x.io', now: 1 });
  const [good, bad] = await Promise.allSettled([s.touch(k, { observed: '1.2.3.4:5', now: 9 }), s.touch(key(), { observed: '1.2.3.4:6', now: 9 })]);
  assert.equal(good.status === 'fulfilled' && good.value.lastSeen, 9);
  assert.ok(bad.status === 'rejected' && (bad.reason as PilotError).code === 'NOT_REGISTERED');

  const late = key();
  const pending = s.register({ publicKey: late, email: 'late@x.io', now: 10 });
  await s.close(); // before the batch's turn came
  assert.equal((await pending).email, 'late@x.io');
  const again = new SqliteStore(file);
  assert.equal((await again.getByKey(late))?.email, 'late@x.io');
  assert.equal((await again.getByKey(k))?.observed, '1.2.3.4:5');
  await again.close();
});
