// Hostile or broken input: nothing throws, everything bad is counted, and the
// connection keeps working for the legitimate traffic afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from '../../src/transport/connection.ts';
import { Frame } from '../../src/transport/frames.ts';
import { writeVarint } from '../../src/transport/varint.ts';
import { closePair, makePair, nextStream, prng, readAll, withTimeout, writeRandom } from './link.ts';

function pkt(...parts: (number | number[] | Buffer)[]): Buffer {
  const bytes: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') bytes.push(p);
    else bytes.push(...p);
  }
  return Buffer.from(bytes);
}

function v(n: number): number[] {
  const b = Buffer.alloc(8);
  const end = writeVarint(b, 0, n);
  return [...b.subarray(0, end)];
}

test('random garbage is counted as malformed and never throws', () => {
  const sent: Buffer[] = [];
  const c = new Connection({ role: 'low', sendPacket: (p) => sent.push(p) });
  const events: string[] = [];
  c.on('stream', (s) => {
    events.push('stream');
    s.on('error', () => {});
  });
  c.on('datagram', () => events.push('datagram'));
  const rand = prng(99);
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    const len = Math.floor(rand() * 1300);
    const b = Buffer.alloc(len);
    for (let j = 0; j < len; j++) b[j] = Math.floor(rand() * 256);
    assert.doesNotThrow(() => c.receivePacket(b));
  }
  const st = c.stats();
  // random bytes almost never form a valid packet; the few that do must be harmless
  assert.ok(st.malformed > n * 0.9, `malformed ${st.malformed}`);
  c.close();
});

function badPackets(): Buffer[] {
  return [
    Buffer.alloc(0), // empty
    pkt(0x40), // truncated packet number
    pkt(1), // packet number but no frame
    pkt(2, Frame.Stream | 0x02, 1), // STREAM with LEN, missing length
    pkt(3, Frame.Stream | 0x02, 1, ...v(1000), 1, 2, 3), // length beyond the packet
    pkt(4, Frame.Stream | 0x06, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0), // offset varint > 2^53
    pkt(5, Frame.Ack, ...v(10), 0, ...v(5), 0), // range count larger than the data
    pkt(6, Frame.Ack, ...v(3), 0, 0, ...v(9)), // first range > largest
    pkt(7, Frame.Ack, ...v(10), 0, 1, 2, ...v(5), ...v(5)), // second range below zero
    pkt(8, Frame.ResetStream, 1, 1), // truncated
    pkt(9, Frame.ConnectionClose, 0, ...v(5000), 1), // reason longer than the packet
    pkt(10, Frame.Datagram, ...v(3), 0, 1, 0), // datagram length < ports
    pkt(11, Frame.Datagram, ...v(100), 0, 1, 0, 2, 9), // datagram longer than packet
    pkt(12, 0x3f), // unknown frame type
    pkt(13, 0xc0, 0, 0, 0, 0, 0, 0, 0), // frame type as an 8-byte varint: unknown
    pkt(14, Frame.MaxData, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // varint overflow
    pkt(15, Frame.StreamOpen | 0x02, 1, 0, 80), // open frame cut inside the ports
  ];
}

test('truncated frames, huge lengths and varint overflows are rejected', () => {
  const c = new Connection({ role: 'low', sendPacket: () => {} });
  c.on('stream', (s) => s.on('error', () => {}));
  const bad = badPackets();
  for (const b of bad) assert.doesNotThrow(() => c.receivePacket(b));
  assert.equal(c.stats().malformed, bad.length);
  assert.equal(c.stats().packetsReceived, 0);
  c.close();
});

test('semantic violations are counted and dropped: flow control, final size, unknown streams, bogus acks', async () => {
  const out: Buffer[] = [];
  const c = new Connection({ role: 'low', sendPacket: (b) => out.push(b) });
  const streams: unknown[] = [];
  c.on('stream', (s) => {
    streams.push(s);
    s.on('error', () => {});
    s.resume();
  });
  let pn = 0;
  const send = (...frames: (number | number[] | Buffer)[]): void => c.receivePacket(pkt(...v(pn++), ...frames));
  // STREAM on a peer id without open info (we must have lost its state), and on an id of our own
  // parity we never opened: both are answered with RESET_STREAM + STOP_SENDING, once per id
  send(Frame.Stream | 0x02, 3, 1, 0x61);
  send(Frame.Stream | 0x02, 3, 1, 0x61);
  send(Frame.StreamOpen | 0x02, ...v(8), 0, 80, 0, 81, 1, 0x61);
  assert.equal(streams.length, 0);
  await new Promise((r) => setImmediate(r));
  const answers = Buffer.concat(out).toString('hex');
  for (const id of ['03', '08']) {
    assert.ok(answers.includes(Frame.ResetStream.toString(16).padStart(2, '0') + id + '04'), `RESET_STREAM for ${id}`);
    assert.ok(answers.includes(Frame.StopSending.toString(16).padStart(2, '0') + id + '04'), `STOP_SENDING for ${id}`);
  }
  assert.equal(answers.split('0403040').length - 1, 1, 'answered once');
  assert.equal(c.stats().malformed, 0);
  // a proper open on peer stream 1
  send(Frame.StreamOpen | 0x02, 1, 0, 80, 0, 81, 1, 0x61);
  assert.equal(streams.length, 1);
  // data far beyond the stream's flow-control credit
  send(Frame.Stream | 0x06, 1, ...v(100 * 1024 * 1024), 1, 0x62);
  assert.equal(c.stats().malformed, 1);
  // FIN at 10, then data beyond it, then a different final size
  send(Frame.Stream | 0x07, 1, 9, 1, 0x63);
  send(Frame.Stream | 0x06, 1, 10, 1, 0x64);
  send(Frame.Stream | 0x07, 1, 20, 1, 0x64);
  assert.equal(c.stats().malformed, 3);
  // RESET with a final size below what was received
  send(Frame.ResetStream, 1, 1, 0);
  assert.equal(c.stats().malformed, 4);
  // ACK of packets we never sent
  send(Frame.Ack, ...v(1_000_000), 0, 0, 0);
  assert.equal(c.stats().malformed, 5);
  // replays are duplicates, not errors
  c.receivePacket(pkt(...v(0), Frame.Ping));
  assert.equal(c.stats().duplicates, 1);
  c.close();
});

test('malformed packets mixed into a live transfer change nothing', async () => {
  // (real injection cannot pass the session's AEAD; this checks that rejected packets leave no trace)
  const p = makePair();
  const bad = badPackets();
  const noise = setInterval(() => {
    for (const b of bad) p.b.receivePacket(b);
    for (const b of bad) p.a.receivePacket(b);
  }, 1);
  const s = p.a.openStream(80, 1);
  const inc = nextStream(p.b);
  const [sent, got] = await withTimeout(Promise.all([writeRandom(s, 4 * 1024 * 1024), inc.then(readAll)]), 20_000, 'transfer');
  clearInterval(noise);
  assert.equal(got.hash, sent);
  assert.ok(p.b.stats().malformed >= bad.length);
  assert.equal(p.b.stats().malformed % bad.length, 0);
  closePair(p);
});
