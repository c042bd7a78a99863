// Relay between registered nodes (UDP and TCP); everything else is dropped and counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { readAddress, formatAddress, makeAddress, writeAddress, type Address } from '../../src/wire/address.ts';
import { OnlineIndex } from '../../src/rendezvous/online-index.ts';
import { Relay } from '../../src/rendezvous/relay.ts';
import type { Link } from '../../src/rendezvous/link.ts';
import { relaySend, makeTrust, startServer, sleep, tcpPeer, udpPeer } from './helpers.ts';

const inner = (n = 40, type = 0x12) => Buffer.concat([Buffer.from([type]), Buffer.alloc(n - 1, 0xab)]);

test('relay forwards between registered UDP and TCP nodes', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  const c = await tcpPeer(s.port);
  t.after(() => a.close());
  t.after(() => b.close());
  t.after(() => c.close());
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  const rc = await c.client.register({ email: 'c@example.com' });
  await makeTrust(a, ra.address, b, rb.address);
  await makeTrust(c, rc.address, a, ra.address);

  const payload = inner(200);
  a.sendRaw(relaySend(rb.address, payload));
  const got = await b.nextPacket(0x21);
  assert.equal(formatAddress(readAddress(got, 1)), ra.address, 'source address stamped by the relay');
  assert.deepEqual(got.subarray(7), payload);

  // UDP -> TCP and TCP -> UDP.
  a.sendRaw(relaySend(rc.address, inner(50, 0x10)));
  const toC = await c.nextPacket(0x21);
  assert.equal(formatAddress(readAddress(toC, 1)), ra.address);
  c.sendRaw(relaySend(ra.address, inner(60, 0x11)));
  const toA = await a.nextPacket(0x21);
  assert.equal(formatAddress(readAddress(toA, 1)), rc.address);
  assert.equal(toA.length, 67);
  assert.equal(s.stats().relay.forwarded, 3);
});

test('relay drops unregistered senders, unknown/offline destinations and non-session packets', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  t.after(() => a.close());
  t.after(() => b.close());
  await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });

  // A socket that never registered, claiming nothing: dropped.
  const stranger = dgram.createSocket('udp4');
  t.after(() => stranger.close());
  stranger.send(relaySend(rb.address, inner()), s.port, '127.0.0.1');
  // A registered identity, but from a socket other than the one it registered from.
  const impostor = await udpPeer(s.port, { identity: a.identity });
  t.after(() => impostor.close());
  impostor.sendRaw(relaySend(rb.address, inner()));
  // Unknown destination.
  a.sendRaw(relaySend('0:0000.0000.0063', inner()));
  // Inner packets that are not session packets (e.g. a forged registry response).
  a.sendRaw(relaySend(rb.address, inner(40, 0x02)));
  a.sendRaw(Buffer.from([0x20, 0, 0]));
  await sleep(200);
  assert.equal(b.received.filter((p) => p[0] === 0x21).length, 0);
  const r = s.stats().relay;
  assert.equal(r.droppedUnknownSource, 2);
  assert.equal(r.droppedUnknownDestination, 1);
  assert.equal(r.droppedMalformed, 2);
  assert.equal(r.forwarded, 0);

  // Deregistered destination is gone.
  await b.client.deregister();
  a.sendRaw(relaySend(rb.address, inner()));
  await sleep(100);
  assert.equal(s.stats().relay.droppedUnknownDestination, 2);
});

test('relay source moves with the heartbeat; TCP close takes the node offline', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await tcpPeer(s.port);
  t.after(() => a.close());
  await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com', public: true });
  const moved = await udpPeer(s.port, { identity: a.identity });
  t.after(() => moved.close());
  await moved.client.heartbeat({});
  a.sendRaw(relaySend(rb.address, inner()));
  moved.sendRaw(relaySend(rb.address, inner()));
  await b.nextPacket(0x21);
  await sleep(100);
  assert.equal(s.stats().relay.droppedUnknownSource, 1, 'the old endpoint no longer speaks for the node');
  await b.close();
  await sleep(100);
  moved.sendRaw(relaySend(rb.address, inner()));
  await sleep(100);
  assert.equal(s.stats().relay.droppedUnknownDestination, 1);
  const r = await moved.client.resolve({ address: rb.address });
  assert.equal(r.online, false);
});

