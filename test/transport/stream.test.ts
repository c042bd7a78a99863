// Stream's direct path (attachSink / writeDirect / resumeSink, what the gateway's splice uses),
// between two real Connections (test/transport/link.ts): bytes in order past the Duplex's
// buffers, the same credit and backpressure as the Duplex API, and the Duplex's lifecycle kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { once } from 'node:events';
import type { Stream, StreamSink } from '../../src/transport/stream.ts';
import { closePair, makePair, nextStream, withTimeout } from './link.ts';

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A sink that collects what it gets and answers onData with `room()`. */
function collector(room: () => boolean = () => true): StreamSink & { chunks: Buffer[]; ends: number; writable: number } {
  const c = {
    chunks: [] as Buffer[],
    ends: 0,
    writable: 0,
    onData(chunk: Buffer): boolean {
      c.chunks.push(Buffer.from(chunk)); // a view into the packet: copied to keep
      return room();
    },
    onEnd(): void {
      c.ends++;
    },
    onWritable(): void {
      c.writable++;
    },
  };
  return c;
}

/** Counts the Duplex machinery a stream goes through. */
function spyDuplex(s: Stream): { pushes: number; writes: number } {
  const n = { pushes: 0, writes: 0 };
  const push = s.push.bind(s);
  s.push = (chunk: unknown, enc?: BufferEncoding) => {
    if (chunk !== null) n.pushes++;
    return push(chunk, enc);
  };
  const w = s._write.bind(s);
  s._write = (...a: Parameters<typeof w>) => {
    n.writes++;
    return w(...a);
  };
  const wv = s._writev.bind(s);
  s._writev = (...a: Parameters<typeof wv>) => {
    n.writes++;
    return wv(...a);
  };
  return n;
}

test('attachSink: the bytes reach the sink in order without push(), the FIN as onEnd, and the Duplex still ends and closes', async () => {
  const p = makePair();
  try {
    const accepted = nextStream(p.b);
    const a = p.a.openStream(80);
    a.write('x'); // the peer learns of the stream
    const b = await accepted;
    const spy = spyDuplex(b);
    const sink = collector();
    assert.equal(b.attachSink(sink), true);
    assert.equal(b.attachSink(collector()), false, 'one sink only');
    const body = crypto.randomBytes(3 * 1024 * 1024);
    a.end(body);
    const ended = once(b, 'end');
    await withTimeout(
      (async () => {
        while (sink.ends === 0) await tick(5);
      })(),
      10_000,
      'onEnd',
    );
    assert.deepEqual(Buffer.concat(sink.chunks), Buffer.concat([Buffer.from('x'), body]));
    assert.equal(sink.ends, 1);
    assert.equal(spy.pushes, 0, 'no chunk went through the Readable');
    assert.ok(sink.chunks.length > 1000, 'one call per packet');
    await withTimeout(ended, 2000, "the Readable's 'end'");
    const closed = once(b, 'close');
    b.end();
    await withTimeout(closed, 5000, "'close' once both sides are done");
  } finally {
    closePair(p);
  }
});

test('writeDirect: bytes go straight into the send buffer (not the Writable), arrive intact, and end() after them sends the FIN', async () => {
  const p = makePair();
  try {
    const a = p.a.openStream(80);
    const spy = spyDuplex(a);
    assert.equal(a.attachSink(collector()), true);
    const accepted = nextStream(p.b);
    const body = crypto.randomBytes(2 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 64 * 1024) a.writeDirect(body.subarray(i, i + 64 * 1024)); // more than sendAhead: it keeps them
    const finished = once(a, 'finish');
    a.end();
    const b = await accepted;
    const parts: Buffer[] = [];
    b.on('data', (c: Buffer) => parts.push(c));
    await withTimeout(once(b, 'end'), 10_000, 'the peer reads to the FIN');
    assert.deepEqual(Buffer.concat(parts), body);
    assert.equal(spy.writes, 0, "nothing went through the Duplex's Writable");
    assert.equal(a.bytesWrittenTotal, body.length);
    await withTimeout(finished, 5000, "'finish' after the peer acked everything");
  } finally {
    closePair(p);
  }
});

test('writeDirect says false once sendAhead bytes wait unsent, and onWritable comes when the peer takes them', async () => {
  // a 64 KiB window: sendAhead is 64 KiB too, the peer's stream credit 256 KiB (the protocol's initial)
  const p = makePair({}, { streamWindow: 64 * 1024 });
  try {
    const accepted = nextStream(p.b);
    const a = p.a.openStream(80);
    const sink = collector();
    a.attachSink(sink);
    a.writeDirect(Buffer.from('hi'));
    const b = await accepted; // not read: its credit runs out
    const body = crypto.randomBytes(8 * 1024 * 1024); // far more than the peer's credit and Readable buffer
    let off = 0;
    let seen = 0;
    while (off < body.length) {
      const ok = a.writeDirect(body.subarray(off, off + 16 * 1024));
      off += 16 * 1024;
      if (!ok) {
        seen = sink.writable;
        await tick(50);
        if (sink.writable === seen) break; // still held: the peer's credit is used up
      }
    }
    await tick(100);
    assert.ok(off < body.length, 'writeDirect said false and stayed so while the peer did not read');
    assert.equal(sink.writable, seen, 'no onWritable while the backlog stays');
    assert.ok(a.sendBuf.unsent() >= 64 * 1024, 'sendAhead bytes wait unsent');
    const parts: Buffer[] = [];
    b.on('data', (c: Buffer) => parts.push(c));
    await withTimeout(
      (async () => {
        while (sink.writable === seen) await tick(5);
      })(),
      5000,
      'onWritable once the peer reads',
    );
    while (off < body.length) {
      if (!a.writeDirect(body.subarray(off, off + 16 * 1024))) {
        const seen = sink.writable;
        await withTimeout(
          (async () => {
            while (sink.writable === seen) await tick(2);
          })(),
          5000,
          'onWritable',
        );
      }
      off += 16 * 1024;
    }
    a.end();
    await withTimeout(once(b, 'end'), 10_000, 'FIN');
    assert.deepEqual(Buffer.concat(parts), Buffer.concat([Buffer.from('hi'), body]));
  } finally {
    closePair(p);
  }
});

