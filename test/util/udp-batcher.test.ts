// UDP GSO batching (issue 20) over real sockets on loopback: a plain dgram
// receiver must get every packet, intact, in order, at its own size, whether
// the batch went out as one GSO send, through dgram because the addon is
// missing, or through dgram because the kernel refused UDP_SEGMENT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { UdpBatcher } from '../../src/util/udp-batcher.ts';
import { Errno, type GsoBinding, loadGso, socketFd } from '../../src/util/udp-gso.ts';

type Family = 'udp4' | 'udp6';

async function pair(
  family: Family,
  receiverFamily: Family = family,
): Promise<{ tx: dgram.Socket; rx: dgram.Socket; host: string; port: number; got: Buffer[] }> {
  const rx = dgram.createSocket({ type: receiverFamily, recvBufferSize: 4 << 20 });
  const tx = dgram.createSocket(family);
  const got: Buffer[] = [];
  rx.on('message', (m) => got.push(m));
  await new Promise<void>((r) => rx.bind(0, receiverFamily === 'udp4' ? '127.0.0.1' : '::1', r));
  await new Promise<void>((r) => tx.bind(0, r));
  // a dual-stack udp6 socket reaching an IPv4 peer writes it as ::ffff:a.b.c.d (src/daemon/dual-stack.ts)
  const host = receiverFamily === 'udp4' ? (family === 'udp6' ? '::ffff:127.0.0.1' : '127.0.0.1') : '::1';
  return { tx, rx, host, port: rx.address().port, got };
}

