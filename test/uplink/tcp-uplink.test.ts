// TcpUplink against a real in-process rendezvous: registry and relay over
// framed TCP and over WebSocket, next to plain UDP nodes; reconnects when the
// server drops the connection or restarts; bounded send backlog.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { WebSocketServer } from 'ws';
import { formatAddress, readAddress } from '../../src/wire/address.ts';
import { PilotError } from '../../src/util/errors.ts';
import { startRendezvous } from '../../src/rendezvous/server.ts';
import { TcpUplink } from '../../src/uplink/tcp-uplink.ts';
import { sleep, startServer, udpPeer } from '../rendezvous/helpers.ts';
import { innerPacket, makeTrust, once, relaySend, uplinkPeer } from './helpers.ts';

for (const mode of ['tcp', 'websocket'] as const) {
  test(`${mode}: register, hello and resolve through a TcpUplink`, async (t) => {
    const s = await startServer();
    t.after(() => s.close());
    const a = await uplinkPeer(s.port, mode);
    const b = await uplinkPeer(s.port, mode);
    t.after(() => (a.close(), b.close()));
    assert.equal(a.uplink.kind, mode);
    const hello = await a.client.hello();
    assert.deepEqual(hello.serverKey, s.publicKey);
    assert.match(hello.observed, /^127\.0\.0\.1:\d+$/, 'the beacon reports the TCP source');
    const ra = await a.client.register({ email: 'a@example.com', hostname: `a-${mode}` });
    const rb = await b.client.register({ email: 'b@example.com', public: true });
    assert.notEqual(ra.address, rb.address);
    const r = await a.client.resolve({ address: rb.address });
    assert.equal(r.online, true);
    assert.deepEqual(r.endpoints, [], 'a node heard over TCP has no UDP endpoint to offer');
    await makeTrust(a, ra.address, b, rb.address);
    assert.equal((await b.client.resolve({ hostname: `a-${mode}` })).address, ra.address);
    assert.equal(s.stats().websockets, mode === 'websocket' ? 2 : 0);
    assert.ok(a.uplink.counters.packetsIn >= 4 && a.uplink.counters.packetsOut >= 4);
  });
}

test('relay: WebSocket <-> UDP and TCP <-> WebSocket, both ways', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const w = await uplinkPeer(s.port, 'websocket');
  const c = await uplinkPeer(s.port, 'tcp');
  const u = await udpPeer(s.port);
  t.after(() => (w.close(), c.close(), u.close()));
  const rw = await w.client.register({ email: 'w@example.com' });
  const rc = await c.client.register({ email: 'c@example.com' });
  const ru = await u.client.register({ email: 'u@example.com' });
  await makeTrust(w, rw.address, u, ru.address);
  await makeTrust(c, rc.address, w, rw.address);

  // WebSocket -> UDP
  const p1 = innerPacket(1200, 1);
  assert.equal(w.uplink.send(relaySend(ru.address, p1)), true);
  const got1 = await u.nextPacket(0x21);
  assert.equal(formatAddress(readAddress(got1, 1)), rw.address, 'source stamped by the relay');
  assert.deepEqual(got1.subarray(7), p1);
  // UDP -> WebSocket
  const p2 = innerPacket(900, 2, 0x10);
  u.sendRaw(relaySend(rw.address, p2));
  const got2 = await w.nextPacket(0x21);
  assert.equal(formatAddress(readAddress(got2, 1)), ru.address);
  assert.deepEqual(got2.subarray(7), p2);
  // TCP <-> WebSocket
  c.uplink.send(relaySend(rw.address, innerPacket(300, 3)));
  assert.equal(formatAddress(readAddress(await w.nextPacket(0x21), 1)), rc.address);
  w.uplink.send(relaySend(rc.address, innerPacket(300, 4, 0x11)));
  assert.equal(formatAddress(readAddress(await c.nextPacket(0x21), 1)), rw.address);
  // Untrusted pair (TCP -> UDP): refused like over UDP.
  c.uplink.send(relaySend(ru.address, innerPacket(100)));
  await sleep(150);
  assert.equal(u.received.filter((p) => p[0] === 0x21).length, 0);
  const relay = s.stats().relay;
  assert.equal(relay.forwarded, 4);
  assert.equal(relay.droppedNotTrusted, 1);

  // Many packets in a row keep their boundaries and order over both TCP framings.
  for (let i = 0; i < 200; i++) w.uplink.send(relaySend(rc.address, innerPacket(1200, i & 0xff)));
  for (let i = 0; i < 200; i++) {
    const p = await c.nextPacket(0x21);
    assert.equal(p.length, 1207);
    assert.equal(p[8], i & 0xff, `packet ${i} in order`);
  }
});

