// WebSocket on the rendezvous's TCP port (sniffed next to framed TCP, same
// port as UDP): a binary message is one packet. Hostile HTTP/WebSocket input is
// counted as garbage and closes only that connection. Real sockets, real curl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { buildHello, openServerMessage } from '../../src/registry/envelope.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { classifyFirstBytes } from '../../src/rendezvous/tcp-sniff.ts';
import { FrameDecoder } from '../../src/wire/tcp-framing.ts';
import { relaySend, sleep, startServer, tcpPeer, udpPeer } from './helpers.ts';
import { makeTrust, uplinkPeer } from '../uplink/helpers.ts';

async function wsOpen(port: number, path = '/pilot'): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', (code) => reject(new Error(`closed ${code}`)));
  });
  return ws;
}

const closed = (ws: WebSocket): Promise<number> => new Promise((r) => (ws.readyState === WebSocket.CLOSED ? r(-1) : ws.once('close', (code) => r(code))));
const sockClosed = (s: net.Socket): Promise<void> => new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));

function curl(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-s', '-m', '5', ...args], (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout }));
  });
}

/** A live registry client over a fresh WebSocket, proving the server still serves. */
async function wsRegisters(port: number, email: string): Promise<string> {
  const ws = await wsOpen(port);
  const client = new RegistryClient({ identity: generateIdentity(), send: (p) => ws.send(p), timeoutMs: 300, retries: 3 });
  ws.on('message', (d: Buffer) => client.handlePacket(d));
  try {
    return (await client.register({ email })).address;
  } finally {
    client.close();
    ws.close();
    await closed(ws);
  }
}

test('sniffing: framed headers start with a zero byte, upgrades with "GET "', () => {
  assert.equal(classifyFirstBytes(Buffer.from([0, 0, 1, 0])), 'framed');
  assert.equal(classifyFirstBytes(Buffer.from([0])), 'framed');
  assert.equal(classifyFirstBytes(Buffer.from('GET /pilot HTTP/1.1\r\n')), 'http');
  assert.equal(classifyFirstBytes(Buffer.from('GE')), undefined, 'wait for more');
  assert.equal(classifyFirstBytes(Buffer.from('POST / HTTP/1.1')), 'framed', 'not an upgrade: the frame decoder rejects it');
  assert.equal(classifyFirstBytes(Buffer.from('GETX')), 'framed');
  assert.equal(classifyFirstBytes(Buffer.alloc(0)), undefined);
});

