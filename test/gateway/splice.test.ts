// splice() on a real loopback TCP connection and an in-memory Duplex standing in for the
// overlay stream (the overlay's own stream is covered by the gateway suites end to end).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { splice } from '../../src/gateway/splice.ts';

/** A connected loopback pair: [the socket splice() gets, the far end]. */
async function tcpPair(): Promise<[net.Socket, net.Socket, () => void]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const near = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => near.once('connect', r));
  return [near, await accepted, () => server.close()];
}

/** A Duplex whose readable side the test pushes into and whose written bytes it collects. */
function fakeStream(): { stream: Duplex; written: Buffer[]; ended: Promise<void> } {
  const written: Buffer[] = [];
  let onEnd!: () => void;
  const ended = new Promise<void>((r) => (onEnd = r));
  const stream = new Duplex({
    allowHalfOpen: true,
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(chunk);
      cb();
    },
    final(cb) {
      onEnd();
      cb();
    },
  });
  return { stream, written, ended };
}

const readAll = (s: net.Socket): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });

test('splice: bytes both ways intact, and each FIN maps to a FIN', async () => {
  const [near, far, close] = await tcpPair();
  const { stream, written, ended } = fakeStream();
  splice(near, stream);
  const down = crypto.randomBytes(300_000);
  const up = crypto.randomBytes(200_000);
  const got = readAll(far);
  for (let i = 0; i < down.length; i += 1200) stream.push(down.subarray(i, i + 1200));
  stream.push(null);
  far.end(up);
  assert.deepEqual(await got, down);
  await ended;
  assert.deepEqual(Buffer.concat(written), up);
  near.destroy();
  far.destroy();
  close();
});

test('splice: the packet-sized chunks of one event-loop turn reach the socket in one writev, not one write each', async () => {
  const [near, far, close] = await tcpPair();
  const { stream } = fakeStream();
  let writes = 0;
  let writevs = 0;
  const w = near._write.bind(near);
  const wv = near._writev!.bind(near);
  near._write = (...a: Parameters<typeof w>) => {
    writes++;
    return w(...a);
  };
  near._writev = (...a: Parameters<typeof wv>) => {
    writevs++;
    return wv(...a);
  };
  splice(near, stream);
  const body = crypto.randomBytes(64 * 1200);
  const got = readAll(far);
  for (let i = 0; i < body.length; i += 1200) stream.push(body.subarray(i, i + 1200)); // one turn: 64 packets' worth
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  try {
    assert.ok(writes + writevs <= 4, `64 chunks took ${writes} write() and ${writevs} writev() calls`);
    stream.push(null);
    assert.deepEqual(await got, body);
  } finally {
    near.destroy();
    far.destroy();
    close();
  }
});

test('splice: a lone chunk (a request or a reply) is written to the socket at once, not at the end of the turn', async () => {
  const [near, far, close] = await tcpPair();
  const { stream } = fakeStream();
  let writes = 0;
  const w = near._write.bind(near);
  near._write = (...a: Parameters<typeof w>) => {
    writes++;
    return w(...a);
  };
  splice(near, stream);
  const got = new Promise<Buffer>((r) => far.once('data', r));
  try {
    for (let i = 0; i < 3; i++) {
      // a turn of its own each time: the previous turn's setImmediate has run
      await new Promise((r) => setImmediate(r));
      stream.push(Buffer.from([0x2a + i]));
      // still inside push(): no setImmediate, timer or other turn has run yet
      assert.equal(writes, i + 1, `chunk ${i + 1} waited for the end of the event-loop turn`);
      assert.equal(near.writableLength, 0, 'the byte went to the kernel, not into a buffer');
    }
    const first = await got;
    assert.equal(first[0], 0x2a);
  } finally {
    near.destroy();
    far.destroy();
    close();
  }
});

test('splice: a reader that stops pauses the stream (backpressure), and nothing is lost when it resumes', async () => {
  const [near, far, close] = await tcpPair();
  const stream = new PassThrough({ allowHalfOpen: true });
  splice(near, stream);
  far.pause();
  const body = crypto.randomBytes(16 * 1024 * 1024);
  let refusedAt = -1;
  const done = (async () => {
    for (let i = 0; i < body.length; i += 1200) {
      if (stream.write(body.subarray(i, i + 1200))) continue;
      if (refusedAt < 0) refusedAt = i;
      await once(stream, 'drain');
    }
    stream.end();
  })();
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(refusedAt >= 0, 'the stream saw backpressure from the stopped reader');
  const got = readAll(far);
  far.resume();
  await done;
  assert.deepEqual(await got, body);
  near.destroy();
  far.destroy();
  close();
});