/** Packet `i` of `len` bytes: its index in the first 4 bytes, then a pattern only it has. */
function packet(i: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  b.writeUInt32BE(i, 0);
  for (let j = 4; j < len; j++) b[j] = (i * 31 + j) & 0xff;
  return b;
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const noLog = { warn: () => {} };
const gso = loadGso();
const skipNoAddon = gso ? false : 'the GSO addon is not built (npm install runs node-gyp; see binding.gyp)';
/** The real sendOne for fake GSO bindings (a lone packet's send is not what they fake); EAGAIN (dgram) without the addon. */
const realSendOne: GsoBinding['sendOne'] = (fd, buf, host, port) => (gso ? gso.sendOne(fd, buf, host, port) : -Errno.EAGAIN);

/** Counts the socket's dgram sends (the batcher must not use dgram for a lone packet). */
function countDgramSends(sock: dgram.Socket): { n: number } {
  const c = { n: 0 };
  const orig = sock.send.bind(sock) as (...a: unknown[]) => void;
  (sock as unknown as { send: (...a: unknown[]) => void }).send = (...a: unknown[]) => {
    c.n++;
    orig(...a);
  };
  return c;
}

for (const [family, rxFamily] of [
  ['udp4', 'udp4'],
  ['udp6', 'udp6'],
  ['udp6', 'udp4'],
] as const) {
  test(`GSO: one callback's packets to one destination arrive intact and in order, the short last one too (${family} -> ${rxFamily})`, {
    skip: skipNoAddon,
  }, async () => {
    const { tx, rx, host, port, got } = await pair(family, rxFamily);
    try {
      const b = new UdpBatcher(tx, { log: noLog, gso });
      const sent: Buffer[] = [];
      // 100 full packets and a short one: batches of at most 64 (UDP_MAX_SEGMENTS), the short one last
      for (let i = 0; i < 100; i++) sent.push(packet(i, 1200));
      sent.push(packet(100, 333));
      for (const p of sent) b.send(p, host, port);
      await until(() => got.length >= sent.length);
      assert.deepEqual(
        got.map((m) => m.length),
        sent.map((m) => m.length),
      );
      for (let i = 0; i < sent.length; i++) assert.ok(got[i]!.equals(sent[i]!), `packet ${i} intact`);
      assert.equal(b.stats.gsoSends, 2, 'two sendmsg calls: 64 + 37 packets');
      assert.equal(b.stats.gsoPackets, 101);
      assert.equal(b.stats.plainPackets, 0);
    } finally {
      tx.close();
      rx.close();
    }
  });
}

test('GSO: a lone packet, a change of destination and a bigger packet (an MTU probe) each go out on their own', { skip: skipNoAddon }, async () => {
  const a = await pair('udp6', 'udp4');
  const other = dgram.createSocket('udp4');
  const otherGot: Buffer[] = [];
  other.on('message', (m) => otherGot.push(m));
  await new Promise<void>((r) => other.bind(0, '127.0.0.1', r));
  try {
    const b = new UdpBatcher(a.tx, { log: noLog, gso });
    b.send(packet(0, 40), a.host, a.port); // an ack alone in its callback: sendOne
    await until(() => a.got.length === 1);
    assert.equal(b.stats.onePackets, 1);
    assert.equal(b.stats.plainPackets, 0);
    assert.equal(b.stats.gsoSends, 0);
    // three data packets, a probe, a short ack after the probe, two to another port
    const seq = [packet(1, 1000), packet(2, 1000), packet(3, 1000), packet(4, 1400), packet(5, 50)];
    for (const p of seq) b.send(p, a.host, a.port);
    b.send(packet(6, 1000), '::ffff:127.0.0.1', other.address().port);
    b.send(packet(7, 1000), '::ffff:127.0.0.1', other.address().port);
    await until(() => a.got.length === 6 && otherGot.length === 2);
    assert.deepEqual(
      a.got.slice(1).map((m) => m.readUInt32BE(0)),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      otherGot.map((m) => m.readUInt32BE(0)),
      [6, 7],
    );
    // 1-3 one GSO send; the probe alone (a shorter packet joins only a batch of two or more); the ack alone; 6-7 one GSO send
    assert.equal(b.stats.gsoSends, 2);
    assert.equal(b.stats.gsoPackets, 5);
    assert.equal(b.stats.onePackets, 1 + 2);
    assert.equal(b.stats.plainPackets, 0);
  } finally {
    a.tx.close();
    a.rx.close();
    other.close();
  }
});

test('without the addon (not built, PILOT_GSO=0) every packet goes through dgram, intact and in order', async () => {
  assert.equal(loadGso('/nonexistent/pilot_udp_gso.node'), undefined);
  const { tx, rx, host, port, got } = await pair('udp6', 'udp4');
  try {
    const b = new UdpBatcher(tx, { log: noLog, gso: undefined });
    assert.equal(b.enabled, false);
    const sent = Array.from({ length: 20 }, (_, i) => packet(i, i === 19 ? 100 : 1200));
    for (const p of sent) b.send(p, host, port);
    await until(() => got.length === sent.length);
    for (let i = 0; i < sent.length; i++) assert.ok(got[i]!.equals(sent[i]!));
    assert.equal(b.stats.plainPackets, 20);
    assert.equal(b.stats.onePackets, 0);
    assert.equal(b.stats.gsoSends, 0);
  } finally {
    tx.close();
    rx.close();
  }
});

test('PILOT_GSO=0 turns the addon off', () => {
  const saved = process.env.PILOT_GSO;
  process.env.PILOT_GSO = '0';
  try {
    assert.equal(loadGso(), undefined);
  } finally {
    if (saved === undefined) delete process.env.PILOT_GSO;
    else process.env.PILOT_GSO = saved;
  }
});

test('the kernel refusing UDP_SEGMENT (EINVAL/EIO): logged once, the batch and all later packets go through dgram', async () => {
  const { tx, rx, host, port, got } = await pair('udp4');
  try {
    let calls = 0;
    // what a device without checksum offload answers (quic-go and wireguard-go turn GSO off on it)
    const refusing: GsoBinding = {
      dfAlways: () => 0,
      sendOne: realSendOne,
      sendGso: () => {
        calls++;
        return -Errno.EIO;
      },
    };
    const warnings: string[] = [];
    const b = new UdpBatcher(tx, { log: { warn: (_o: unknown, msg: string) => warnings.push(msg) } as never, gso: refusing });
    for (let i = 0; i < 10; i++) b.send(packet(i, 900), host, port);
    await until(() => got.length === 10);
    for (let i = 0; i < 10; i++) b.send(packet(10 + i, 900), host, port);
    await until(() => got.length === 20);
    assert.deepEqual(
      got.map((m) => m.readUInt32BE(0)),
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.equal(calls, 1, 'GSO is not tried again');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /refused a UDP GSO send/);
    assert.equal(b.enabled, false);
    assert.equal(b.stats.fallbacks, 1);
    assert.equal(b.stats.onePackets, gso ? 20 : 0, 'one sendto per packet still works where UDP_SEGMENT does not');
  } finally {
    tx.close();
    rx.close();
  }
});

test('a full socket buffer (EAGAIN/ENOBUFS) hands the batch to dgram and keeps GSO on', async () => {
  const { tx, rx, host, port, got } = await pair('udp4');
  try {
    let calls = 0;
    const busy: GsoBinding = {
      dfAlways: () => 0,
      sendOne: realSendOne,
      sendGso: () => {
        calls++;
        return calls === 1 ? -Errno.EAGAIN : -Errno.ENOBUFS;
      },
    };
    const b = new UdpBatcher(tx, { log: noLog, gso: busy });
    for (let i = 0; i < 5; i++) b.send(packet(i, 700), host, port);
    await until(() => got.length === 5);
    for (let i = 5; i < 10; i++) b.send(packet(i, 700), host, port);
    await until(() => got.length === 10);
    assert.deepEqual(
      got.map((m) => m.readUInt32BE(0)),
      Array.from({ length: 10 }, (_, i) => i),
    );
    assert.equal(calls, 2);
    assert.equal(b.enabled, true);
    assert.equal(b.stats.fallbacks, 2);
  } finally {
    tx.close();
    rx.close();
  }
});

test('socketFd finds the descriptor of a bound dgram socket (no deprecated _handle)', async () => {
  const s = dgram.createSocket('udp6');
  try {
    assert.equal(socketFd(s), undefined, 'not bound yet: no descriptor');
    await new Promise<void>((r) => s.bind(0, r));
    const fd = socketFd(s);
    assert.ok(typeof fd === 'number' && fd > 2);
  } finally {
    s.close();
  }
});

test("flushAt 'immediate' (the relay): packets forwarded one 'message' callback each leave in one GSO send per poll phase", { skip: skipNoAddon }, async () => {
  const { tx, rx, host, port, got } = await pair('udp6', 'udp4');
  const relay = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  await new Promise<void>((r) => relay.bind(0, '127.0.0.1', r));
  try {
    const b = new UdpBatcher(tx, { log: noLog, gso, flushAt: 'immediate' });
    relay.on('message', (m) => b.send(m, host, port));
    const src = dgram.createSocket('udp4');
    // one synchronous burst: all 40 wait in the relay's socket buffer before its next poll
    for (let i = 0; i < 40; i++) src.send(packet(i, 1100), relay.address().port, '127.0.0.1');
    await until(() => got.length === 40);
    src.close();
    assert.deepEqual(
      got.map((m) => m.readUInt32BE(0)),
      Array.from({ length: 40 }, (_, i) => i),
    );
    assert.ok(b.stats.gsoSends >= 1 && b.stats.gsoSends < 40, `batched across callbacks: ${JSON.stringify(b.stats)}`);
  } finally {
    tx.close();
    rx.close();
    relay.close();
  }
});

test('a segment over the route MTU (EMSGSIZE, EINVAL on older kernels): that destination and size go through dgram for 10 minutes, GSO stays on', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const a = await pair('udp4');
  const other = await pair('udp4');
  try {
    const calls: Array<{ port: number; segment: number }> = [];
    // what Linux 6.x answers when gso_size + headers exceed the route's MTU (after an ICMP "fragmentation needed")
    const small: GsoBinding = {
      dfAlways: () => 0,
      sendOne: realSendOne,
      sendGso: (_fd, bufs, segment, host, port) => {
        calls.push({ port, segment });
        if (segment > 1000) return -Errno.EMSGSIZE;
        for (const buf of bufs) a.tx.send(buf, port, host); // what the kernel would put on the wire
        return bufs.reduce((n, buf) => n + buf.length, 0);
      },
    };
    const warnings: string[] = [];
    const b = new UdpBatcher(a.tx, { log: { warn: (_o: unknown, msg: string) => warnings.push(msg) } as never, gso: small });
    const burst = (to: { host: string; port: number }, first: number, len: number): void => {
      for (let i = 0; i < 4; i++) b.send(packet(first + i, len), to.host, to.port);
    };
    burst(a, 0, 1200); // refused: dgram
    await until(() => a.got.length === 4);
    burst(a, 4, 1200); // same size, same destination: dgram without asking the kernel again
    burst(other, 100, 1200); // another destination is still tried
    await until(() => a.got.length === 8 && other.got.length === 4);
    burst(a, 8, 900); // smaller packets (the transport shrank them): GSO again
    await until(() => a.got.length === 12);
    t.mock.timers.tick(600_001); // the kernel forgets a learnt path MTU after 10 minutes: ask again
    burst(a, 12, 1200);
    await until(() => a.got.length === 16);
    assert.deepEqual(
      a.got.map((m) => m.readUInt32BE(0)),
      Array.from({ length: 16 }, (_, i) => i),
    );
    assert.deepEqual(
      calls.map((c) => [c.port === a.port ? 'a' : 'other', c.segment]),
      [
        ['a', 1200],
        ['other', 1200],
        ['a', 900],
        ['a', 1200],
      ],
    );
    assert.equal(b.enabled, true);
    assert.equal(warnings.length, 0);
  } finally {
    for (const p of [a, other]) {
      p.tx.close();
      p.rx.close();
    }
  }
});

