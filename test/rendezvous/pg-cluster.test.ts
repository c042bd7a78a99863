// Two rendezvous servers in this process sharing one real PostgreSQL database
// (storeUrl): presence, pushes, relay and cache invalidation across instances,
// forged instance-to-instance packets, and what happens when an instance stops.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { formatAddress, makeAddress, parseAddress, readAddress } from '../../src/wire/address.ts';
import { decodeRelayForward, encodeRelayForward } from '../../src/rendezvous/relay-forward.ts';
import pgLib from 'pg';
import { startRendezvous } from '../../src/rendezvous/server.ts';
import { CLUSTER_MIGRATIONS, PgCluster } from '../../src/rendezvous/pg-cluster.ts';
import { PresenceWriter } from '../../src/rendezvous/pg-presence.ts';
import { migrate } from '../../src/rendezvous/store/postgres-connect.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { usePostgresForFile } from '../helpers/postgres.ts';
import type { Push } from '../../src/registry/protocol.ts';
import { relaySend, sleep, startServer, tmpDir, udpPeer, type Peer } from './helpers.ts';

const { skip, cluster, database } = usePostgresForFile({ before, after });

const dataPkt = (n: number) => Buffer.concat([Buffer.from([0x12]), crypto.randomBytes(n - 1)]);

/** Two rendezvous instances on a fresh database, closed when the test ends. */
async function twoInstances(t: { after(fn: () => unknown): void }) {
  const url = database('cluster');
  const s1 = await startServer({ storeUrl: url });
  const s2 = await startServer({ storeUrl: url });
  t.after(() => Promise.all([s1.close(), s2.close()]));
  return { url, s1, s2 };
}