test("a sink that says false holds the peer's credit until resumeSink()", async () => {
  const p = makePair({}, { streamWindow: 64 * 1024 });
  try {
    const accepted = nextStream(p.b);
    const a = p.a.openStream(80);
    a.write('x');
    const b = await accepted;
    let room = false;
    const sink = collector(() => room);
    b.attachSink(sink);
    const body = crypto.randomBytes(4 * 1024 * 1024);
    const done = (async () => {
      for (let i = 0; i < body.length; i += 64 * 1024) if (!a.write(body.subarray(i, i + 64 * 1024))) await once(a, 'drain');
      a.end();
    })();
    done.catch(() => {}); // awaited below; a failed assertion first must not leave it unhandled
    await tick(300);
    const got = sink.chunks.reduce((n, c) => n + c.length, 0);
    // the credit the receiver had granted when the sink first said false bounds what the sender could send
    assert.ok(got <= 256 * 1024 + 1, `the sender stopped at the credit it had: ${got} bytes delivered`);
    assert.ok(b.localMaxStreamData <= 256 * 1024 + 64 * 1024, `no credit granted while the sink is full: ${b.localMaxStreamData}`);
    room = true;
    b.resumeSink();
    await withTimeout(done, 10_000, 'the writer finishes once the sink takes more');
    await withTimeout(
      (async () => {
        while (sink.ends === 0) await tick(5);
      })(),
      10_000,
      'onEnd',
    );
    assert.deepEqual(Buffer.concat(sink.chunks), Buffer.concat([Buffer.from('x'), body]));
  } finally {
    closePair(p);
  }
});

test('attachSink after bytes and the FIN arrived: the held bytes first, in order, then onEnd', async () => {
  const p = makePair();
  try {
    const accepted = nextStream(p.b);
    const a = p.a.openStream(80);
    a.end(Buffer.from('early bytes'));
    const b = await accepted;
    await tick(50); // the data and the FIN are in b's Readable
    assert.ok(b.readableLength > 0);
    const sink = collector();
    assert.equal(b.attachSink(sink), true);
    assert.equal(Buffer.concat(sink.chunks).toString(), 'early bytes');
    assert.equal(sink.ends, 1);
    b.on('data', () => assert.fail('nothing may flow out of the Readable as well'));
    await withTimeout(once(b, 'end'), 2000, "the Readable's 'end'");
  } finally {
    closePair(p);
  }
});

test("bytes the Readable held when the sink came, refused by it: the peer's credit stays where it was until resumeSink()", async () => {
  const p = makePair({}, { streamWindow: 64 * 1024 });
  try {
    const accepted = nextStream(p.b);
    const a = p.a.openStream(80);
    const body = crypto.randomBytes(2 * 1024 * 1024);
    const done = (async () => {
      for (let i = 0; i < body.length; i += 64 * 1024) if (!a.write(body.subarray(i, i + 64 * 1024))) await once(a, 'drain');
      a.end();
    })();
    done.catch(() => {}); // awaited below; a failed assertion first must not leave it unhandled
    const b = await accepted;
    await tick(200); // b's Readable fills to its high-water mark and stops the credit
    const credit = b.localMaxStreamData;
    assert.ok(b.readableLength >= 256 * 1024, `the Readable holds ${b.readableLength} bytes`);
    let room = false;
    const sink = collector(() => room);
    assert.equal(b.attachSink(sink), true);
    assert.equal(sink.chunks.length, 1, 'the held bytes, in one chunk');
    await tick(300);
    assert.equal(b.localMaxStreamData, credit, 'no credit for bytes the sink refused');
    room = true;
    b.resumeSink();
    await withTimeout(done, 10_000, 'the writer finishes');
    await withTimeout(
      (async () => {
        while (sink.ends === 0) await tick(5);
      })(),
      10_000,
      'onEnd',
    );
    assert.deepEqual(Buffer.concat(sink.chunks), body);
  } finally {
    closePair(p);
  }
});

test('attachSink is refused (and changes nothing) while the stream is read or its Writable holds bytes', async () => {
  const p = makePair({}, { streamWindow: 64 * 1024 });
  try {
    const accepted = nextStream(p.b);
    const a = p.a.openStream(80);
    a.write('x');
    const b = await accepted;
    b.on('data', () => {});
    assert.equal(b.attachSink(collector()), false, 'someone reads it');
    // more than sendAhead written and not yet sent: the Writable holds the callback
    a.write(crypto.randomBytes(512 * 1024));
    a.write(Buffer.from('queued'));
    assert.ok(a.writableLength > 0);
    assert.equal(a.attachSink(collector()), false, 'writeDirect would overtake the queued bytes');
  } finally {
    closePair(p);
  }
});