test('per-node relay rate limit', async (t) => {
  const s = await startServer({ relayRate: { perSec: 1, burst: 5000 } });
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  t.after(() => a.close());
  t.after(() => b.close());
  await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com', public: true });
  for (let i = 0; i < 20; i++) a.sendRaw(relaySend(rb.address, inner(993)));
  await sleep(200);
  const r = s.stats().relay;
  assert.equal(r.forwarded, 5);
  assert.equal(r.droppedRateLimited, 15);
});

test('relay only between trusted nodes, or to public nodes (and their replies)', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await tcpPeer(s.port);
  const pub = await udpPeer(s.port);
  const e = await udpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close(), pub.close(), e.close()]));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  const rp = await pub.client.register({ email: 'p@example.com', public: true });
  const re = await e.client.register({ email: 'e@example.com' });
  const relayed = (p: typeof a) => p.received.filter((x) => x[0] === 0x21).length;

  // Untrusted private nodes: refused both ways, and counted.
  a.sendRaw(relaySend(rb.address, inner()));
  b.sendRaw(relaySend(ra.address, inner()));
  await sleep(150);
  assert.equal(relayed(a) + relayed(b), 0);
  assert.equal(s.stats().relay.droppedNotTrusted, 2);

  // Trusted: forwarded both ways (the cached refusal is dropped when the pair is made).
  await makeTrust(a, ra.address, b, rb.address);
  a.sendRaw(relaySend(rb.address, inner()));
  await b.nextPacket(0x21);
  b.sendRaw(relaySend(ra.address, inner()));
  await a.nextPacket(0x21);

  // Revoked: refused again at once.
  await b.client.trustRevoke(ra.address);
  a.sendRaw(relaySend(rb.address, inner()));
  b.sendRaw(relaySend(ra.address, inner()));
  await sleep(150);
  assert.equal(relayed(a) + relayed(b), 0);
  assert.equal(s.stats().relay.droppedNotTrusted, 4);

  // A public node is reachable by anyone, and may answer whoever contacted it...
  a.sendRaw(relaySend(rp.address, inner(40, 0x10)));
  await pub.nextPacket(0x21);
  pub.sendRaw(relaySend(ra.address, inner(40, 0x11)));
  await a.nextPacket(0x21);
  // ...but cannot send to private nodes that never contacted it.
  pub.sendRaw(relaySend(re.address, inner(40, 0x10)));
  await sleep(150);
  assert.equal(relayed(e), 0);
  assert.equal(s.stats().relay.droppedNotTrusted, 5);

  // Going private closes it (and the reply permits it had).
  await pub.client.setVisibility(false);
  a.sendRaw(relaySend(rp.address, inner()));
  pub.sendRaw(relaySend(ra.address, inner()));
  await sleep(150);
  assert.equal(relayed(pub) + relayed(a), 0);
  assert.equal(s.stats().relay.droppedNotTrusted, 7);
  assert.equal(s.stats().relay.forwarded, 4);
});

// ---- the forward itself, on a Relay with an in-memory online index (no sockets) ----

function relayUnit(policy: (src: Address, dst: Address) => Promise<boolean> = async () => true) {
  const online = new OnlineIndex();
  const sent = new Map<string, Buffer[]>();
  const link = (id: string): Link => {
    sent.set(id, []);
    return { kind: 'udp', id, observed: '192.0.2.1:1', send: (p) => (sent.get(id)!.push(p), true) };
  };
  const now = Date.now();
  const a = makeAddress(0, 1);
  const b = makeAddress(0, 2);
  const la = link('udp:a');
  const lb = link('udp:b');
  online.seen({ address: a, keyB64: 'ka', link: la, lanEndpoints: [], now, persisted: true });
  online.seen({ address: b, keyB64: 'kb', link: lb, lanEndpoints: [], now, persisted: true });
  const relay = new Relay(online, { perSec: 1e12, burst: 1e12 }, policy);
  const packet = (dst: Address, type = 0x12): Buffer => {
    const p = Buffer.alloc(1 + 6 + 100, 0xab);
    p[0] = 0x20;
    writeAddress(p, 1, dst);
    p[7] = type;
    return p;
  };
  return { relay, online, sent, a, b, la, lb, packet };
}

