// A rendezvous (or something pretending to be one) that sends garbage: the
// uplink counts it, drops a connection it cannot resync, reconnects, and
// never crashes. Real sockets against small hostile servers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeFrame } from '../../src/wire/tcp-framing.ts';
import { PilotError } from '../../src/util/errors.ts';
import { TcpUplink } from '../../src/uplink/tcp-uplink.ts';
import { once } from './helpers.ts';

const FAST = { minMs: 30, maxMs: 200 };

/** A TCP server that runs `script` for its n-th connection (0-based). */
async function scriptedTcp(script: (sock: net.Socket, n: number) => void): Promise<{ port: number; connections: () => number; close: () => void }> {
  let n = 0;
  const socks = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    socks.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => socks.delete(sock));
    script(sock, n++);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => n,
    close: () => {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

function collect(u: TcpUplink): Buffer[] {
  const got: Buffer[] = [];
  u.on('packet', (p) => got.push(p));
  return got;
}

test('framed: an oversized length, then random bytes -> reconnect each time; a good server afterwards is heard', async (t) => {
  const good = encodeFrame(Buffer.from([0x02, 1, 2, 3]));
  const srv = await scriptedTcp((sock, n) => {
    if (n === 0) {
      const hdr = Buffer.alloc(4);
      hdr.writeUInt32BE(0xffffffff);
      sock.write(Buffer.concat([hdr, crypto.randomBytes(100)]));
    } else if (n === 1) {
      const junk = crypto.randomBytes(5000);
      junk[0] = 0x7f; // a length far above the maximum
      sock.write(junk);
    } else if (n === 2) {
      // Empty frames (garbage, survivable), then half a frame and a hang-up.
      sock.write(Buffer.concat([encodeFrame(Buffer.alloc(0)), encodeFrame(Buffer.alloc(0)), good.subarray(0, 5)]));
      setTimeout(() => sock.destroy(), 50);
    } else sock.write(good);
  });
  t.after(() => srv.close());
  const u = new TcpUplink({ host: '127.0.0.1', port: srv.port, mode: 'tcp', backoff: FAST });
  t.after(() => u.close());
  const got = collect(u);
  const downs: string[] = [];
  u.on('down', (r) => downs.push(r));
  await u.connect();
  while (got.length === 0) await once(u, 'packet', 5000);
  assert.deepEqual(got[0], Buffer.from([0x02, 1, 2, 3]));
  assert.equal(srv.connections(), 4);
  assert.equal(u.counters.connects, 4);
  assert.equal(u.counters.garbage, 4, '2 oversized + 2 empty frames');
  assert.match(downs[0]!, /oversized frame/);
  assert.equal(u.isUp, true);
});

test('websocket: oversized message -> reconnect; text and empty messages are counted and ignored', async (t) => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const port = (wss.address() as net.AddressInfo).port;
  t.after(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
  let n = 0;
  wss.on('connection', (ws: WebSocket) => {
    ws.on('error', () => {});
    if (n++ === 0) ws.send(crypto.randomBytes(10_000));
    else {
      ws.send('{"not":"a packet"}');
      ws.send(Buffer.alloc(0));
      ws.send(Buffer.from([0x21, 9, 9]));
    }
  });
  const u = new TcpUplink({ host: '127.0.0.1', port, mode: 'websocket', path: '/', backoff: FAST });
  t.after(() => u.close());
  const got = collect(u);
  const down = once<[string]>(u, 'down');
  await u.connect();
  assert.match((await down)[0], /payload|1009/i);
  await once(u, 'packet', 3000);
  assert.deepEqual(got, [Buffer.from([0x21, 9, 9])]);
  assert.equal(u.counters.garbage, 3, 'oversized + text + empty');
  assert.equal(u.counters.connects, 2);
  assert.equal(u.isUp, true);
});

test('websocket: a "server" that completes the handshake and then sends broken frames -> reconnect, no crash', async (t) => {
  const srv = await scriptedTcp((sock) => {
    let head = '';
    sock.on('data', (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const key = /sec-websocket-key: (\S+)/i.exec(head)![1]!;
      const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      // Reserved opcode 0x3, then a masked server frame (servers must not mask), then noise.
      sock.write(Buffer.from([0x83, 0x01, 0x00]));
      sock.write(Buffer.from([0x82, 0x81, 1, 2, 3, 4, 5]));
      sock.write(crypto.randomBytes(2000));
      head = '';
    });
  });
  t.after(() => srv.close());
  const u = new TcpUplink({ host: '127.0.0.1', port: srv.port, mode: 'websocket', backoff: FAST });
  t.after(() => u.close());
  collect(u);
  await u.connect();
  await once(u, 'down', 3000);
  await once(u, 'up', 3000);
  await once(u, 'down', 3000);
  assert.ok(u.counters.connects >= 2);
  assert.equal(u.counters.packetsIn, 0);
});

test('websocket: an HTTP 200 page (captive portal, wrong service) instead of an upgrade -> UNREACHABLE', async (t) => {
  const srv = await scriptedTcp((sock) => {
    sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello'));
  });
  t.after(() => srv.close());
  const u = new TcpUplink({ host: '127.0.0.1', port: srv.port, mode: 'websocket' });
  await assert.rejects(u.connect(), (e: unknown) => e instanceof PilotError && e.code === 'UNREACHABLE' && /HTTP 200/.test(e.message));
  u.close();
});
