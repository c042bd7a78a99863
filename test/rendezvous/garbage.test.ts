// Hostile bytes on UDP and TCP: answered with an error or dropped, never a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { buildRequest, openServerMessage } from '../../src/registry/envelope.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { MIN_HELLO_PACKET } from '../../src/registry/protocol.ts';
import { encodeFrame, FrameDecoder } from '../../src/wire/tcp-framing.ts';
import { sleep, startServer, tcpPeer, udpPeer } from './helpers.ts';

function garbageSet(serverKey: Buffer): Buffer[] {
  const valid = buildRequest(generateIdentity(), serverKey, 'register', { email: 'g@example.com' }).packet;
  const out: Buffer[] = [Buffer.from([0x01]), Buffer.from([0xff]), Buffer.from([0x20]), Buffer.from([0x21, 1, 2, 3])];
  for (let i = 0; i < 50; i++) out.push(crypto.randomBytes(1 + Math.floor(Math.random() * 1400)));
  for (let i = 0; i < 20; i++) out.push(Buffer.concat([Buffer.from([0x01]), crypto.randomBytes(Math.floor(Math.random() * 1200))]));
  for (const cut of [2, 10, 50, valid.length - 1]) out.push(valid.subarray(0, cut)); // truncated JSON
  const j = (v: unknown) => Buffer.concat([Buffer.from([0x01]), Buffer.from(JSON.stringify(v))]);
  out.push(
    j(null),
    j([1, 2]),
    j({ id: 'x'.repeat(1000), stmt: '{}' }),
    j({ id: '1', stmt: JSON.stringify({ method: 'hello' }) }), // hello without nonce
    j({ id: '1', stmt: JSON.stringify({ method: 'register', params: { __proto__: { a: 1 } }, nonce: 'A'.repeat(24) }), sig: 'A'.repeat(88) }),
    j({ id: '1', stmt: '['.repeat(500) + ']'.repeat(500) }),
    j({ id: '1', stmt: JSON.stringify({ method: 'resolve', params: { hostname: 'x' }, key: 1, server: 2, ts: 'now', nonce: 'A'.repeat(24) }) }),
    Buffer.concat([Buffer.from([0x01]), Buffer.alloc(3000, 0x7b)]), // oversized request
  );
  return out;
}

test('UDP garbage is dropped or answered; the server keeps serving', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const sock = dgram.createSocket('udp4');
  t.after(() => sock.close());
  const answers: Buffer[] = [];
  sock.on('message', (m) => answers.push(m));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  for (const g of garbageSet(s.publicKey)) sock.send(g, s.port, '127.0.0.1');
  await sleep(300);
  // Every answer is a well-formed error signed by the server.
  for (const a of answers) {
    const o = openServerMessage(a, s.publicKey);
    assert.ok(o && 'msg' in o && o.msg.type === 'response' && !o.msg.stmt.ok);
  }
  const st = s.stats();
  assert.ok(st.garbage + st.registry.dropped + st.registry.errors + st.relay.droppedMalformed + st.relay.droppedUnknownSource > 0);
  const p = await udpPeer(s.port);
  t.after(() => p.close());
  assert.equal((await p.client.register({ email: 'ok@example.com' })).address, '0:0000.0000.0001');
});

test('TCP garbage inside frames gets error answers; the connection and server survive', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const sock = net.connect(s.port, '127.0.0.1');
  t.after(() => sock.destroy());
  await new Promise((r) => sock.once('connect', r));
  const dec = new FrameDecoder();
  const frames: Buffer[] = [];
  sock.on('data', (d) => frames.push(...dec.push(d)));
  const set = garbageSet(s.publicKey).filter((g) => g.length <= 4096);
  for (const g of set) sock.write(encodeFrame(g));
  sock.write(encodeFrame(Buffer.alloc(0)));
  await sleep(300);
  assert.ok(frames.length > 0, 'TCP senders are real: registry garbage is answered');
  for (const f of frames) {
    const o = openServerMessage(f, s.publicKey);
    assert.ok(o && 'msg' in o && o.msg.type === 'response' && !o.msg.stmt.ok);
  }
  assert.equal(sock.destroyed, false);
  const p = await tcpPeer(s.port);
  t.after(() => p.close());
  await p.client.register({ email: 'ok@example.com' });
});

