// The framed TCP connection to the rendezvous: a turn's packets (relayed packets in a burst) reach
// the socket in one writev, not one write() system call each, and arrive intact and in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { openFramedConn } from '../../src/uplink/framed-conn.ts';
import { FrameDecoder } from '../../src/wire/tcp-framing.ts';

test('framed conn: 64 packets sent in one turn take at most a few socket writes, and arrive whole and in order', async (t) => {
  const frames: Buffer[] = [];
  const server = net.createServer((s) => {
    const dec = new FrameDecoder();
    s.on('data', (d) => frames.push(...dec.push(d)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;

  // Count the client socket's writes (one _write or _writev call each) while the conn is open.
  const proto = net.Socket.prototype as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
  const w = proto._write;
  const wv = proto._writev;
  let writes = 0;
  proto._write = function (this: net.Socket, ...a: unknown[]) {
    if (this.remotePort === port) writes++;
    return w.apply(this, a);
  };
  proto._writev = function (this: net.Socket, ...a: unknown[]) {
    if (this.remotePort === port) writes++;
    return wv.apply(this, a);
  };
  t.after(() => {
    proto._write = w;
    proto._writev = wv;
  });

  let opened!: () => void;
  const open = new Promise<void>((r) => (opened = r));
  const conn = openFramedConn(
    { host: '127.0.0.1', port, connectTimeoutMs: 2000, maxPacket: 4096, maxBacklog: 1 << 20, keepaliveMs: 10_000 },
    { onOpen: () => opened(), onPacket: () => {}, onGarbage: () => {}, onClose: () => {} },
  );
  t.after(() => conn.destroy('test over'));
  await open;
  await new Promise((r) => setImmediate(r));
  const pkts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(1207, i));
  for (const p of pkts) assert.equal(conn.send(p), true);
  await new Promise((r) => setImmediate(r));
  assert.ok(writes <= 4, `64 packets in one turn took ${writes} socket writes`);
  for (let i = 0; i < 200 && frames.length < 64; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(frames, pkts);
});