for (const mode of ['tcp', 'websocket'] as const) {
  test(`${mode}: the server drops the idle connection -> the uplink reconnects and the node is back online`, async (t) => {
    const s = await startServer({ tcpIdleMs: 400 });
    t.after(() => s.close());
    const a = await uplinkPeer(s.port, mode, { keepaliveMs: 60_000 });
    const u = await udpPeer(s.port);
    t.after(() => (a.close(), u.close()));
    const ra = await a.client.register({ email: 'a@example.com', public: true });
    await u.client.register({ email: 'u@example.com' });
    // What the daemon does on 'up': heartbeat so the rendezvous maps us to the new connection.
    const ups: number[] = [];
    a.uplink.on('up', () => {
      ups.push(Date.now());
      a.client.heartbeat().catch(() => {});
    });
    const [reason] = await once<[string]>(a.uplink, 'down', 3000);
    assert.equal(typeof reason, 'string');
    assert.equal(a.uplink.isUp, false);
    assert.equal(a.uplink.send(Buffer.from([0x01])), false, 'send while down drops, never buffers');
    await once(a.uplink, 'up', 3000);
    await sleep(100); // the heartbeat answer
    assert.equal(a.uplink.counters.connects, 2);
    // The node is reachable over its new connection (before it idles out again).
    u.sendRaw(relaySend(ra.address, innerPacket(200)));
    await a.nextPacket(0x21, 1000);
    assert.equal((await u.client.resolve({ address: ra.address })).online, true);
  });
}

test('rendezvous restarts on the same port: both uplinks come back with backoff, re-register, relay again', async (t) => {
  const s1 = await startServer();
  const { port, dataDir } = s1;
  const w = await uplinkPeer(port, 'websocket', { backoff: { minMs: 100, maxMs: 400 } });
  const c = await uplinkPeer(port, 'tcp', { backoff: { minMs: 100, maxMs: 400 } });
  t.after(() => (w.close(), c.close()));
  const rw = await w.client.register({ email: 'w@example.com' });
  const rc = await c.client.register({ email: 'c@example.com' });
  await makeTrust(w, rw.address, c, rc.address);
  for (const p of [w, c]) p.uplink.on('up', () => void p.client.heartbeat().catch(() => {}));

  const downs = Promise.all([once(w.uplink, 'down'), once(c.uplink, 'down')]);
  await s1.close();
  await downs;
  await sleep(1200); // several refused attempts, delays growing to the cap
  assert.ok(w.uplink.counters.failedConnects >= 2, `ws retried ${w.uplink.counters.failedConnects} times`);
  assert.ok(c.uplink.counters.failedConnects >= 2, `tcp retried ${c.uplink.counters.failedConnects} times`);
  assert.ok(c.uplink.counters.failedConnects <= 12, 'backoff, not a busy loop');

  const s2 = await startRendezvous({ host: '127.0.0.1', port, dataDir });
  t.after(() => s2.close());
  await Promise.all([once(w.uplink, 'up', 3000), once(c.uplink, 'up', 3000)]);
  await sleep(200); // heartbeats
  assert.equal(s2.stats().online, 2);
  w.uplink.send(relaySend(rc.address, innerPacket(500, 7)));
  const got = await c.nextPacket(0x21);
  assert.equal(formatAddress(readAddress(got, 1)), rw.address);
  c.uplink.send(relaySend(rw.address, innerPacket(500, 8)));
  await w.nextPacket(0x21);
});