test('TCP: a huge frame header gets FRAME_TOO_LARGE and a hang-up; random streams too', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const sock = net.connect(s.port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const dec = new FrameDecoder();
  const frames: Buffer[] = [];
  sock.on('data', (d) => frames.push(...dec.push(d)));
  const closed = new Promise((r) => sock.once('close', r));
  const hdr = Buffer.alloc(4);
  hdr.writeUInt32BE(0xfffffff0);
  sock.write(Buffer.concat([hdr, crypto.randomBytes(1000)]));
  await closed;
  assert.equal(frames.length, 1);
  const o = openServerMessage(frames[0]!, s.publicKey);
  assert.ok(o && 'msg' in o && o.msg.type === 'response' && !o.msg.stmt.ok && o.msg.stmt.error.code === 'FRAME_TOO_LARGE');

  // Pure random streams and truncated frames from several connections.
  for (let i = 0; i < 5; i++) {
    const c = net.connect(s.port, '127.0.0.1');
    c.on('error', () => {});
    await new Promise((r) => c.once('connect', r));
    c.write(crypto.randomBytes(5000));
    c.write(Buffer.from([0, 0, 1]));
    c.end();
  }
  await sleep(200);
  const p = await tcpPeer(s.port);
  t.after(() => p.close());
  await p.client.register({ email: 'ok@example.com' });
  const q = await udpPeer(s.port);
  t.after(() => q.close());
  await q.client.register({ email: 'ok2@example.com' });
});

test('per-IP request rate limit drops floods but is generous', async (t) => {
  const s = await startServer({ requestRate: { perSec: 1, burst: 20 } });
  t.after(() => s.close());
  const p = await udpPeer(s.port);
  t.after(() => p.close());
  const pkt = buildRequest(generateIdentity(), s.publicKey, 'heartbeat', {}).packet;
  for (let i = 0; i < 100; i++) p.sendRaw(pkt);
  await sleep(200);
  assert.ok(s.stats().rateLimited >= 70);
});

test('UDP answers to unauthenticated requests never amplify; TCP ones are answered', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const hello = (pad: string) =>
    Buffer.concat([Buffer.from([0x01]), Buffer.from(JSON.stringify({ id: '1', stmt: JSON.stringify({ method: 'hello', nonce: 'A'.repeat(24), pad }) }))]);
  const sock = dgram.createSocket('udp4');
  t.after(() => sock.close());
  const answers: Buffer[] = [];
  sock.on('message', (m) => answers.push(m));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  // An unpadded hello (about 70 bytes) would get a ~400-byte answer: withheld.
  sock.send(hello(''), s.port, '127.0.0.1');
  await sleep(150);
  assert.equal(answers.length, 0);
  assert.equal(s.stats().registry.amplificationDropped, 1);
  // Padded like the client does: answered, never larger than the request (1x before validation).
  const padded = hello('.'.repeat(MIN_HELLO_PACKET));
  sock.send(padded, s.port, '127.0.0.1');
  await sleep(150);
  assert.equal(answers.length, 1);
  assert.ok(answers[0]!.length <= padded.length);
  // The same unpadded hello over TCP is answered (a TCP peer is not spoofed).
  const p = await tcpPeer(s.port);
  t.after(() => p.close());
  p.sendRaw(hello(''));
  const a = await p.nextPacket(0x02);
  const o = openServerMessage(a, s.publicKey);
  assert.ok(o && 'msg' in o && o.msg.type === 'response' && o.msg.stmt.ok);
});