test('EINVAL before any GSO send ever worked (a kernel without UDP_SEGMENT): off after three destinations, logged once', async () => {
  const ps = [await pair('udp4'), await pair('udp4'), await pair('udp4')];
  const tx = ps[0]!.tx;
  try {
    let calls = 0;
    const old: GsoBinding = {
      dfAlways: () => 0,
      sendOne: realSendOne,
      sendGso: () => {
        calls++;
        return -Errno.EINVAL;
      },
    };
    const warnings: string[] = [];
    const b = new UdpBatcher(tx, { log: { warn: (_o: unknown, msg: string) => warnings.push(msg) } as never, gso: old });
    for (const [k, p] of ps.entries()) {
      for (let i = 0; i < 3; i++) b.send(packet(k * 3 + i, 500), p.host, p.port);
      await until(() => p.got.length === 3);
      assert.equal(b.enabled, k < 2, `after ${k + 1} destination(s)`);
    }
    for (let i = 0; i < 3; i++) b.send(packet(9 + i, 500), ps[0]!.host, ps[0]!.port);
    await until(() => ps[0]!.got.length === 6);
    assert.equal(calls, 3, 'not tried once off');
    assert.equal(warnings.length, 1);
    assert.deepEqual(
      ps[0]!.got.map((m) => m.readUInt32BE(0)),
      [0, 1, 2, 9, 10, 11],
    );
  } finally {
    for (const p of ps) {
      p.tx.close();
      p.rx.close();
    }
  }
});