test('relay rewrites the packet in place: the buffer received is the one sent on, not a copy', async () => {
  const { relay, sent, a, b, la, packet } = relayUnit();
  const first = packet(b);
  relay.handle(first, la);
  await sleep(0); // the first packet of a pair waits for the policy decision
  const p = packet(b);
  relay.handle(p, la);
  const out = sent.get('udp:b')!;
  assert.equal(out.length, 2);
  assert.equal(out[1], p, 'forwarded without Buffer.from()');
  assert.equal(out[0], first, 'also after an asynchronous decision');
  assert.equal(p[0], 0x21);
  assert.deepEqual(readAddress(p, 1), a, 'source stamped over the destination');
  assert.equal(p[7], 0x12);
  assert.equal(relay.counters.forwarded, 2);
});

test('relay: a refused pair stays refused until invalidated, per direction, with numeric pair keys', async () => {
  let allow = false;
  const { relay, sent, b, la, lb, a, packet } = relayUnit(async () => allow);
  relay.handle(packet(b), la);
  await sleep(0);
  allow = true;
  relay.handle(packet(b), la); // cached refusal
  assert.equal(sent.get('udp:b')!.length, 0);
  assert.equal(relay.counters.droppedNotTrusted, 2);
  relay.handle(packet(a), lb); // the other direction has its own decision
  await sleep(0);
  assert.equal(sent.get('udp:a')!.length, 1);
  relay.invalidatePair(a, b);
  relay.handle(packet(b), la);
  await sleep(0);
  assert.equal(sent.get('udp:b')!.length, 1);
  allow = false;
  relay.invalidateNode(b);
  relay.handle(packet(b), la);
  relay.handle(packet(a), lb);
  await sleep(0);
  assert.equal(sent.get('udp:b')!.length, 1, 'decisions about b dropped with invalidateNode');
  assert.equal(sent.get('udp:a')!.length, 1);
});

test('relay over TCP: the forwards one turn makes to a node leave in one writev, not one write() each', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await tcpPeer(s.port);
  const b = await tcpPeer(s.port);
  t.after(() => (a.close(), b.close()));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  await makeTrust(a, ra.address, b, rb.address);
  a.sendRaw(relaySend(rb.address, inner(100)));
  await b.nextPacket(0x21); // the pair's policy decision is cached now

  // The server runs in this process: count its writes to b's connection.
  const proto = net.Socket.prototype as unknown as { _write: (...x: unknown[]) => void; _writev: (...x: unknown[]) => void };
  const w = proto._write;
  const wv = proto._writev;
  let writes = 0;
  proto._write = function (this: net.Socket, ...x: unknown[]) {
    if (this.remotePort === b.localPort) writes++;
    return w.apply(this, x);
  };
  proto._writev = function (this: net.Socket, ...x: unknown[]) {
    if (this.remotePort === b.localPort) writes++;
    return wv.apply(this, x);
  };
  t.after(() => {
    proto._write = w;
    proto._writev = wv;
  });
  const before = b.received.length;
  for (let i = 0; i < 64; i++) a.sendRaw(relaySend(rb.address, inner(1200))); // one turn at a: one chunk at the server, or a few
  for (let i = 0; i < 200 && b.received.length < before + 64; i++) await sleep(10);
  assert.equal(b.received.length - before, 64, 'all delivered');
  assert.ok(writes <= 8, `64 forwards took ${writes} socket writes`);
});
