// The small pieces: varints, frame codec, range sets, ack tracker, send and receive buffers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reader, VARINT_MAX, varintLen, writeVarint } from '../../src/transport/varint.ts';
import {
  Frame,
  Kind,
  ParsedPacket,
  datagramFrameLen,
  streamHeaderLen,
  writeConnectionClose,
  writeConnValue,
  writeDatagram,
  writeResetStream,
  writeStopSending,
  writeStreamHeader,
  writeStreamValue,
} from '../../src/transport/frames.ts';
import { RangeSet } from '../../src/transport/range-set.ts';
import { AckTracker } from '../../src/transport/ack-tracker.ts';
import { SendBuffer } from '../../src/transport/send-buffer.ts';
import { RecvBuffer } from '../../src/transport/recv-buffer.ts';
import { prng } from './link.ts';

test('varints round-trip at every length boundary and refuse > 2^53', () => {
  const r = new Reader();
  const buf = Buffer.alloc(16);
  for (const n of [0, 1, 63, 64, 16383, 16384, 2 ** 30 - 1, 2 ** 30, 2 ** 32, 2 ** 40 + 5, VARINT_MAX]) {
    const end = writeVarint(buf, 0, n);
    assert.equal(end, varintLen(n), `len of ${n}`);
    r.reset(buf, 0, end);
    assert.equal(r.varint(), n);
    assert.ok(r.ok);
    r.reset(buf, 0, end - 1); // truncated
    assert.equal(r.varint(), 0);
    assert.equal(r.ok, false);
  }
  // 2^62 - 1 is valid QUIC but not a safe JS integer: refused, not rounded
  r.reset(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, 8);
  r.varint();
  assert.equal(r.ok, false);
  assert.throws(() => writeVarint(buf, 0, 2 ** 60));
  r.reset(Buffer.from([1, 2]), 0, 2);
  assert.equal(r.u16(), 0x0102);
  assert.equal(r.u8(), 0);
  assert.equal(r.ok, false);
  r.reset(Buffer.from([1, 2, 3]), 0, 3);
  assert.deepEqual([...r.bytes(2)], [1, 2]);
  r.bytes(2);
  assert.equal(r.ok, false);
});

test('every frame type round-trips through the parser', () => {
  const buf = Buffer.alloc(2000);
  let pos = writeVarint(buf, 0, 123456);
  const data = Buffer.from('hello world');
  pos = writeStreamHeader(buf, pos, 5, 0, data.length, false, true, 80, 49152, true);
  data.copy(buf, pos);
  pos += data.length;
  pos = writeResetStream(buf, pos, 7, 2, 99999);
  pos = writeStopSending(buf, pos, 9, 3);
  pos = writeConnValue(buf, pos, Frame.MaxData, 2 ** 40);
  pos = writeStreamValue(buf, pos, Frame.MaxStreamData, 11, 777);
  pos = writeConnValue(buf, pos, Frame.DataBlocked, 5);
  pos = writeStreamValue(buf, pos, Frame.StreamDataBlocked, 13, 6);
  buf[pos++] = Frame.Ping;
  buf[pos++] = Frame.Padding;
  buf[pos++] = Frame.ImmediateAck;
  const before = pos;
  pos = writeDatagram(buf, pos, 7, 8, Buffer.from('dg'));
  assert.equal(pos - before, datagramFrameLen(2));
  pos = writeConnectionClose(buf, pos, 1, Buffer.from('bye'));
  // last: a STREAM frame without length, with offset and FIN
  const h = streamHeaderLen(15, 1_000_000, 3, false, false);
  const hs = pos;
  pos = writeStreamHeader(buf, pos, 15, 1_000_000, 3, true, false, 0, 0, false);
  assert.equal(pos - hs, h);
  buf.write('end', pos);
  pos += 3;

  const p = new ParsedPacket();
  assert.ok(p.parse(buf.subarray(0, pos)));
  assert.equal(p.pn, 123456);
  assert.ok(p.ackEliciting);
  assert.ok(p.immediateAck);
  const f = p.frames.slice(0, p.count);
  assert.deepEqual(
    f.map((x) => x.kind),
    [
      Kind.Stream,
      Kind.ResetStream,
      Kind.StopSending,
      Kind.MaxData,
      Kind.MaxStreamData,
      Kind.DataBlocked,
      Kind.StreamDataBlocked,
      Kind.Ping,
      Kind.ImmediateAck,
      Kind.Datagram,
      Kind.ConnectionClose,
      Kind.Stream,
    ],
  );
  assert.equal(f[0]!.id, 5);
  assert.equal(f[0]!.open, true);
  assert.equal(f[0]!.dstPort, 80);
  assert.equal(f[0]!.srcPort, 49152);
  assert.equal(f[0]!.offset, 0);
  assert.equal(f[0]!.fin, false);
  assert.equal(f[0]!.data!.toString(), 'hello world');
  assert.deepEqual([f[1]!.id, f[1]!.code, f[1]!.offset], [7, 2, 99999]);
  assert.deepEqual([f[2]!.id, f[2]!.code], [9, 3]);
  assert.equal(f[3]!.offset, 2 ** 40);
  assert.deepEqual([f[4]!.id, f[4]!.offset], [11, 777]);
  assert.deepEqual([f[9]!.srcPort, f[9]!.dstPort, f[9]!.data!.toString()], [7, 8, 'dg']);
  assert.deepEqual([f[10]!.code, f[10]!.data!.toString()], [1, 'bye']);
  assert.deepEqual([f[11]!.id, f[11]!.offset, f[11]!.fin, f[11]!.data!.toString()], [15, 1_000_000, true, 'end']);
  // the stream payload is a view into the packet, not a copy
  assert.equal(f[0]!.data!.buffer, buf.buffer);
});