test('dfAlways: DF on every datagram of a udp4 and a dual-stack udp6 socket (a GSO send is bigger than the path MTU: without DF routers fragmented it)', {
  skip: loadGso() ? false : 'the GSO addon is not built',
}, async () => {
  const gso = loadGso()!;
  for (const type of ['udp4', 'udp6'] as const) {
    const s = dgram.createSocket(type);
    await new Promise<void>((r) => s.bind(0, () => r()));
    try {
      assert.equal(gso.dfAlways(socketFd(s)!), 0, type);
    } finally {
      s.close();
    }
  }
  assert.ok(gso.dfAlways(-1) < 0, 'a bad descriptor is an errno, not a throw');
});

for (const [family, rxFamily] of [
  ['udp4', 'udp4'],
  ['udp6', 'udp4'],
  ['udp6', 'udp6'],
] as const) {
  test(`a lone packet (an ACK) leaves through the addon's sendOne, not dgram's send: it arrives once, intact (${family} -> ${rxFamily})`, {
    skip: skipNoAddon,
  }, async () => {
    const { tx, rx, host, port, got } = await pair(family, rxFamily);
    try {
      const dgramSends = countDgramSends(tx);
      const b = new UdpBatcher(tx, { log: noLog, gso });
      const sent = [packet(1, 60), packet(2, 1400), packet(3, 4)];
      for (const p of sent) {
        b.send(p, host, port); // alone in its callback
        await new Promise((r) => setImmediate(r));
      }
      await until(() => got.length >= 3);
      await new Promise((r) => setTimeout(r, 30)); // nothing twice
      assert.equal(got.length, 3);
      for (let i = 0; i < 3; i++) assert.ok(got[i]!.equals(sent[i]!), `packet ${i} intact`);
      assert.equal(dgramSends.n, 0, "dgram's send was not used");
      assert.equal(b.stats.onePackets, 3);
      assert.equal(b.stats.plainPackets, 0);
    } finally {
      tx.close();
      rx.close();
    }
  });
}

