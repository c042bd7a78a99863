// Batched UDP receive (issue 20) over real sockets on loopback: what the owner gets from the
// addon's recvmmsg reader must be what dgram's 'message' events gave it (every datagram once,
// its bytes, its source as dgram writes it, in order), with oversized datagrams dropped, dgram
// reading again when the reader is off or fails, and nothing delivered nor any port held after close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { type RxBinding, UdpBatchReceiver, loadRx } from '../../src/util/udp-receiver.ts';
import { loadGso, socketFd } from '../../src/util/udp-gso.ts';

type Family = 'udp4' | 'udp6';
interface Got {
  msg: Buffer;
  host: string;
  port: number;
}

const noLog = { warn: () => {} };
const rx = loadRx();
const skip = rx ? false : 'the addon is not built (scripts/native-build.js; see binding.gyp)';

async function bound(type: Family, host: string): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type, recvBufferSize: 4 << 20 });
  await new Promise<void>((r) => s.bind(0, host, r));
  return s;
}

function closeSock(s: dgram.Socket): Promise<void> {
  return new Promise((r) => s.close(() => r()));
}

/** Packet `i` of `len` bytes: its index first (when it fits), then a pattern only it has. */
function packet(i: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  if (len >= 4) b.writeUInt32BE(i, 0);
  for (let j = 4; j < len; j++) b[j] = (i * 31 + j) & 0xff;
  return b;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Send every packet from `tx` in one callback (so the reader finds them queued together), waiting for each send's completion. */
async function burst(tx: dgram.Socket, pkts: Buffer[], port: number, host: string): Promise<void> {
  await Promise.all(pkts.map((p) => new Promise<void>((r, j) => tx.send(p, port, host, (err) => (err ? j(err) : r())))));
}

for (const [txType, txHost, rxType, rxHost, to, wantHost] of [
  ['udp4', '127.0.0.1', 'udp4', '127.0.0.1', '127.0.0.1', '127.0.0.1'],
  ['udp6', '::1', 'udp6', '::1', '::1', '::1'],
  // a dual-stack socket hears an IPv4 sender as ::ffff:a.b.c.d, as dgram writes it
  ['udp4', '127.0.0.1', 'udp6', '::', '127.0.0.1', '::ffff:127.0.0.1'],
] as const) {
  test(`every datagram of a burst arrives once, in order, with its bytes and source (${txType} -> ${rxType} ${rxHost})`, { skip }, async () => {
    const sock = await bound(rxType, rxHost);
    const tx = await bound(txType, txHost);
    const got: Got[] = [];
    let viaDgram = 0;
    sock.on('message', () => viaDgram++);
    const counters = { rxBatches: 0, rxBatchPackets: 0 };
    const r = UdpBatchReceiver.start(sock, (msg, host, port) => got.push({ msg: Buffer.from(msg), host, port }), { log: noLog, counters });
    try {
      assert.ok(r?.active, 'the reader took the socket over');
      // sizes: empty, tiny, a remote path's, loopback's biggest Pilot packet, and many full ones
      const sizes = [0, 1, 5, 1200, 65_000, ...Array.from({ length: 195 }, (_, i) => 1200 + (i % 7))];
      const pkts = sizes.map((len, i) => packet(i, len));
      await burst(tx, pkts, sock.address().port, to);
      await until(() => got.length >= pkts.length);
      await new Promise((res) => setTimeout(res, 50)); // nothing twice
      assert.equal(got.length, pkts.length);
      for (let i = 0; i < pkts.length; i++) {
        assert.ok(got[i]!.msg.equals(pkts[i]!), `packet ${i} (${pkts[i]!.length} bytes) intact and in order`);
        assert.equal(got[i]!.host, wantHost);
        assert.equal(got[i]!.port, tx.address().port);
      }
      assert.equal(viaDgram, 0, 'dgram read nothing itself');
      const st = r!.stats;
      assert.equal(st.packets, pkts.length);
      assert.equal(st.truncated, 0);
      // batched: at most 32 datagrams per recvmmsg, and fewer calls than datagrams
      assert.ok(st.calls < pkts.length / 2, `${st.calls} recvmmsg calls for ${pkts.length} datagrams`);
      assert.deepEqual(counters, { rxBatches: st.calls, rxBatchPackets: pkts.length });
    } finally {
      r?.close();
      await Promise.all([closeSock(sock), closeSock(tx)]);
    }
  });
}

test('sources are told apart within a batch: two senders interleaved keep their own host and port', { skip }, async () => {
  const sock = await bound('udp6', '::');
  const a = await bound('udp4', '127.0.0.1');
  const b = await bound('udp6', '::1');
  const got: Got[] = [];
  const r = UdpBatchReceiver.start(sock, (msg, host, port) => got.push({ msg: Buffer.from(msg), host, port }), { log: noLog });
  try {
    const port = sock.address().port;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 60; i++) {
      const [tx, to] = i % 3 === 0 ? [b, '::1'] : [a, '127.0.0.1'];
      sends.push(new Promise((res) => tx.send(packet(i, 100), port, to, () => res())));
    }
    await Promise.all(sends);
    await until(() => got.length >= 60);
    for (const g of got) {
      const i = g.msg.readUInt32BE(0);
      if (i % 3 === 0) assert.deepEqual([g.host, g.port], ['::1', b.address().port]);
      else assert.deepEqual([g.host, g.port], ['::ffff:127.0.0.1', a.address().port]);
    }
  } finally {
    r?.close();
    await Promise.all([closeSock(sock), closeSock(a), closeSock(b)]);
  }
});

