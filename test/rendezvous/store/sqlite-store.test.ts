import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../../src/rendezvous/store/sqlite-store.ts';
import { generateIdentity } from '../../../src/registry/signing.ts';
import { makeAddress } from '../../../src/wire/address.ts';
import { storeContract } from './store-contract.ts';
import { rotationContract } from './rotation-contract.ts';

const key = () => generateIdentity().publicKey;

// The shared contract on file databases (two stores on one file = two processes).
storeContract('sqlite', {
  async fresh() {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-store-')), 'registry.db');
    return async () => new SqliteStore(file);
  },
});

test('trust columns are added to a database created by the first schema', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-store-'));
  const file = path.join(dir, 'registry.db');
  const { default: Database } = await import('better-sqlite3');
  const old = new Database(file);
  old.exec(`CREATE TABLE trust_pairs (a INTEGER NOT NULL, b INTEGER NOT NULL, sig_a BLOB NOT NULL, sig_b BLOB NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (a, b));
    CREATE TABLE trust_requests (from_addr INTEGER NOT NULL, to_addr INTEGER NOT NULL, reason TEXT NOT NULL, statement TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (from_addr, to_addr));`);
  old.close();
  const s = new SqliteStore(file);
  const a = makeAddress(0, 1);
  const b = makeAddress(0, 2);
  await s.putTrustPair({ a, b, stmtA: 'x', sigA: Buffer.alloc(64), stmtB: 'y', sigB: Buffer.alloc(64), created: 1 });
  assert.equal((await s.getTrustPair(a, b))?.stmtB, 'y');
  await s.putTrustRequest({ from: a, to: b, reason: '', statement: 's', sig: Buffer.alloc(64, 1), created: 2 });
  assert.deepEqual((await s.getTrustRequest(a, b))?.sig, Buffer.alloc(64, 1));
  await s.close();
});

test('file store: WAL + synchronous FULL, 0600, data survives reopen', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-store-'));
  const file = path.join(dir, 'sub', 'registry.db');
  const k = key();
  const s1 = new SqliteStore(file);
  const rec = await s1.register({ publicKey: k, email: 'a@x.io', now: 1 });
  await s1.close();
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const s2 = new SqliteStore(file);
  assert.deepEqual((await s2.getByKey(k))?.address, rec.address);
  assert.deepEqual((await s2.register({ publicKey: key(), email: 'b@x.io', now: 2 })).address, makeAddress(0, 2));
  await s2.close();
});

// Key rotation (issue 18) on file databases (two stores on one file = two instances).
rotationContract('sqlite', {
  async fresh() {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-store-')), 'registry.db');
    return async () => new SqliteStore(file);
  },
});