test('PILOT_UDP_SEND1=0 (or sendOne: false) keeps lone packets on dgram, as before (the A/B switch)', { skip: skipNoAddon }, async () => {
  const { tx, rx, host, port, got } = await pair('udp4');
  const saved = process.env.PILOT_UDP_SEND1;
  process.env.PILOT_UDP_SEND1 = '0';
  try {
    const dgramSends = countDgramSends(tx);
    const b = new UdpBatcher(tx, { log: noLog, gso });
    b.send(packet(0, 80), host, port);
    await until(() => got.length === 1);
    assert.equal(dgramSends.n, 1);
    assert.equal(b.stats.onePackets, 0);
    assert.equal(b.stats.plainPackets, 1);
    const c = new UdpBatcher(tx, { log: noLog, gso, sendOne: false });
    c.send(packet(1, 80), host, port);
    await until(() => got.length === 2);
    assert.equal(c.stats.onePackets, 0);
  } finally {
    if (saved === undefined) delete process.env.PILOT_UDP_SEND1;
    else process.env.PILOT_UDP_SEND1 = saved;
    tx.close();
    rx.close();
  }
});

test('order: a lone packet never overtakes packets handed to dgram (a full buffer) that have not reached the socket yet', { skip: skipNoAddon }, async () => {
  const { tx, rx, host, port, got } = await pair('udp4');
  try {
    let full = 2; // the first GSO send and the first sendOne find the buffer full: dgram queues them
    const busy: GsoBinding = {
      dfAlways: () => 0,
      sendGso: (fd, bufs, segment, h, p) => (full-- > 1 ? -Errno.EAGAIN : gso!.sendGso(fd, bufs, segment, h, p)),
      sendOne: (fd, buf, h, p) => (full-- > 0 ? -Errno.EAGAIN : gso!.sendOne(fd, buf, h, p)),
    };
    const b = new UdpBatcher(tx, { log: noLog, gso: busy });
    // 0-2 one batch (EAGAIN: dgram); the bigger 3 ends it and leaves alone in the same turn, before dgram's send of 0-2 reached the socket
    for (let i = 0; i < 3; i++) b.send(packet(i, 700), host, port);
    b.send(packet(3, 1400), host, port);
    await until(() => got.length === 4);
    // 4 alone: sendOne says EAGAIN, dgram; 5 right behind it in the same turn
    b.send(packet(4, 100), host, port);
    b.send(packet(5, 900), host, port);
    await until(() => got.length === 6);
    // the buffer has room again, dgram is done: sendOne
    await new Promise((r) => setImmediate(r));
    b.send(packet(6, 100), host, port);
    await until(() => got.length === 7);
    assert.deepEqual(
      got.map((m) => m.readUInt32BE(0)),
      [0, 1, 2, 3, 4, 5, 6],
    );
    assert.equal(b.stats.plainPackets, 6, '0-2 after EAGAIN, 3 behind them, 4 after EAGAIN, 5 behind it');
    assert.equal(b.stats.onePackets, 1);
  } finally {
    tx.close();
    rx.close();
  }
});