function nextPush(p: Peer, event: string, ms = 3000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} push in ${ms} ms`)), ms);
    const on = (push: Push) => {
      if (push.event !== event) return;
      clearTimeout(t);
      p.client.off('push', on);
      resolve(push.data as Record<string, unknown>);
    };
    p.client.on('push', on);
  });
}

test('relay-forward tags: round trip; any changed byte, another secret or a short packet is refused', () => {
  const secret = crypto.randomBytes(32);
  const src = parseAddress('0:0000.0000.0007');
  const inner = relaySend('0:0000.0000.0009', dataPkt(100));
  const pkt = encodeRelayForward(secret, src, inner);
  const got = decodeRelayForward(secret, pkt);
  assert.equal(formatAddress(got!.src), '0:0000.0000.0007');
  assert.deepEqual(got!.relaySend, inner);
  for (let i = 1; i < pkt.length; i += 7) {
    const bad = Buffer.from(pkt);
    bad[i]! ^= 1;
    assert.equal(decodeRelayForward(secret, bad), undefined, `byte ${i} flipped`);
  }
  assert.equal(decodeRelayForward(crypto.randomBytes(32), pkt), undefined);
  assert.equal(decodeRelayForward(secret, pkt.subarray(0, 20)), undefined);
  assert.equal(decodeRelayForward(secret, Buffer.alloc(0)), undefined);
});

test('two instances, one database: resolve, pushes, relay, invalidation and forgeries across instances', { skip, timeout: 60_000 }, async (t) => {
  const { s1, s2 } = await twoInstances(t);
  const a = await udpPeer(s1.port);
  const b = await udpPeer(s2.port);
  const c = await udpPeer(s2.port);
  t.after(() => Promise.all([a.close(), b.close(), c.close()]));
  const ra = await a.client.register({ email: 'a@example.com', hostname: 'alpha' });
  const rb = await b.client.register({ email: 'b@example.com', hostname: 'beta', public: true });
  const rc = await c.client.register({ email: 'c@example.com', hostname: 'gamma' });
  assert.deepEqual(new Set([ra.address, rb.address, rc.address]).size, 3, 'one address space');
  await assert.rejects(c.client.setHostname('alpha'), (e: { code?: string }) => e.code === 'HOSTNAME_TAKEN', 'one hostname namespace');

  // b is online at s2 only; s1 answers from the shared presence.
  const found = await a.client.resolve({ hostname: 'beta' });
  assert.equal(found.address, rb.address);
  assert.equal(found.online, true);
  assert.deepEqual(found.endpoints, [`127.0.0.1:${b.localPort}`]);

  // Trust: a's request (at s1) is pushed to b by s2, b's approval (at s2) to a by s1.
  const reqPush = nextPush(b, 'trust_request');
  assert.equal((await a.client.trustRequest(rb.address, 'cross')).status, 'pending');
  assert.equal((await reqPush).from, ra.address);
  const okPush = nextPush(a, 'trust_approved');
  assert.equal((await b.client.trustApprove(ra.address)).status, 'trusted');
  assert.equal((await okPush).peer, rb.address);

  // Relay a (s1) -> b (s2) and back.
  const p1 = dataPkt(300);
  a.sendRaw(relaySend(rb.address, p1));
  const got = await b.nextPacket(0x21);
  assert.equal(formatAddress(readAddress(got, 1)), ra.address, 'source stamped as the authenticated sender');
  assert.deepEqual(got.subarray(7), p1);
  const p2 = dataPkt(50);
  b.sendRaw(relaySend(ra.address, p2));
  assert.deepEqual((await a.nextPacket(0x21)).subarray(7), p2);
  assert.ok(s1.stats().relay.toPeers >= 1 && s2.stats().relay.fromPeers >= 1);
  assert.ok(s2.stats().relay.toPeers >= 1 && s1.stats().relay.fromPeers >= 1);

  // c is private and untrusted: s1 refuses to forward a's packets to it.
  a.sendRaw(relaySend(rc.address, dataPkt(40)));
  await sleep(300);
  assert.equal(c.received.filter((x) => x[0] === 0x21).length, 0);
  assert.equal(s1.stats().relay.droppedNotTrusted, 1);

  // Forged instance-to-instance packets (wrong key) claiming to come from a: dropped and counted.
  const evil = dgram.createSocket('udp4');
  t.after(() => evil.close());
  const forged = encodeRelayForward(crypto.randomBytes(32), parseAddress(ra.address), relaySend(rc.address, dataPkt(40)));
  await new Promise<void>((r) => evil.send(forged, s2.port, '127.0.0.1', () => r()));
  await sleep(300);
  assert.equal(s2.stats().relay.droppedForged, 1);
  assert.equal(c.received.filter((x) => x[0] === 0x21).length, 0);

  // Revoked and made private at s2: s1 drops its cached "allowed" (and the reply
  // permission it recorded) at once through NOTIFY, not after its 10 s cache.
  const revoked = nextPush(a, 'trust_revoked');
  await b.client.trustRevoke(ra.address);
  await revoked;
  await sleep(200);
  // Still public: allowed, and s1 caches that decision.
  a.sendRaw(relaySend(rb.address, dataPkt(40)));
  await b.nextPacket(0x21);
  await b.client.setVisibility(false);
  await sleep(300);
  const dropped = s1.stats().relay.droppedNotTrusted;
  const before = b.received.filter((x) => x[0] === 0x21).length;
  a.sendRaw(relaySend(rb.address, dataPkt(40)));
  await sleep(300);
  assert.equal(s1.stats().relay.droppedNotTrusted, dropped + 1, 'node change at s2 invalidated s1');
  assert.equal(b.received.filter((x) => x[0] === 0x21).length, before);
});

test('an instance that stops takes its nodes offline for the others; concurrent registrations on both stay unique', { skip, timeout: 60_000 }, async (t) => {
  const { s1, s2 } = await twoInstances(t);
  const peers = await Promise.all(Array.from({ length: 16 }, (_, i) => udpPeer(i % 2 ? s2.port : s1.port)));
  t.after(() => Promise.all(peers.map((p) => p.close())));
  const regs = await Promise.all(peers.map((p, i) => p.client.register({ email: `n${i}@example.com`, public: true })));
  assert.equal(new Set(regs.map((r) => r.address)).size, 16);
  const [onS1, onS2] = [peers[0]!, regs[1]!];
  assert.equal((await onS1.client.resolve({ address: onS2.address })).online, true);
  await s2.close();
  assert.equal((await onS1.client.resolve({ address: onS2.address })).online, false, 'presence left with the instance');
});

test('storeUrl: wildcard listen without advertise, and an unreachable database, fail with codes and hints', { skip }, async () => {
  const dir = tmpDir();
  await assert.rejects(
    startRendezvous({ host: '0.0.0.0', port: 0, dataDir: dir, storeUrl: cluster().url }),
    (e: { code?: string; hint?: string }) => e.code === 'BAD_ARGUMENT' && /--advertise/.test(e.hint ?? ''),
  );
  await assert.rejects(
    startRendezvous({ host: '127.0.0.1', port: 0, dataDir: dir, storeUrl: 'postgres://x@/db?host=/nonexistent-pilot' }),
    (e: { code?: string; hint?: string }) => e.code === 'UNREACHABLE' && !!e.hint,
  );
});

test('a LISTEN connection killed by the database is re-opened: pushes cross instances again', { skip, timeout: 60_000 }, async (t) => {
  const { url, s1, s2 } = await twoInstances(t);
  const a = await udpPeer(s1.port);
  const b = await udpPeer(s2.port);
  t.after(() => Promise.all([a.close(), b.close()]));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  const admin = new pgLib.Pool({ connectionString: url, max: 1 });
  t.after(() => admin.end());
  const killed = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()");
  assert.equal(killed.rowCount, 2, 'both instances had a LISTEN connection');
  await sleep(2_500);
  const push = nextPush(b, 'trust_request');
  await a.client.trustRequest(rb.address);
  assert.equal((await push).from, ra.address);
});

test('PostgreSQL restarts: requests fail with a code meanwhile, nothing crashes, both instances serve and push again', { skip, timeout: 90_000 }, async (t) => {
  const { s1, s2 } = await twoInstances(t);
  const a = await udpPeer(s1.port);
  const b = await udpPeer(s2.port);
  t.after(() => Promise.all([a.close(), b.close()]));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com', public: true });
  cluster().down();
  let upAgain = false;
  t.after(() => {
    if (!upAgain) cluster().up();
  });
  const t0 = Date.now();
  const err = await a.client.trustRequest(rb.address, 'while down').then(
    () => undefined,
    (e: { code?: string; message?: string }) => e,
  );
  console.log(`# while the database is down: ${err?.code} (${err?.message}) after ${Date.now() - t0} ms`);
  assert.equal(err?.code, 'UNREACHABLE', 'a coded error while the database is down');
  cluster().up();
  upAgain = true;
  // Both instances come back by themselves: the request pool reconnects and the LISTEN connection is re-opened.
  let pushed: Record<string, unknown> | undefined;
  const deadline = Date.now() + 30_000;
  while (!pushed && Date.now() < deadline) {
    const push = nextPush(b, 'trust_request', 2_000).catch(() => undefined);
    await a.client.trustRequest(rb.address, 'after restart').catch(() => undefined);
    pushed = await push;
  }
  console.log(`# pushes cross instances again ${Date.now() - t0} ms after the database went down`);
  assert.equal(pushed?.from, ra.address);
  assert.equal((await a.client.resolve({ address: rb.address })).online, true, 'presence back');
});

