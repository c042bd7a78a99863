import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../src/registry/sqlite-store.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { makeAddress } from '../../src/wire/address.ts';
import { PilotError } from '../../src/util/errors.ts';

const key = () => generateIdentity().publicKey;

test('allocates node ids from 1 on network 0; same key -> same address', async () => {
  const s = new SqliteStore(':memory:');
  const k1 = key();
  const k2 = key();
  const a = await s.register({ publicKey: k1, email: 'a@x.io', now: 1 });
  const b = await s.register({ publicKey: k2, email: 'b@x.io', now: 2 });
  assert.deepEqual(a.address, makeAddress(0, 1));
  assert.deepEqual(b.address, makeAddress(0, 2));
  const again = await s.register({ publicKey: k1, email: 'new@x.io', now: 3 });
  assert.deepEqual(again.address, a.address);
  assert.equal(again.email, 'new@x.io');
  assert.equal(again.lastSeen, 3);
  await s.close();
});

test('hostname is unique and optional; register keeps it when omitted', async () => {
  const s = new SqliteStore(':memory:');
  const k1 = key();
  const k2 = key();
  await s.register({ publicKey: k1, email: 'a@x.io', hostname: 'alpha', now: 1 });
  await assert.rejects(s.register({ publicKey: k2, email: 'b@x.io', hostname: 'alpha', now: 1 }), (e: PilotError) => e.code === 'HOSTNAME_TAKEN');
  assert.equal(await s.getByKey(k2), undefined, 'failed register must not create the node');
  await s.register({ publicKey: k2, email: 'b@x.io', now: 1 });
  await assert.rejects(s.setHostname(k2, 'alpha'), (e: PilotError) => e.code === 'HOSTNAME_TAKEN');
  const r = await s.register({ publicKey: k1, email: 'a@x.io', now: 2 });
  assert.equal(r.hostname, 'alpha');
  assert.equal((await s.getByHostname('alpha'))?.publicKey.equals(k1), true);
  await s.setHostname(k1, null);
  assert.equal(await s.getByHostname('alpha'), undefined);
  assert.equal((await s.setHostname(k2, 'alpha')).hostname, 'alpha');
  await s.close();
});

test('touch, visibility, deregister keeps the address binding', async () => {
  const s = new SqliteStore(':memory:');
  const k = key();
  const rec = await s.register({ publicKey: k, email: 'a@x.io', hostname: 'h1', lanEndpoints: ['10.0.0.1:1'], now: 1 });
  await assert.rejects(s.touch(key(), { observed: '1.2.3.4:5', now: 2 }), (e: PilotError) => e.code === 'NOT_REGISTERED');
  const t = await s.touch(k, { observed: '1.2.3.4:5', now: 5 });
  assert.equal(t.observed, '1.2.3.4:5');
  assert.deepEqual(t.lanEndpoints, ['10.0.0.1:1']);
  assert.equal((await s.setVisibility(k, true)).public, true);
  await s.deregister(k);
  assert.equal((await s.getByKey(k))?.active, false);
  assert.equal(await s.getByHostname('h1'), undefined, 'deregister releases the hostname');
  await assert.rejects(s.touch(k, { observed: '1.2.3.4:5', now: 6 }), (e: PilotError) => e.code === 'NOT_REGISTERED');
  const back = await s.register({ publicKey: k, email: 'a@x.io', now: 7 });
  assert.deepEqual(back.address, rec.address);
  assert.equal(back.active, true);
  await s.close();
});

test('trust pairs and trust requests', async () => {
  const s = new SqliteStore(':memory:');
  const a = makeAddress(0, 5);
  const b = makeAddress(0, 3);
  await s.putTrustPair({ a, b, stmtA: 'from-5', sigA: Buffer.alloc(64, 1), stmtB: 'from-3', sigB: Buffer.alloc(64, 2), created: 10 });
  const p = await s.getTrustPair(b, a);
  assert.ok(p);
  assert.deepEqual(p.a, b, 'stored with the lower address first');
  assert.deepEqual(p.sigA, Buffer.alloc(64, 2), 'signatures follow their node');
  assert.equal(p.stmtA, 'from-3', 'statements follow their node');
  assert.equal(p.stmtB, 'from-5');
  assert.equal((await s.listTrustPairs(a)).length, 1);
  assert.equal(await s.deleteTrustPair(a, b), true);
  assert.equal(await s.getTrustPair(a, b), undefined);

  await s.putTrustRequest({ from: a, to: b, reason: 'hi', statement: '{"x":1}', sig: Buffer.alloc(64, 7), created: 11 });
  const r = await s.getTrustRequest(a, b);
  assert.equal(r?.reason, 'hi');
  assert.deepEqual(r?.sig, Buffer.alloc(64, 7));
  assert.equal((await s.listTrustRequestsTo(b)).length, 1);
  assert.equal((await s.listTrustRequestsTo(a)).length, 0);
  assert.equal((await s.listTrustRequestsFrom(a)).length, 1);
  assert.equal((await s.listTrustRequestsFrom(b)).length, 0);
  assert.equal(await s.deleteTrustRequest(a, b), true);
  assert.equal(await s.getTrustRequest(a, b), undefined);
  await s.close();
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