test('a lone packet the kernel refuses (EACCES, EMSGSIZE) is reported through onSendError as dgram reports it, a tick later', {
  skip: skipNoAddon,
}, async () => {
  const { tx, rx, host, port, got } = await pair('udp4');
  try {
    // the same failed sends through dgram: the reference for the Error's shape
    const viaDgram = (pkt: Buffer, h: string, p: number): Promise<Error> =>
      new Promise((resolve) => tx.send(pkt, p, h, (err) => resolve(err ?? new Error('sent'))));
    const refs = [await viaDgram(packet(0, 50), '255.255.255.255', 9), await viaDgram(Buffer.alloc(70_000), host, port)];
    const errors: Array<{ err: Error; host: string }> = [];
    const dgramSends = countDgramSends(tx);
    const b = new UdpBatcher(tx, { log: noLog, gso, onSendError: (err, h) => errors.push({ err, host: h }) });
    b.send(packet(1, 50), '255.255.255.255', 9); // broadcast without SO_BROADCAST: EACCES
    await Promise.resolve(); // the batch left (a microtask)...
    assert.equal(errors.length, 0, '...and the error comes a tick later, as from dgram');
    await new Promise((r) => setImmediate(r));
    b.send(Buffer.alloc(70_000), host, port); // bigger than any datagram: EMSGSIZE
    await until(() => errors.length === 2);
    const fields = (e: Error): unknown => {
      const x = e as NodeJS.ErrnoException & { address?: string; port?: number };
      return { message: x.message, code: x.code, errno: x.errno, syscall: x.syscall, address: x.address, port: x.port, name: x.name };
    };
    assert.deepEqual(
      errors.map((e) => fields(e.err)),
      refs.map(fields),
    );
    assert.deepEqual(
      errors.map((e) => (e.err as NodeJS.ErrnoException).code),
      ['EACCES', 'EMSGSIZE'],
    );
    assert.deepEqual(
      errors.map((e) => e.host),
      ['255.255.255.255', host],
    );
    assert.equal(b.stats.sendErrors, 2);
    assert.equal(dgramSends.n, 0, 'not sent twice (once by sendOne, again by dgram)');
    // the socket still sends
    b.send(packet(2, 50), host, port);
    await until(() => got.length === 1);
    // with no hook (the daemon): dropped, as dgram drops a failed send without a callback; no 'error' event
    const quiet = new UdpBatcher(tx, { log: noLog, gso });
    let socketErrors = 0;
    tx.on('error', () => socketErrors++);
    quiet.send(packet(3, 50), '255.255.255.255', 9);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(quiet.stats.sendErrors, 1);
    assert.equal(socketErrors, 0);
  } finally {
    tx.close();
    rx.close();
  }
});

test('a socket closed before its lone packet left: dropped, never sent on the closed descriptor (its number may be reused)', {
  skip: skipNoAddon,
}, async () => {
  const { tx, rx, host, port } = await pair('udp4');
  try {
    const calls: number[] = [];
    const spy: GsoBinding = { ...gso!, sendOne: (fd, buf, h, p) => (calls.push(fd), gso!.sendOne(fd, buf, h, p)) };
    const b = new UdpBatcher(tx, { log: noLog, gso: spy });
    b.send(packet(0, 50), host, port);
    await until(() => calls.length === 1);
    b.send(packet(1, 50), host, port);
    tx.close(); // in the same callback: the batch is due after it
    await new Promise((r) => setImmediate(r));
    assert.equal(calls.length, 1);
    assert.equal(b.stats.dropped, 1);
  } finally {
    rx.close();
    try {
      tx.close();
    } catch {
      // closed by the test already
    }
  }
});

test('a host the addon does not parse (a scoped ::1%lo) goes through dgram, whose lookup knows it', { skip: skipNoAddon }, async () => {
  const { tx, rx, port, got } = await pair('udp6');
  try {
    const b = new UdpBatcher(tx, { log: noLog, gso });
    b.send(packet(0, 60), '::1%lo', port); // alone: sendOne throws on it
    await until(() => got.length === 1);
    for (let i = 1; i <= 3; i++) b.send(packet(i, 600), '::1%lo', port); // a batch: sendGso throws on it
    await until(() => got.length === 4);
    assert.deepEqual(
      got.map((m) => m.readUInt32BE(0)),
      [0, 1, 2, 3],
    );
    assert.equal(b.stats.plainPackets, 4);
    assert.equal(b.stats.onePackets, 0);
    assert.equal(b.stats.sendErrors, 0);
  } finally {
    tx.close();
    rx.close();
  }
});