test('an ACK-only packet is not ack-eliciting', () => {
  const t = new AckTracker(10);
  t.onPacket(0, true, 0);
  const buf = Buffer.alloc(100);
  let pos = writeVarint(buf, 0, 1);
  pos = t.write(buf, pos, 100, 0);
  const p = new ParsedPacket();
  assert.ok(p.parse(buf.subarray(0, pos)));
  assert.equal(p.ackEliciting, false);
});

test('RangeSet: merges, splits, membership', () => {
  const s = new RangeSet();
  assert.equal(s.add(10, 20), 10);
  assert.equal(s.add(30, 40), 10);
  assert.equal(s.add(20, 30), 10); // bridges the two
  assert.deepEqual(s.r, [10, 40]);
  assert.equal(s.add(15, 35), 0);
  assert.equal(s.add(0, 5), 5);
  assert.equal(s.add(50, 60), 10);
  assert.equal(s.add(45, 55), 5);
  assert.deepEqual(s.r, [0, 5, 10, 40, 45, 60]);
  assert.equal(s.add(3, 47), 10); // fills 5..10 and 40..45
  assert.deepEqual(s.r, [0, 60]);
  s.remove(10, 20);
  s.remove(30, 35);
  assert.deepEqual(s.r, [0, 10, 20, 30, 35, 60]);
  assert.ok(s.has(0) && s.has(9) && !s.has(10) && s.has(20) && !s.has(30) && s.has(59) && !s.has(60));
  s.remove(5, 50);
  assert.deepEqual(s.r, [0, 5, 50, 60]);
  s.shift();
  assert.deepEqual(s.r, [50, 60]);
});

test('RangeSet agrees with a plain set under random operations', () => {
  const rand = prng(1);
  const s = new RangeSet();
  const ref = new Set<number>();
  for (let i = 0; i < 3000; i++) {
    const a = Math.floor(rand() * 500);
    const b = a + 1 + Math.floor(rand() * 20);
    if (rand() < 0.7) {
      let fresh = 0;
      for (let x = a; x < b; x++) if (!ref.has(x)) ref.add(x), fresh++;
      assert.equal(s.add(a, b), fresh);
    } else {
      for (let x = a; x < b; x++) ref.delete(x);
      s.remove(a, b);
    }
    for (let k = 0; k + 1 < s.r.length; k++) assert.ok(s.r[k]! < s.r[k + 1]!, 'sorted, disjoint, non-adjacent');
  }
  for (let x = 0; x < 530; x++) assert.equal(s.has(x), ref.has(x), `value ${x}`);
});