test('a burst of node and pair changes reaches the other instance whole, in a few NOTIFY statements', { skip, timeout: 30_000 }, async (t) => {
  const url = database('burst');
  const pools = [new pgLib.Pool({ connectionString: url, max: 2 }), new pgLib.Pool({ connectionString: url, max: 2 })];
  const log = silentLogger();
  const seen = { nodes: new Set<string>(), pairs: new Set<string>() };
  const noop = () => {};
  const a = new PgCluster(pools[0]!, url, log);
  const b = new PgCluster(pools[1]!, url, log);
  t.after(async () => {
    await a.close();
    await b.close();
    await Promise.all(pools.map((p) => p.end()));
  });
  await a.start({ advertise: { host: '127.0.0.1', port: 1 }, sendUdp: noop, events: { push: noop, pairChanged: noop, nodeChanged: noop } });
  await b.start({
    advertise: { host: '127.0.0.1', port: 2 },
    sendUdp: noop,
    events: {
      push: noop,
      pairChanged: (x, y) => seen.pairs.add(`${formatAddress(x)}-${formatAddress(y)}`),
      nodeChanged: (x) => seen.nodes.add(formatAddress(x)),
    },
  });
  let notifies = 0;
  const query = pools[0]!.query.bind(pools[0]!) as (...args: unknown[]) => unknown;
  (pools[0] as unknown as { query: unknown }).query = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('pg_notify')) notifies++;
    return query(...args);
  };
  for (let i = 1; i <= 250; i++) {
    a.broadcastNodeChanged(makeAddress(0, i));
    a.broadcastNodeChanged(makeAddress(0, i)); // twice: once is enough
    if (i % 5 === 0) a.broadcastPairChanged(makeAddress(0, i), makeAddress(0, i + 1));
  }
  const end = Date.now() + 10_000;
  while ((seen.nodes.size < 250 || seen.pairs.size < 50) && Date.now() < end) await sleep(20);
  assert.equal(seen.nodes.size, 250, 'every node change arrived');
  assert.equal(seen.pairs.size, 50, 'every pair change arrived');
  assert.ok(notifies <= 5, `${notifies} NOTIFY statements for 300 changes`);
});