test('a datagram bigger than a slot is dropped and counted; its neighbours arrive', { skip }, async () => {
  const sock = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp4', '127.0.0.1');
  const got: Buffer[] = [];
  const r = UdpBatchReceiver.start(sock, (msg) => got.push(Buffer.from(msg)), { log: noLog, slot: 2048 });
  try {
    await burst(tx, [packet(1, 2048), packet(2, 2049), packet(3, 60_000), packet(4, 10)], sock.address().port, '127.0.0.1');
    await until(() => r!.stats.datagrams >= 4);
    assert.deepEqual(
      got.map((m) => [m.readUInt32BE(0), m.length]),
      [
        [1, 2048],
        [4, 10],
      ],
    );
    assert.equal(r!.stats.truncated, 2);
  } finally {
    r?.close();
    await Promise.all([closeSock(sock), closeSock(tx)]);
  }
});

test('a slice kept past the callback keeps its bytes while later batches arrive (each batch has its own memory)', { skip }, async () => {
  const sock = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp4', '127.0.0.1');
  const kept: Buffer[] = [];
  const r = UdpBatchReceiver.start(sock, (msg) => kept.push(msg), { log: noLog });
  try {
    const pkts = Array.from({ length: 300 }, (_, i) => packet(i, 1000));
    for (let k = 0; k < 3; k++) await burst(tx, pkts.slice(k * 100, k * 100 + 100), sock.address().port, '127.0.0.1');
    await until(() => kept.length >= 300);
    for (let i = 0; i < 300; i++) assert.ok(kept[i]!.equals(pkts[i]!), `kept view ${i} unchanged`);
  } finally {
    r?.close();
    await Promise.all([closeSock(sock), closeSock(tx)]);
  }
});

test('a kept datagram holds at most a 64 KiB chunk of its batch, not the whole batch', { skip }, async () => {
  const sock = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp4', '127.0.0.1');
  const kept: Buffer[] = [];
  const r = UdpBatchReceiver.start(sock, (msg) => kept.push(msg), { log: noLog });
  try {
    // 32 datagrams of 20 KB: one recvmmsg, 640 KB; three fit a chunk
    const pkts = Array.from({ length: 32 }, (_, i) => packet(i, 20_000));
    await burst(tx, pkts, sock.address().port, '127.0.0.1');
    await until(() => kept.length >= 32);
    assert.ok(r!.stats.calls <= 2, `${r!.stats.calls} recvmmsg calls`);
    for (let i = 0; i < 32; i++) {
      assert.ok(kept[i]!.equals(pkts[i]!), `packet ${i}`);
      assert.ok(kept[i]!.buffer.byteLength <= 65_536, `packet ${i} sits in ${kept[i]!.buffer.byteLength} bytes`);
    }
    assert.ok(new Set(kept.map((k) => k.buffer)).size >= 10, 'packed into chunks');
  } finally {
    r?.close();
    await Promise.all([closeSock(sock), closeSock(tx)]);
  }
});

test('off: no addon, PILOT_RECVMMSG=0 or PILOT_GSO=0 leave the socket to dgram', async () => {
  const sock = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp4', '127.0.0.1');
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  try {
    assert.equal(
      UdpBatchReceiver.start(sock, () => assert.fail('not the reader'), { log: noLog, binding: undefined }),
      undefined,
    );
    for (const [k, v] of [
      ['PILOT_RECVMMSG', '0'],
      ['PILOT_GSO', '0'],
    ] as const) {
      const old = process.env[k];
      process.env[k] = v;
      try {
        assert.equal(loadRx(), undefined, `${k}=0`);
      } finally {
        if (old === undefined) delete process.env[k];
        else process.env[k] = old;
      }
    }
    await burst(tx, [packet(1, 10), packet(2, 10)], sock.address().port, '127.0.0.1');
    await until(() => got.length >= 2);
  } finally {
    await Promise.all([closeSock(sock), closeSock(tx)]);
  }
});