test('AckTracker: ack policy and selective ranges that parse back', () => {
  const t = new AckTracker(10);
  assert.ok(t.onPacket(0, true, 0));
  assert.equal(t.due(0), false); // one packet: delayed
  assert.equal(t.deadline, 10);
  assert.equal(t.due(10), true);
  assert.ok(t.onPacket(1, true, 1));
  assert.equal(t.due(1), true); // every second packet
  assert.equal(t.onPacket(1, true, 1), false); // duplicate
  const buf = Buffer.alloc(200);
  let pos = writeVarint(buf, 0, 0);
  pos = t.write(buf, pos, 200, 1);
  t.onAckSent();
  assert.equal(t.due(5), false);
  // gaps: 2 lost, 3..4 received, 5 lost, 6 received -> immediate
  t.onPacket(3, true, 2);
  assert.equal(t.due(2), true);
  t.onPacket(4, true, 2);
  t.onPacket(6, false, 3);
  t.onPacket(9, true, 3.5, true);
  pos = writeVarint(buf, 0, 1);
  pos = t.write(buf, pos, 200, 4);
  const p = new ParsedPacket();
  assert.ok(p.parse(buf.subarray(0, pos)));
  const f = p.frames[0]!;
  assert.equal(f.kind, Kind.Ack);
  assert.equal(f.offset, 9);
  assert.equal(f.code, 496); // 0.5 ms in units of 8 us
  const ranges = p.ackRanges.slice(f.rangeStart, f.rangeStart + 2 * f.rangeCount);
  assert.deepEqual(ranges, [9, 9, 6, 6, 4, 3, 1, 0]);
  // once the peer acked our ACK up to 6, ranges at or below it are no longer repeated
  t.onAckAcked(6);
  pos = writeVarint(buf, 0, 2);
  pos = t.write(buf, pos, 200, 4);
  assert.ok(p.parse(buf.subarray(0, pos)));
  assert.deepEqual(p.ackRanges, [9, 9]);
  // a tight room limits the number of ranges but still yields a valid frame
  pos = writeVarint(buf, 0, 3);
  t.onAckAcked(-1);
  const end = t.write(buf, pos, 9, 4);
  assert.ok(end > pos && end - pos <= 9);
});

test('AckTracker forgets the oldest ranges beyond its limit and treats them as duplicates', () => {
  const t = new AckTracker(10);
  for (let pn = 0; pn < 2000; pn += 2) t.onPacket(pn, true, 0); // 1000 separate ranges
  assert.ok(t.received.size <= 512);
  assert.equal(t.onPacket(1, true, 0), false); // below the remembered window
  assert.equal(t.onPacket(1999, true, 0), true);
});

test('SendBuffer: new data, loss requeue, out-of-order acks, FIN', () => {
  const sb = new SendBuffer();
  sb.write(Buffer.from('abcdefghij'));
  sb.write(Buffer.from('klmnopqrst'));
  sb.end();
  assert.equal(sb.finOffset, 20);
  const out = Buffer.alloc(32);
  // 8 bytes, flow-control limit 15
  assert.ok(sb.peek(8, 15));
  assert.deepEqual([sb.outOff, sb.outLen, sb.outFin, sb.outNew], [0, 8, false, true]);
  sb.copyOut(out, 0, 0, 8);
  assert.equal(sb.commit(), 8);
  assert.ok(sb.peek(8, 15));
  assert.deepEqual([sb.outOff, sb.outLen], [8, 7]); // limited by flow control, spans both chunks
  sb.copyOut(out, 8, 8, 7);
  assert.equal(out.subarray(0, 15).toString(), 'abcdefghijklmno');
  sb.commit();
  assert.equal(sb.peek(8, 15), false);
  assert.ok(sb.blockedAt(15));
  assert.ok(sb.peek(100, 100));
  assert.deepEqual([sb.outOff, sb.outLen, sb.outFin], [15, 5, true]);
  sb.commit();
  // [8, 15) is lost, [15, 20)+FIN acked first, then [0, 8)
  sb.onLost(8, 7, false);
  sb.onAcked(15, 5, true);
  assert.equal(sb.done(), false);
  assert.ok(sb.peek(4, 100));
  assert.deepEqual([sb.outOff, sb.outLen, sb.outNew], [8, 4, false]);
  assert.equal(sb.commit(), 0);
  assert.ok(sb.peek(100, 100));
  assert.deepEqual([sb.outOff, sb.outLen], [12, 3]);
  sb.copyOut(out, 0, 12, 3);
  assert.equal(out.subarray(0, 3).toString(), 'mno');
  sb.commit();
  assert.equal(sb.peek(100, 100), false);
  sb.onAcked(0, 8, false);
  sb.onAcked(8, 7, false);
  assert.equal(sb.ackedFloor, 20);
  assert.ok(sb.done());
  // a loss reported after an ack of the same bytes requeues nothing
  sb.onLost(0, 20, true);
  assert.equal(sb.peek(100, 100), false);
});