test('not an upgrade: "POST ..." or a huge header goes down the framed path (FRAME_TOO_LARGE answer, hang-up)', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  for (const first of [Buffer.from('POST /pilot HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2, 3])]) {
    const sock = net.connect(s.port, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise((r) => sock.once('connect', r));
    const dec = new FrameDecoder();
    const frames: Buffer[] = [];
    sock.on('data', (d) => frames.push(...dec.push(d)));
    sock.write(first);
    await sockClosed(sock);
    assert.equal(frames.length, 1);
    const o = openServerMessage(frames[0]!, s.publicKey);
    assert.ok(o && 'msg' in o && o.msg.type === 'response' && !o.msg.stmt.ok && o.msg.stmt.error.code === 'FRAME_TOO_LARGE');
  }
  assert.equal(s.stats().websockets, 0);
  assert.equal(s.stats().garbage, 2);
});

test('one port: WebSocket, framed TCP and UDP nodes all register; a binary message is one packet', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const ws = await wsOpen(s.port);
  t.after(() => ws.terminate());
  // A hello in one binary message gets one signed answer in one binary message.
  const answer = new Promise<Buffer>((r) => ws.once('message', (d: Buffer, bin: boolean) => (assert.equal(bin, true), r(d))));
  ws.send(buildHello().packet);
  const o = openServerMessage(await answer, s.publicKey);
  assert.ok(o && 'msg' in o && o.msg.type === 'response' && o.msg.stmt.ok);
  assert.equal(s.stats().websockets, 1);

  const a = await wsRegisters(s.port, 'w@example.com');
  const tcp = await tcpPeer(s.port);
  const udp = await udpPeer(s.port);
  t.after(() => Promise.all([tcp.close(), udp.close()]));
  const b = (await tcp.client.register({ email: 't@example.com' })).address;
  const c = (await udp.client.register({ email: 'u@example.com' })).address;
  assert.equal(new Set([a, b, c]).size, 3);
  assert.ok(s.stats().tcpFramesIn >= 3);
});

test('an upgrade request split across TCP segments ("G", "ET /pi", rest) is still sniffed and served', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const sock = net.connect(s.port, '127.0.0.1');
  t.after(() => sock.destroy());
  await new Promise((r) => sock.once('connect', r));
  const key = crypto.randomBytes(16).toString('base64');
  const req = `GET /pilot HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  let reply = '';
  sock.on('data', (d) => (reply += d.toString('latin1')));
  for (const part of [req.slice(0, 1), req.slice(1, 7), req.slice(7)]) {
    sock.write(part);
    await sleep(30);
  }
  await sleep(100);
  assert.match(reply, /^HTTP\/1\.1 101 /);
  const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  assert.ok(reply.includes(accept));
  assert.equal(s.stats().websockets, 1);
});

test('hostile HTTP: wrong path, plain GET, a bad upgrade, "GET " + random bytes, slow-loris -> garbage, closed; others keep working', async (t) => {
  const s = await startServer({ tcpIdleMs: 800 });
  t.after(() => s.close());
  const keeper = await wsOpen(s.port); // an honest client, connected throughout (its pings beat the idle timeout)
  const pinger = setInterval(() => keeper.ping(), 200);
  t.after(() => (clearInterval(pinger), keeper.terminate()));

  // Real curl: a page on any path is a 404, an upgrade to another path too.
  const g0 = s.stats().garbage;
  // the HTTP status curl got for `path`, with extra request headers
  const status = async (path: string, ...headers: string[]) =>
    (await curl(['-o', '/dev/null', '-w', '%{http_code}', ...headers.flatMap((h) => ['-H', h]), `http://127.0.0.1:${s.port}${path}`])).out;
  const upgrade = ['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13'];
  assert.equal(await status('/'), '404');
  assert.equal(await status('/pilot'), '404', 'no upgrade, no service');
  assert.equal(await status('/admin', ...upgrade, 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='), '404');
  await assert.rejects(wsOpen(s.port, '/other'));
  // An upgrade to /pilot that ws refuses (no key): 400.
  assert.equal(await status('/pilot', ...upgrade), '400');
  await sleep(50);
  assert.equal(s.stats().garbage - g0, 5);

  // "GET " and then binary noise: the HTTP parser fails, the connection is dropped.
  const g1 = s.stats().garbage;
  const noise = net.connect(s.port, '127.0.0.1');
  noise.on('error', () => {});
  await new Promise((r) => noise.once('connect', r));
  noise.write(Buffer.concat([Buffer.from('GET '), crypto.randomBytes(3000)]));
  await sockClosed(noise);
  assert.equal(s.stats().garbage - g1, 1);

  // Slow-loris: a header line every 150 ms keeps the idle timer alive, but the head must be complete in time.
  const g2 = s.stats().garbage;
  const loris = net.connect(s.port, '127.0.0.1');
  loris.on('error', () => {});
  await new Promise((r) => loris.once('connect', r));
  loris.write('GET /pilot HTTP/1.1\r\nHost: x\r\n');
  const drip = setInterval(() => loris.writable && loris.write(`X-${crypto.randomBytes(3).toString('hex')}: y\r\n`), 150);
  const t0 = Date.now();
  await sockClosed(loris);
  clearInterval(drip);
  const took = Date.now() - t0;
  assert.ok(took >= 600 && took < 2000, `slow-loris cut after ${took} ms`);
  assert.equal(s.stats().garbage - g2, 1);

  // The honest WebSocket and new clients of every kind are still served.
  assert.equal(keeper.readyState, WebSocket.OPEN);
  keeper.send(buildHello().packet);
  await new Promise((r) => keeper.once('message', r));
  await wsRegisters(s.port, 'after@example.com');
  const udp = await udpPeer(s.port);
  t.after(() => udp.close());
  await udp.client.register({ email: 'udp@example.com' });
});

test('hostile WebSocket: oversized message (1009), text (1003), unmasked frame -> that connection closes, garbage counted', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const keeper = await wsOpen(s.port);
  t.after(() => keeper.terminate());

  const g0 = s.stats().garbage;
  const big = await wsOpen(s.port);
  big.send(Buffer.alloc(4097, 1)); // one byte over the max frame
  assert.equal(await closed(big), 1009);
  const text = await wsOpen(s.port);
  text.send('{"method":"hello"}');
  assert.equal(await closed(text), 1003);
  // Empty binary message: counted, connection kept.
  const empty = await wsOpen(s.port);
  t.after(() => empty.terminate());
  empty.send(Buffer.alloc(0));
  await sleep(100);
  assert.equal(empty.readyState, WebSocket.OPEN);
  assert.equal(s.stats().garbage - g0, 3);

  // A raw client that upgrades properly, then sends an unmasked frame (clients must mask).
  const raw = net.connect(s.port, '127.0.0.1');
  raw.on('error', () => {});
  await new Promise((r) => raw.once('connect', r));
  raw.write(
    `GET /pilot HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  await new Promise((r) => raw.once('data', r));
  raw.write(Buffer.from([0x82, 0x03, 1, 2, 3]));
  await sockClosed(raw);
  await sleep(50);
  assert.equal(s.stats().garbage - g0, 4);

  // A flood of random frames from several raw connections.
  for (let i = 0; i < 5; i++) {
    const c = net.connect(s.port, '127.0.0.1');
    c.on('error', () => {});
    await new Promise((r) => c.once('connect', r));
    c.write(
      `GET /pilot HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await new Promise((r) => c.once('data', r));
    c.write(crypto.randomBytes(4000));
    await sockClosed(c);
  }
  assert.equal(keeper.readyState, WebSocket.OPEN);
  await wsRegisters(s.port, 'still@example.com');
  assert.equal(s.stats().websockets, 2, 'the keeper and the empty-message client');
});

test('limits: WebSocket connections count against the TCP connection cap and idle out', async (t) => {
  const s = await startServer({ maxTcpConnections: 2, tcpIdleMs: 500 });
  t.after(() => s.close());
  const a = await wsOpen(s.port);
  const b = await wsOpen(s.port);
  await assert.rejects(wsOpen(s.port), 'third connection refused by the cap');
  const t0 = Date.now();
  await Promise.all([closed(a), closed(b)]);
  const idle = Date.now() - t0;
  assert.ok(idle >= 300 && idle < 2000, `idle WebSockets closed after ${idle} ms`);
  await sleep(50);
  assert.equal(s.stats().websockets, 0);
  assert.equal(s.stats().tcpConnections, 0);
  await wsRegisters(s.port, 'x@example.com');
});

test('relay to a WebSocket node: the forwards of one turn leave in one writev, not one write() each', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await tcpPeer(s.port);
  const b = await uplinkPeer(s.port, 'websocket');
  t.after(() => (a.close(), b.close()));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  await makeTrust(a, ra.address, b, rb.address);
  const inner = (n: number): Buffer => Buffer.concat([Buffer.from([0x12]), Buffer.alloc(n - 1, 0xab)]);
  a.sendRaw(relaySend(rb.address, inner(100)));
  await b.nextPacket(0x21); // the pair's policy decision is cached now

  // The server runs in this process: count its writes on every connection but a's (nothing else is sent meanwhile).
  const proto = net.Socket.prototype as unknown as { _write: (...x: unknown[]) => void; _writev: (...x: unknown[]) => void };
  const w = proto._write;
  const wv = proto._writev;
  let writes = 0;
  const counts = (sock: net.Socket): boolean => sock.localPort === s.port && sock.remotePort !== a.localPort;
  proto._write = function (this: net.Socket, ...x: unknown[]) {
    if (counts(this)) writes++;
    return w.apply(this, x);
  };
  proto._writev = function (this: net.Socket, ...x: unknown[]) {
    if (counts(this)) writes++;
    return wv.apply(this, x);
  };
  t.after(() => {
    proto._write = w;
    proto._writev = wv;
  });
  for (let i = 0; i < 64; i++) a.sendRaw(relaySend(rb.address, inner(1200)));
  let got = 0;
  for (let i = 0; i < 64; i++) if ((await b.nextPacket(0x21)).length === 7 + 1200) got++;
  assert.equal(got, 64, 'all delivered');
  assert.ok(writes <= 8, `64 forwards took ${writes} socket writes`);
});
