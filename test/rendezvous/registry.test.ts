// Register/resolve and the other methods over real UDP and TCP sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PilotError } from '../../src/util/errors.ts';
import { loadGso } from '../../src/util/udp-gso.ts';
import { startServer, tcpPeer, udpPeer } from './helpers.ts';

const code = (c: string) => (e: PilotError) => {
  assert.equal(e.code, c, e.message);
  return true;
};

test('register + resolve over UDP and TCP; hello pins the key', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await tcpPeer(s.port);
  t.after(() => a.close());
  t.after(() => b.close());

  const hello = await a.client.hello();
  assert.deepEqual(hello.serverKey, s.publicKey);
  assert.equal(hello.observed, `127.0.0.1:${a.localPort}`);
  // With the addon its UDP socket sends with DF and never fragments, and says so: daemons may then
  // probe relayed paths for bigger packets (test/nat/path-mtu.test.ts has it in the NAT lab).
  assert.equal(hello.relayDf, loadGso() !== undefined ? true : undefined);
  assert.deepEqual(a.client.serverKey, s.publicKey);

  const ra = await a.client.register({ email: 'a@example.com', hostname: 'Alpha', lanEndpoints: ['10.1.2.3:4000'], public: true });
  assert.equal(ra.address, '0:0000.0000.0001');
  assert.equal(ra.hostname, 'alpha');
  assert.equal(ra.observed, `127.0.0.1:${a.localPort}`);

  // b never called hello: the first signed call learns the key first.
  const rb = await b.client.register({ email: 'b@example.com', hostname: 'bravo', public: true });
  assert.equal(rb.address, '0:0000.0000.0002');
  assert.equal(rb.observed, `127.0.0.1:${b.localPort}`);

  for (const q of [{ hostname: 'alpha' }, { hostname: 'ALPHA' }, { address: ra.address }, { publicKey: a.identity.publicKey.toString('base64') }]) {
    const r = await b.client.resolve(q);
    assert.equal(r.address, ra.address);
    assert.equal(r.publicKey, a.identity.publicKey.toString('base64'));
    assert.equal(r.hostname, 'alpha');
    assert.equal(r.public, true);
    assert.equal(r.online, true);
    assert.deepEqual(r.endpoints, [`127.0.0.1:${a.localPort}`, '10.1.2.3:4000']);
    assert.ok(Date.now() - r.lastSeen < 5000);
  }
  const rbv = await a.client.resolve({ hostname: 'bravo' });
  // b talks over TCP: its TCP source is no UDP endpoint, so nothing to probe is advertised.
  assert.deepEqual(rbv.endpoints, []);

  await assert.rejects(a.client.resolve({ hostname: 'nobody' }), code('NOT_FOUND'));
  await assert.rejects(a.client.resolve({ address: '0:0000.0000.0063' }), code('NOT_FOUND'));
  await assert.rejects(a.client.resolve({ address: 'garbage' }), code('BAD_ADDRESS'));
  await assert.rejects(a.client.resolve({}), code('BAD_REQUEST'));
});

test('same key gets the same address back (also after deregister)', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  t.after(() => a.close());
  const first = await a.client.register({ email: 'a@example.com' });
  const again = await a.client.register({ email: 'a@example.com' });
  assert.equal(again.address, first.address);
  // The same identity from another socket and transport.
  const a2 = await tcpPeer(s.port, { identity: a.identity });
  t.after(() => a2.close());
  assert.equal((await a2.client.register({ email: 'a@example.com' })).address, first.address);
  await a2.client.deregister();
  await assert.rejects(a2.client.heartbeat({}), code('NOT_REGISTERED'));
  assert.equal((await a.client.register({ email: 'a@example.com' })).address, first.address);
});