test('presence writes made while one is on its way go out together: 2 statements for 153 writes, the last write per address wins', { skip }, async (t) => {
  const pool = new pgLib.Pool({ connectionString: database('presence'), max: 4 });
  t.after(() => pool.end());
  await migrate(pool, CLUSTER_MIGRATIONS);
  const me = new PresenceWriter(pool, 'me');
  const other = new PresenceWriter(pool, 'other');
  await other.put({ address: 999, observed: '9.9.9.9:9', lanEndpoints: '[]', lastSeen: 1 });
  const writes: Promise<void>[] = [];
  for (let a = 1; a <= 100; a++) writes.push(me.put({ address: a, observed: `1.2.3.4:${a}`, lanEndpoints: '["10.0.0.1:1"]', lastSeen: a }));
  for (let a = 1; a <= 50; a++) writes.push(me.drop(a));
  writes.push(me.put({ address: 7, observed: null, lanEndpoints: '[]', lastSeen: 7000 }));
  writes.push(me.drop(999)); // another instance's row: not ours to delete
  writes.push(me.drop(12345)); // nothing there
  await Promise.all(writes);
  // The first write leaves at once; everything that came while it was on its way, in one more.
  assert.equal(me.statements, 2, `${me.statements} statements for ${writes.length} writes`);
  const rows = (
    await pool.query<{ address: string; instance: string; observed: string | null; last_seen: string }>(
      'SELECT address, instance, observed, last_seen FROM cluster_presence ORDER BY address',
    )
  ).rows.map((r) => [Number(r.address), r.instance, r.observed, Number(r.last_seen)]);
  // 1 went out alone and was dropped in the second; 2-50 were put and dropped in the same batch
  // (the drop won); 7 was put again after its drop; another instance's row stays.
  assert.deepEqual(rows, [
    [7, 'me', null, 7000],
    ...Array.from({ length: 50 }, (_, i) => [51 + i, 'me', `1.2.3.4:${51 + i}`, 51 + i]),
    [999, 'other', '9.9.9.9:9', 1],
  ]);
  // A failed statement rejects every write it carried, and the writer goes on.
  await pool.query('ALTER TABLE cluster_presence RENAME TO cluster_presence_away');
  await assert.rejects(me.put({ address: 5, observed: null, lanEndpoints: '[]', lastSeen: 5 }));
  await pool.query('ALTER TABLE cluster_presence_away RENAME TO cluster_presence');
  await me.put({ address: 5, observed: null, lanEndpoints: '[]', lastSeen: 5 });
  assert.equal((await pool.query('SELECT 1 FROM cluster_presence WHERE address = 5')).rowCount, 1);
});
