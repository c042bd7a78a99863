// splice() on a real loopback TCP connection and, first, an in-memory Duplex (joined with pipe()),
// then the overlay's own stream between two real Connections (the direct path; the gateway
// suites cover both daemons end to end).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { splice } from '../../src/gateway/splice.ts';
import type { Stream } from '../../src/transport/stream.ts';
import { closePair, makePair, nextStream } from '../transport/link.ts';

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

// ---- the overlay's own stream: the direct path (Stream.attachSink / writeDirect), two real
// Connections back to back (test/transport/link.ts) and a real loopback TCP connection ----

/** A spliced overlay stream: `near` TCP <-> stream `ns` (splice) ... stream `fs` at the peer. */
async function overlaySplice(opts: Parameters<typeof makePair>[1] = {}): Promise<{
  near: net.Socket;
  far: net.Socket;
  ns: Stream;
  fs: Stream;
  duplexCalls: { pushes: number; writes: number };
  done: () => void;
}> {
  const pair = makePair({}, opts);
  const [near, far, close] = await tcpPair();
  const accepted = nextStream(pair.b);
  const ns = pair.a.openStream(80);
  // the Duplex machinery the direct path skips: counted, so a silent fallback to pipe() fails the tests
  const duplexCalls = { pushes: 0, writes: 0 };
  const push = ns.push.bind(ns);
  ns.push = (chunk: unknown, enc?: BufferEncoding) => {
    if (chunk !== null) duplexCalls.pushes++;
    return push(chunk, enc);
  };
  const w = ns._write.bind(ns);
  ns._write = (...a: Parameters<typeof w>) => {
    duplexCalls.writes++;
    return w(...a);
  };
  const wv = ns._writev.bind(ns);
  ns._writev = (...a: Parameters<typeof wv>) => {
    duplexCalls.writes++;
    return wv(...a);
  };
  splice(near, ns);
  far.write('open'); // the peer learns of the stream with the first bytes
  const fs = await accepted;
  const hello = Buffer.alloc(4);
  let got = 0;
  await new Promise<void>((r) => {
    const onData = (c: Buffer): void => {
      c.copy(hello, got);
      got += c.length;
      if (got >= 4) {
        fs.off('data', onData);
        fs.pause();
        r();
      }
    };
    fs.on('data', onData);
  });
  assert.equal(hello.toString(), 'open');
  return {
    near,
    far,
    ns,
    fs,
    duplexCalls,
    done: () => {
      near.destroy();
      far.destroy();
      close();
      closePair(pair);
    },
  };
}

test('splice, overlay stream: bytes both ways intact past the Duplex buffers, and each FIN maps to a FIN', async () => {
  const o = await overlaySplice();
  try {
    const down = crypto.randomBytes(3_000_000);
    const up = crypto.randomBytes(2_000_000);
    const got = readAll(o.far);
    const parts: Buffer[] = [];
    o.fs.on('data', (c: Buffer) => parts.push(c));
    o.fs.resume();
    const upEnd = once(o.fs, 'end');
    const closed = once(o.ns, 'close');
    o.fs.end(down);
    o.far.end(up);
    assert.deepEqual(await got, down, 'the overlay FIN reached the TCP client as a FIN, after every byte');
    await upEnd;
    assert.deepEqual(Buffer.concat(parts), up, 'the TCP FIN reached the peer as the stream FIN, after every byte');
    assert.deepEqual(o.duplexCalls, { pushes: 0, writes: 0 }, "no chunk went through the Duplex's Readable or Writable");
    await closed; // the Duplex still finishes: both sides done
  } finally {
    o.done();
  }
});

test('splice, overlay stream: a lone chunk is written to the socket inside the packet that brought it; a burst in one turn goes in one writev', async () => {
  const o = await overlaySplice();
  try {
    let writes = 0;
    let writevs = 0;
    const w = o.near._write.bind(o.near);
    const wv = o.near._writev!.bind(o.near);
    o.near._write = (...a: Parameters<typeof w>) => {
      writes++;
      return w(...a);
    };
    o.near._writev = (...a: Parameters<typeof wv>) => {
      writevs++;
      return wv(...a);
    };
    const got: Buffer[] = [];
    o.far.on('data', (c: Buffer) => got.push(c));
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 40)); // a turn of its own, nothing in flight (the last ACK is back)
      const before = writes;
      o.fs.write(Buffer.from([0x2a + i]));
      await new Promise((r) => setImmediate(r)); // the link hands the packet over on the next turn
      assert.equal(writes, before + 1, `chunk ${i + 1} was not written in the turn that received it`);
    }
    // a burst: 64 packets that the link delivers in one turn
    await new Promise((r) => setTimeout(r, 40));
    const w0 = writes + writevs;
    const body = crypto.randomBytes(64 * 1100);
    o.fs.cork();
    for (let i = 0; i < body.length; i += 1100) o.fs.write(body.subarray(i, i + 1100));
    o.fs.uncork();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(writes + writevs - w0 <= 8, `a 64-packet burst took ${writes - w0} write() and ${writevs} writev() calls`);
    assert.deepEqual(Buffer.concat(got), Buffer.concat([Buffer.from([0x2a, 0x2b, 0x2c]), body]));
    assert.equal(o.duplexCalls.pushes, 0);
  } finally {
    o.done();
  }
});