test('hostname validation, uniqueness, set/clear, visibility', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  t.after(() => a.close());
  t.after(() => b.close());
  await a.client.register({ email: 'a@example.com', hostname: 'shared' });
  await assert.rejects(b.client.register({ email: 'b@example.com', hostname: 'Shared' }), code('HOSTNAME_TAKEN'));
  await b.client.register({ email: 'b@example.com' });
  await assert.rejects(b.client.setHostname('shared'), code('HOSTNAME_TAKEN'));
  for (const bad of ['-x', 'x-', 'has space', 'dot.ted', 'x'.repeat(64), '42', '0x2a', 'ünï']) {
    await assert.rejects(b.client.setHostname(bad), code('BAD_ARGUMENT'), bad);
  }
  await assert.rejects(b.client.register({ email: 'b@example.com', hostname: 'bad_name' }), code('BAD_ARGUMENT'));
  await assert.rejects(b.client.register({ email: 'not-an-email' }), code('BAD_REQUEST'));
  assert.equal((await b.client.setHostname('x'.repeat(63))).hostname, 'x'.repeat(63));
  assert.equal((await a.client.clearHostname()).hostname, null);
  await assert.rejects(b.client.resolve({ hostname: 'shared' }), code('NOT_FOUND'));
  assert.equal((await b.client.setHostname('Shared')).hostname, 'shared');
  await b.client.setVisibility(true);
  assert.equal((await a.client.resolve({ hostname: 'shared' })).publicKey, b.identity.publicKey.toString('base64'));
  assert.equal((await b.client.setVisibility(true)).public, true);
  assert.equal((await a.client.resolve({ hostname: 'shared' })).public, true);
  await b.client.setVisibility(false);
  // Private again: untrusted callers no longer find it by name (see trust.test.ts).
  await assert.rejects(a.client.resolve({ hostname: 'shared' }), code('NOT_FOUND'));
  assert.equal((await b.client.resolve({ hostname: 'shared' })).public, false, 'a node always sees itself');
});

test('calls from an unregistered key get NOT_REGISTERED', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  t.after(() => a.close());
  await assert.rejects(a.client.heartbeat({}), code('NOT_REGISTERED'));
  await assert.rejects(a.client.setHostname('abc'), code('NOT_REGISTERED'));
  await assert.rejects(a.client.setVisibility(true), code('NOT_REGISTERED'));
  await assert.rejects(a.client.resolve({ hostname: 'abc' }), code('NOT_REGISTERED'));
  await assert.rejects(a.client.deregister(), code('NOT_REGISTERED'));
});

test('heartbeat updates the observed endpoint (NAT rebinding) and LAN endpoints', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  t.after(() => b.close());
  await a.client.register({ email: 'a@example.com', hostname: 'mover', lanEndpoints: ['10.0.0.1:1'], public: true });
  await b.client.register({ email: 'b@example.com' });
  // Same identity, new socket = new source port, as after a NAT rebinding.
  const moved = await udpPeer(s.port, { identity: a.identity });
  t.after(() => moved.close());
  await a.close();
  const hb = await moved.client.heartbeat({ lanEndpoints: ['10.0.0.2:2', '[fd00::1]:3'] });
  assert.equal(hb.observed, `127.0.0.1:${moved.localPort}`);
  const r = await b.client.resolve({ hostname: 'mover' });
  assert.deepEqual(r.endpoints, [`127.0.0.1:${moved.localPort}`, '10.0.0.2:2', '[fd00::1]:3']);
  assert.equal(r.online, true);
});

test('a worst-case resolve answer still fits one packet', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  t.after(() => a.close());
  const lan = Array.from({ length: 8 }, (_, i) => `[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff${i}]:65535`);
  await a.client.register({ email: 'a@example.com', hostname: 'x'.repeat(63), lanEndpoints: lan });
  const r = await a.client.resolve({ hostname: 'x'.repeat(63) });
  assert.equal(r.endpoints.length, 9);
});

test('server pushes are delivered verified', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  t.after(() => a.close());
  const r = await a.client.register({ email: 'a@example.com' });
  const got = new Promise((resolve) => a.client.once('push', resolve));
  assert.equal(s.push(r.address, 'punch', { from: '0:0000.0000.0009' }), true);
  assert.deepEqual(await got, { event: 'punch', data: { from: '0:0000.0000.0009' } });
  assert.equal(s.push('0:0000.0000.0063', 'punch', {}), false);
});

test('many nodes registering at once get distinct addresses', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const peers = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? udpPeer(s.port) : tcpPeer(s.port))));
  t.after(() => Promise.all(peers.map((p) => p.close())));
  const results = await Promise.all(peers.map((p, i) => p.client.register({ email: `n${i}@example.com`, hostname: `node-${i}` })));
  assert.equal(new Set(results.map((r) => r.address)).size, 40);
  const again = await Promise.all(peers.map((p, i) => p.client.register({ email: `n${i}@example.com` })));
  assert.deepEqual(
    again.map((r) => r.address),
    results.map((r) => r.address),
  );
});
