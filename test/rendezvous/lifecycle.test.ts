// Node lifecycle at the rendezvous (issue 18, src/rendezvous/lifecycle.ts), over the real
// protocol: an ephemeral node's deregister removes it (address, hostname, trust pairs) and
// its peers hear trust_revoked; `offline` hides presence at once; the sweep removes a silent
// ephemeral node but keeps a live one whose stored last_seen lags; and the same across two
// instances sharing PostgreSQL.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Push } from '../../src/registry/protocol.ts';
import { PilotError } from '../../src/util/errors.ts';
import { usePostgresForFile } from '../helpers/postgres.ts';
import { makeTrust, sleep, startServer, udpPeer, type Peer } from './helpers.ts';

const { skip, database } = usePostgresForFile({ before, after });
const code = (c: string) => (e: unknown) => e instanceof PilotError && e.code === c;

async function waitPush(got: Push[], event: string, ms = 3000): Promise<Record<string, unknown>> {
  const end = Date.now() + ms;
  for (;;) {
    const i = got.findIndex((x) => x.event === event);
    if (i >= 0) return got.splice(i, 1)[0]!.data as Record<string, unknown>;
    if (Date.now() > end) throw new Error(`no ${event} push within ${ms} ms`);
    await sleep(20);
  }
}

test('an ephemeral node that deregisters is removed: NOT_FOUND, hostname free, trust pair gone (peer told), id not reused', async (t) => {
  const s = await startServer();
  const peers: Peer[] = [];
  t.after(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await s.close();
  });
  const peer = async () => {
    const p = await udpPeer(s.port);
    peers.push(p);
    return p;
  };
  const e = await peer();
  const b = await peer();
  const ea = (await e.client.register({ email: 'e@example.com', hostname: 'worker-7', ephemeral: true })).address;
  const ba = (await b.client.register({ email: 'b@example.com' })).address;
  await makeTrust(e, ea, b, ba);
  const got: Push[] = [];
  b.client.on('push', (x: Push) => got.push(x));
  assert.deepEqual(await e.client.deregister(), { removed: true });
  assert.deepEqual(await waitPush(got, 'trust_revoked'), { peer: ea });
  await assert.rejects(b.client.resolve({ address: ea }), code('NOT_FOUND'));
  assert.deepEqual((await b.client.trustList()).trusted, []);
  const n = await peer();
  const r = await n.client.register({ email: 'n@example.com', hostname: 'worker-7' });
  assert.equal(r.hostname, 'worker-7', 'the hostname is free for another key at once');
  assert.notEqual(r.address, ea, 'the id is not handed out again');
  // The same key registering again is a new node (new address), not ephemeral unless it asks.
  const again = await e.client.register({ email: 'e@example.com' });
  assert.notEqual(again.address, ea);
  // A permanent node's deregister still only hides it (and says so).
  assert.deepEqual(await b.client.deregister(), { removed: false });
});

test('offline: a clean stop shows the node offline at once; the next heartbeat brings it back', async (t) => {
  const s = await startServer();
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  t.after(async () => {
    await a.close();
    await b.close();
    await s.close();
  });
  const aa = (await a.client.register({ email: 'a@example.com', public: true })).address;
  await b.client.register({ email: 'b@example.com' });
  assert.equal((await b.client.resolve({ address: aa })).online, true);
  await a.client.offline();
  const r = await b.client.resolve({ address: aa });
  assert.equal(r.online, false, 'offline at once, not after 60 s');
  assert.equal(r.address, aa, 'the record stays');
  await a.client.heartbeat();
  assert.equal((await b.client.resolve({ address: aa })).online, true);
});

test('the sweep removes a silent ephemeral node after --ephemeral-timeout, and keeps a live one', async (t) => {
  const s = await startServer({ registryLimits: { ephemeralTimeoutMs: 1500 } });
  const silent = await udpPeer(s.port);
  const live = await udpPeer(s.port);
  const obs = await udpPeer(s.port);
  t.after(async () => {
    clearInterval(beat);
    await Promise.all([silent.close(), live.close(), obs.close()]);
    await s.close();
  });
  const sa = (await silent.client.register({ email: 's@example.com', hostname: 'silent', public: true, ephemeral: true })).address;
  const la = (await live.client.register({ email: 'l@example.com', public: true, ephemeral: true })).address;
  await obs.client.register({ email: 'o@example.com' });
  // Heartbeats from the same link are kept in memory only (the stored last_seen lags).
  const beat = setInterval(() => void live.client.heartbeat().catch(() => {}), 300);
  const t0 = Date.now();
  for (;;) {
    const r = await obs.client.resolve({ address: sa }).catch((e: unknown) => e as PilotError);
    if (r instanceof PilotError) {
      assert.equal(r.code, 'NOT_FOUND');
      break;
    }
    assert.ok(Date.now() - t0 < 15_000, 'silent ephemeral node not removed within 15 s');
    await sleep(250);
  }
  const took = Date.now() - t0;
  assert.ok(took >= 1400, `removed after ${took} ms, not before its timeout`);
  assert.equal((await obs.client.resolve({ address: la })).online, true, 'the live ephemeral node stays');
  const taker = await udpPeer(s.port);
  t.after(() => taker.close());
  assert.equal((await taker.client.register({ email: 't@example.com', hostname: 'silent' })).hostname, 'silent');
});

test('two instances on PostgreSQL: an ephemeral node deregistered at one is gone at the other; offline crosses too', { skip, timeout: 60_000 }, async (t) => {
  const url = database('lifecycle');
  const s1 = await startServer({ storeUrl: url });
  const s2 = await startServer({ storeUrl: url });
  const e = await udpPeer(s1.port, { timeoutMs: 1000 });
  const p = await udpPeer(s1.port, { timeoutMs: 1000 });
  const o = await udpPeer(s2.port, { timeoutMs: 1000 });
  t.after(async () => {
    await Promise.all([e.close(), p.close(), o.close()]);
    await s1.close();
    await s2.close();
  });
  const ea = (await e.client.register({ email: 'e@example.com', hostname: 'pg-worker', public: true, ephemeral: true })).address;
  const pa = (await p.client.register({ email: 'p@example.com', public: true })).address;
  await o.client.register({ email: 'o@example.com' });
  assert.equal((await o.client.resolve({ address: pa })).online, true, 'online at the other instance');
  await p.client.offline();
  assert.equal((await o.client.resolve({ address: pa })).online, false, 'offline at the other instance at once');
  assert.deepEqual(await e.client.deregister(), { removed: true });
  await assert.rejects(o.client.resolve({ address: ea }), code('NOT_FOUND'));
  const n = await udpPeer(s2.port, { timeoutMs: 1000 });
  t.after(() => n.close());
  const r = await n.client.register({ email: 'n@example.com', hostname: 'pg-worker' });
  assert.equal(r.hostname, 'pg-worker');
  assert.notEqual(r.address, ea);
});