test('reconnect() drops the connection at once and opens a new one', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await uplinkPeer(s.port, 'websocket');
  t.after(() => a.close());
  const down = once<[string]>(a.uplink, 'down');
  a.uplink.reconnect('heartbeats unanswered');
  assert.equal((await down)[0], 'heartbeats unanswered');
  await once(a.uplink, 'up');
  await a.client.register({ email: 'a@example.com' });
  assert.equal(a.uplink.counters.connects, 2);
});

test('connect() fails with UNREACHABLE: nothing listening, wrong WebSocket path, timeout', async (t) => {
  // A port with nothing on it.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const deadPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  for (const mode of ['tcp', 'websocket'] as const) {
    const u = new TcpUplink({ host: '127.0.0.1', port: deadPort, mode });
    await assert.rejects(u.connect(), (e: unknown) => e instanceof PilotError && e.code === 'UNREACHABLE' && /ECONNREFUSED/.test(e.message) && !!e.hint);
    assert.equal(u.isUp, false);
    u.close();
  }
  const s = await startServer();
  t.after(() => s.close());
  const wrong = new TcpUplink({ host: '127.0.0.1', port: s.port, mode: 'websocket', path: '/nope' });
  await assert.rejects(wrong.connect(), (e: unknown) => e instanceof PilotError && e.code === 'UNREACHABLE' && /HTTP 404/.test(e.message));
  wrong.close();
  // A server that accepts TCP but never answers the upgrade.
  const mute = net.createServer((sock) => sock.on('error', () => {}));
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
  t.after(() => mute.close());
  const slow = new TcpUplink({ host: '127.0.0.1', port: (mute.address() as net.AddressInfo).port, mode: 'websocket', connectTimeoutMs: 300 });
  const t0 = Date.now();
  await assert.rejects(slow.connect(), (e: unknown) => e instanceof PilotError && e.code === 'UNREACHABLE');
  assert.ok(Date.now() - t0 < 2000);
  slow.close();
});

test('send(): false for oversized or empty packets; a peer that stops reading caps the backlog', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await uplinkPeer(s.port, 'tcp');
  t.after(() => a.close());
  assert.equal(a.uplink.send(Buffer.alloc(4097, 1)), false, 'bigger than a frame: the server would hang up');
  assert.equal(a.uplink.send(Buffer.alloc(0)), false);
  assert.equal(a.uplink.counters.dropped, 2);
  await a.client.register({ email: 'a@example.com' }); // still fine

  // Servers that accept (and upgrade) but never read.
  const stalled = net.createServer((sock) => {
    sock.pause();
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', () => r()));
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wss.on('connection', (_ws, req) => req.socket.pause());
  await once(wss, 'listening');
  t.after(() => (stalled.close(), wss.close()));
  for (const [mode, port] of [
    ['tcp', (stalled.address() as net.AddressInfo).port],
    ['websocket', (wss.address() as net.AddressInfo).port],
  ] as const) {
    const u = new TcpUplink({ host: '127.0.0.1', port, mode, path: '/', maxBacklog: 64 * 1024 });
    await u.connect();
    const pkt = Buffer.alloc(1200, 0x20);
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      if (u.send(pkt)) accepted++;
      if (i % 500 === 0) await sleep(5); // let the kernel buffers fill
    }
    assert.ok(u.counters.dropped > 10_000, `${mode}: ${u.counters.dropped} dropped`);
    assert.ok(accepted * 1200 < 16 * 1024 * 1024, `${mode}: ${accepted} accepted, memory stays bounded`);
    u.close();
  }
});