test('splice, overlay stream: a TCP reader that stops stops the peer (no credit), and nothing is lost when it resumes', async () => {
  const o = await overlaySplice({ streamWindow: 64 * 1024 });
  try {
    o.far.pause();
    const body = crypto.randomBytes(32 * 1024 * 1024);
    let off = 0;
    let stalled = false;
    const writer = (async () => {
      while (off < body.length) {
        const ok = o.fs.write(body.subarray(off, off + 64 * 1024));
        off += 64 * 1024;
        if (!ok) await once(o.fs, 'drain');
      }
      o.fs.end();
    })();
    writer.catch(() => {});
    // the writer stalls: the splice stopped the credit when the TCP socket filled up
    for (let i = 0; i < 100 && !stalled; i++) {
      const at = off;
      await new Promise((r) => setTimeout(r, 100));
      stalled = off === at && off < body.length;
    }
    assert.ok(stalled, `the peer's writer never stalled (${off} of ${body.length} bytes written)`);
    // no credit while the reader is stopped: what sits in between is bounded by the credit granted before
    const credit = o.ns.localMaxStreamData;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(o.ns.localMaxStreamData, credit, 'no MAX_STREAM_DATA while the TCP reader is stopped');
    assert.ok(o.ns.bytesDelivered <= credit);
    const got = readAll(o.far);
    o.far.resume();
    await writer;
    assert.deepEqual(await got, body);
    assert.deepEqual(o.duplexCalls, { pushes: 0, writes: 0 }, 'the direct path, not pipe()');
  } finally {
    o.done();
  }
});

test('splice, overlay stream: a peer that stops reading pauses the TCP socket (backpressure), and nothing is lost when it resumes', async () => {
  const o = await overlaySplice({ streamWindow: 64 * 1024 });
  try {
    const body = crypto.randomBytes(32 * 1024 * 1024);
    let off = 0;
    let stalled = false;
    const writer = (async () => {
      while (off < body.length) {
        const ok = o.far.write(body.subarray(off, off + 64 * 1024));
        off += 64 * 1024;
        if (!ok) await once(o.far, 'drain');
      }
      o.far.end();
    })();
    writer.catch(() => {});
    for (let i = 0; i < 100 && !stalled; i++) {
      const at = off;
      await new Promise((r) => setTimeout(r, 100));
      stalled = off === at && off < body.length;
    }
    assert.ok(stalled, `the TCP client never stalled (${off} of ${body.length} bytes written)`);
    assert.ok(o.near.isPaused(), 'the spliced socket is paused');
    assert.ok(o.ns.sendBuf.unsent() < 2 * 1024 * 1024, `bounded buffering in the stream: ${o.ns.sendBuf.unsent()} bytes unsent`);
    const parts: Buffer[] = [];
    o.fs.on('data', (c: Buffer) => parts.push(c));
    const end = once(o.fs, 'end');
    o.fs.resume();
    await writer;
    await end;
    assert.deepEqual(Buffer.concat(parts), body);
    assert.deepEqual(o.duplexCalls, { pushes: 0, writes: 0 }, 'the direct path, not pipe()');
  } finally {
    o.done();
  }
});

test('splice, overlay stream: a TCP RST resets the stream (the peer sees an error, not an end)', async () => {
  const o = await overlaySplice();
  try {
    o.fs.write('partial reply');
    await new Promise((r) => setTimeout(r, 50));
    const err = once(o.fs, 'error');
    o.fs.on('end', () => assert.fail('a clean end would hide the truncation'));
    o.far.resetAndDestroy();
    const [e] = (await err) as [NodeJS.ErrnoException];
    assert.equal(e.code, 'CONNECTION_RESET');
  } finally {
    o.done();
  }
});

test('splice, overlay stream: a stream reset becomes a TCP RST, never a clean end', async () => {
  const o = await overlaySplice();
  try {
    const got: Buffer[] = [];
    o.far.on('data', (c: Buffer) => got.push(c));
    let ended = false;
    o.far.on('end', () => (ended = true));
    const err = once(o.far, 'error');
    o.fs.write('half a resp');
    await new Promise((r) => setTimeout(r, 50));
    o.fs.on('error', () => {}); // its own error, emitted on it too
    o.fs.destroy(new Error('the service crashed'));
    const [e] = (await err) as [NodeJS.ErrnoException];
    assert.equal(e.code, 'ECONNRESET');
    assert.equal(ended, false);
    assert.equal(Buffer.concat(got).toString(), 'half a resp');
  } finally {
    o.done();
  }
});

test('splice, overlay stream: bytes and the FIN that arrived before the splice reach the socket first, in order', async () => {
  const pair = makePair();
  const [near, far, close] = await tcpPair();
  try {
    const accepted = nextStream(pair.b);
    const s = pair.a.openStream(80);
    s.end(Buffer.from('arrived before the local connection was up'));
    const fs = await accepted;
    await new Promise((r) => setTimeout(r, 50)); // held in fs's Readable, as when expose's connect() is slow
    const got = readAll(far);
    splice(near, fs);
    far.end();
    assert.equal((await got).toString(), 'arrived before the local connection was up');
  } finally {
    near.destroy();
    far.destroy();
    close();
    closePair(pair);
  }
});