test('SendBuffer: a bare FIN after all data was sent, and its loss', () => {
  const sb = new SendBuffer();
  sb.write(Buffer.from('xy'));
  assert.ok(sb.peek(10, 10));
  sb.commit();
  sb.end();
  assert.ok(sb.peek(10, 10));
  assert.deepEqual([sb.outOff, sb.outLen, sb.outFin], [2, 0, true]);
  sb.commit();
  assert.equal(sb.peek(10, 10), false);
  sb.onLost(2, 0, true);
  assert.ok(sb.peek(10, 10));
  assert.equal(sb.outFin, true);
});

class Sink {
  chunks: Buffer[] = [];
  ended = false;
  released = 0;
  deliver(d: Buffer): void {
    this.chunks.push(d);
  }
  deliverEnd(): void {
    this.ended = true;
  }
  release(n: number): void {
    this.released += n;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

test('RecvBuffer reassembles out-of-order, overlapping and duplicate pieces', () => {
  const sink = new Sink();
  const rb = new RecvBuffer(sink);
  const msg = 'the quick brown fox jumps over the lazy dog';
  const piece = (a: number, b: number): Buffer => Buffer.from(msg.slice(a, b));
  rb.insert(10, piece(10, 20), false);
  rb.insert(15, piece(15, 30), false); // overlaps the held piece
  rb.insert(25, piece(25, msg.length), true);
  assert.equal(rb.buffered, msg.length - 10);
  assert.equal(sink.chunks.length, 0);
  assert.equal(rb.check(0, 5, true), 1); // a FIN below data already received
  assert.equal(rb.check(40, 10, false), 1); // data beyond the final size
  rb.insert(0, piece(0, 12), false); // fills the gap
  assert.equal(sink.text(), msg);
  assert.ok(sink.ended);
  assert.equal(rb.buffered, 0);
  rb.insert(0, piece(0, 5), false); // late duplicate: ignored
  assert.equal(sink.text(), msg);
});

test('RecvBuffer agrees with the original under random fragments', () => {
  const rand = prng(7);
  const data = Buffer.alloc(20_000);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rand() * 256);
  const sink = new Sink();
  const rb = new RecvBuffer(sink);
  const frags: [number, number][] = [];
  for (let off = 0; off < data.length; ) {
    const len = 1 + Math.floor(rand() * 1200);
    frags.push([off, Math.min(data.length, off + len)]);
    off += len;
  }
  // every fragment twice, plus random overlapping slices, in random order
  const all = [...frags, ...frags];
  for (let i = 0; i < 200; i++) {
    const a = Math.floor(rand() * data.length);
    all.push([a, Math.min(data.length, a + 1 + Math.floor(rand() * 3000))]);
  }
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  for (const [a, b] of all) {
    const fin = b === data.length;
    if (rb.check(a, b - a, fin) === 0) rb.insert(a, data.subarray(a, b), fin);
  }
  assert.ok(Buffer.concat(sink.chunks).equals(data));
  assert.ok(sink.ended);
});

test('RecvBuffer in discard mode still counts flow-control credit', () => {
  const sink = new Sink();
  const rb = new RecvBuffer(sink);
  rb.insert(10, Buffer.alloc(10), false); // held out of order
  assert.equal(rb.discard(), 20); // everything up to the highest offset is given back
  rb.insert(20, Buffer.alloc(5), false);
  assert.equal(sink.released, 5);
  assert.equal(sink.chunks.length, 0);
  rb.insert(25, Buffer.alloc(0), true);
  assert.ok(sink.ended);
});