test('a read error hands the socket back to dgram: the next datagrams come as message events', { skip }, async () => {
  const sock = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp4', '127.0.0.1');
  const viaDgram: Buffer[] = [];
  const viaReader: Buffer[] = [];
  sock.on('message', (m) => viaDgram.push(m));
  // the real reader, whose callback we also get to hand an error (as recvmmsg's -errno) to
  let cb: ((b: Buffer[] | null, n: number) => void) | undefined;
  const real = rx!;
  const binding: RxBinding = {
    rxStart: (...args) => {
      cb = args[7];
      return real.rxStart(...args);
    },
    rxStop: (h) => real.rxStop(h),
  };
  const warned: unknown[] = [];
  const r = UdpBatchReceiver.start(sock, (m) => viaReader.push(Buffer.from(m)), { log: { warn: (o: unknown) => warned.push(o) }, binding });
  try {
    await burst(tx, [packet(1, 10)], sock.address().port, '127.0.0.1');
    await until(() => viaReader.length === 1);
    cb!(null, -5); // EIO
    assert.equal(r!.active, false);
    assert.equal(warned.length, 1);
    await burst(tx, [packet(2, 10), packet(3, 10)], sock.address().port, '127.0.0.1');
    await until(() => viaDgram.length >= 2);
    assert.deepEqual(
      viaDgram.map((m) => m.readUInt32BE(0)),
      [2, 3],
    );
    assert.equal(viaReader.length, 1);
  } finally {
    r?.close();
    await Promise.all([closeSock(sock), closeSock(tx)]);
  }
});

test('closing with datagrams pending: nothing delivered after close, and the port is free again at once', { skip }, async () => {
  const sock = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp4', '127.0.0.1');
  const port = sock.address().port;
  let after = 0;
  let closed = false;
  const r = UdpBatchReceiver.start(sock, () => closed && after++, { log: noLog });
  assert.ok(r);
  await burst(
    tx,
    Array.from({ length: 100 }, (_, i) => packet(i, 500)),
    port,
    '127.0.0.1',
  );
  // the datagrams sit in the socket's queue: close before the loop polls again
  r.close();
  closed = true;
  await closeSock(sock);
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(after, 0);
  // the reader's own fd is gone too: the port binds again (exclusive), as a restarted daemon needs
  const again = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((res, rej) => {
    again.once('error', rej);
    again.bind(port, '127.0.0.1', () => res());
  });
  await Promise.all([closeSock(again), closeSock(tx)]);
});

test('closing the socket without close() first: the socket close event stops the reader and frees the port', { skip }, async () => {
  const sock = await bound('udp4', '127.0.0.1');
  const port = sock.address().port;
  const r = UdpBatchReceiver.start(sock, () => {}, { log: noLog });
  assert.ok(r?.active);
  await closeSock(sock);
  assert.equal(r.active, false);
  const again = dgram.createSocket('udp4');
  await new Promise<void>((res, rej) => {
    again.once('error', rej);
    again.bind(port, '127.0.0.1', () => res());
  });
  await closeSock(again);
});

test('a handler that closes mid-batch gets nothing more; one that throws does not lose the rest of the batch', { skip }, async () => {
  const sock = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp4', '127.0.0.1');
  const got: number[] = [];
  let r: UdpBatchReceiver | undefined;
  const errors: unknown[] = [];
  const onUncaught = (err: unknown): void => {
    errors.push(err);
  };
  // the test runner's own listener would count the (expected) error as this file's failure
  const runner = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', onUncaught);
  try {
    r = UdpBatchReceiver.start(
      sock,
      (m) => {
        const i = m.readUInt32BE(0);
        got.push(i);
        if (i === 2) throw new Error('handler bug');
        if (i === 5) r!.close();
      },
      { log: noLog },
    );
    await burst(
      tx,
      Array.from({ length: 10 }, (_, i) => packet(i, 20)),
      sock.address().port,
      '127.0.0.1',
    );
    await until(() => errors.length > 0 && got.includes(5));
    // the error reached uncaughtException as a throwing 'message' listener's does, after the batch's other packets
    await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5]);
    assert.equal((errors[0] as Error).message, 'handler bug');
  } finally {
    process.off('uncaughtException', onUncaught);
    for (const l of runner) process.on('uncaughtException', l);
    r?.close();
    await Promise.all([closeSock(sock), closeSock(tx)]);
  }
});

const gso = loadGso();
test('UDP GRO: a GSO burst read as coalesced datagrams is split back into its packets, bytes and order intact', {
  skip: skip || (gso ? false : 'no GSO addon'),
}, async () => {
  const sock = await bound('udp4', '127.0.0.1');
  const tx = await bound('udp4', '127.0.0.1');
  const got: Buffer[] = [];
  const r = UdpBatchReceiver.start(sock, (m) => got.push(Buffer.from(m)), { log: noLog, gro: true });
  try {
    assert.ok(r?.gro, 'the kernel took UDP_GRO');
    const fd = socketFd(tx)!;
    const pkts = Array.from({ length: 40 }, (_, i) => packet(i, i === 39 ? 300 : 1200)); // the last one short
    assert.ok(gso!.sendGso(fd, pkts, 1200, '127.0.0.1', sock.address().port) > 0);
    await until(() => got.length >= 40);
    for (let i = 0; i < 40; i++) assert.ok(got[i]!.equals(pkts[i]!), `packet ${i}`);
    assert.ok(r!.stats.coalesced >= 1, 'loopback handed the GSO send over coalesced');
  } finally {
    r?.close();
    await Promise.all([closeSock(sock), closeSock(tx)]);
  }
  // GRO off again for dgram: a socket handed back must not get coalesced datagrams
});
