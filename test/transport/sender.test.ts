// The send side alone (queues, send loop, packetizer), without a Connection: real streams on a
// fake host, real loss recovery, packets captured and parsed back. The clock is a number.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AckTracker } from '../../src/transport/ack-tracker.ts';
import { AppCode, CloseCode } from '../../src/transport/codes.ts';
import type { CongestionAlgorithm, WindowController } from '../../src/transport/congestion.ts';
import { ConnectionFlowControl, INITIAL_CONN_CREDIT } from '../../src/transport/flow-control.ts';
import { Frame, Kind, ParsedPacket, type ParsedFrame } from '../../src/transport/frames.ts';
import { Recovery } from '../../src/transport/recovery.ts';
import { FLUSH_BUDGET, Sender } from '../../src/transport/sender.ts';
import { ConnectionCounters } from '../../src/transport/stats.ts';
import { Stream, type StreamHost } from '../../src/transport/stream.ts';

const MSS = 1196;

interface Parsed {
  pn: number;
  immediateAck: boolean;
  frames: Array<Pick<ParsedFrame, 'kind' | 'id' | 'offset' | 'length' | 'fin' | 'open' | 'code'> & { data?: string }>;
}

function parse(buf: Buffer): Parsed {
  const p = new ParsedPacket();
  assert.ok(p.parse(buf), 'a well-formed packet');
  const frames = p.frames.slice(0, p.count).map((f) => ({
    kind: f.kind,
    id: f.id,
    offset: f.offset,
    length: f.length,
    fin: f.fin,
    open: f.open,
    code: f.code,
    ...(f.data !== null ? { data: f.data.toString() } : {}),
  }));
  return { pn: p.pn, immediateAck: p.immediateAck, frames };
}

function rig(opts: { maxPacket?: number; headroom?: number; tailroom?: number; cc?: CongestionAlgorithm } = {}) {
  let now = 1000;
  const packets: Buffer[] = [];
  const counters = new ConnectionCounters();
  const acks = new AckTracker(10);
  const flow = new ConnectionFlowControl<Stream>(1024 * 1024, 4 * 1024 * 1024);
  let sender: Sender;
  const recovery = new Recovery(
    opts.maxPacket ?? MSS,
    10,
    {
      onPacketAcked: (p) => sender.onPacketAcked(p),
      onPacketLost: (p) => void sender.onPacketLost(p),
    },
    opts.cc,
  );
  sender = new Sender(
    { transmit: (p) => packets.push(p) },
    { recovery, acks, flow, counters, maxPacket: opts.maxPacket ?? MSS, headroom: opts.headroom ?? 0, tailroom: opts.tailroom ?? 0 },
  );
  const host: StreamHost = {
    now: () => now,
    srttMs: () => recovery.rtt.smoothed,
    streamWantsSend: (s) => sender.enqueueStream(s),
    streamWritten: (s) => sender.enqueueStream(s),
    streamControl: (type, id, code, finalSize) => sender.queueControl(type, id, code, finalSize),
    streamCredit: (s) => void sender.queueCredit(s),
    streamConsumed: () => {},
    streamUpdated: () => {},
  };
  let nextId = 0;
  const cfg = { window: 1024 * 1024, maxWindow: 16 * 1024 * 1024, sendAhead: 1024 * 1024 };
  return {
    sender,
    recovery,
    acks,
    flow,
    counters,
    packets,
    /** A stream we opened, with `data` written. */
    stream(data = ''): Stream {
      const s = new Stream(host, nextId, 1000 + nextId, 7, true, cfg);
      nextId += 2;
      s.on('error', () => {});
      sender.enqueueStream(s);
      if (data.length > 0) s.sendBuf.write(Buffer.from(data));
      return s;
    },
    flush(): boolean {
      return sender.flush(now);
    },
    parsed(): Parsed[] {
      return packets.map(parse);
    },
    advance(ms: number) {
      now += ms;
    },
  };
}

test('one packet: ACK first, then control frames, credit, datagrams, stream data; the last of a flight asks for an immediate ACK', () => {
  const r = rig();
  r.acks.onPacket(0, true, 1000, true); // we owe the peer an ACK
  r.sender.queueControl(Frame.ResetStream, 9, AppCode.Refused, 0);
  r.flow.raise(1000, 50); // MAX_DATA due
  const peer = new Stream(
    {
      now: () => 0,
      srttMs: () => 1,
      streamWantsSend: () => {},
      streamWritten: () => {},
      streamControl: () => {},
      streamCredit: () => {},
      streamConsumed: () => {},
      streamUpdated: () => {},
    },
    3,
    7,
    1000,
    false,
    { window: 64 * 1024, maxWindow: 64 * 1024, sendAhead: 64 * 1024 },
  );
  assert.equal(r.sender.queueCredit(peer), true);
  assert.equal(r.sender.queueCredit(peer), false, 'once');
  assert.equal(r.sender.datagrams.push(5, 6, Buffer.from('dg')), true);
  r.stream('hello');
  assert.equal(r.sender.hasQueued(), true);
  assert.equal(r.flush(), false, 'all sent');
  assert.equal(r.packets.length, 1);
  const [p] = r.parsed();
  assert.deepEqual(
    p!.frames.map((f) => f.kind),
    [Kind.Ack, Kind.ImmediateAck, Kind.ResetStream, Kind.MaxData, Kind.MaxStreamData, Kind.Datagram, Kind.Stream],
  );
  const stream = p!.frames.at(-1)!;
  assert.deepEqual([stream.id, stream.open, stream.data], [0, true, 'hello']);
  assert.equal(r.flow.pending, false);
  assert.equal(r.sender.hasQueued(), false);
  assert.equal(r.counters.packetsSent, 1);
  assert.equal(r.counters.datagramsSent, 1);
});

test('a new stream with nothing written still announces itself (an empty opening frame)', () => {
  const r = rig();
  r.stream();
  r.flush();
  const f = r.parsed()[0]!.frames.find((x) => x.kind === Kind.Stream)!;
  assert.deepEqual([f.id, f.open, f.length], [0, true, 0]);
});

test('round-robin: each packet starts with the next stream', () => {
  const r = rig();
  r.stream('a'.repeat(3000));
  r.stream('b'.repeat(3000));
  r.flush();
  const firstIds = r.parsed().map((p) => p.frames.find((f) => f.kind === Kind.Stream)!.id);
  assert.ok(firstIds.length >= 5);
  assert.deepEqual(firstIds.slice(0, 4), [0, 2, 0, 2]);
});

test('a full congestion window holds data back but not control frames', () => {
  const r = rig();
  const s = r.stream('x'.repeat(100 * MSS));
  r.flush();
  const cc = r.recovery.cc;
  const sent = r.packets.length;
  assert.ok(cc.bytesInFlight + MSS > cc.cwnd, 'window full');
  assert.equal(cc.appLimited, false, 'window-limited, not app-limited');
  r.sender.queueControl(Frame.StopSending, s.id, AppCode.Refused, 0);
  r.flush();
  assert.equal(r.packets.length, sent + 1);
  const last = r.parsed().at(-1)!;
  assert.deepEqual(
    last.frames.map((f) => f.kind),
    [Kind.ImmediateAck, Kind.StopSending],
  );
});

test('connection credit: a stream that used up the last of it waits for MAX_DATA (not stalled for good)', () => {
  const r = rig();
  r.flow.onSent(INITIAL_CONN_CREDIT - 100); // other streams used the rest
  const s = r.stream('y'.repeat(1000));
  r.flush();
  const f = r.parsed()[0]!.frames.find((x) => x.kind === Kind.Stream)!;
  assert.equal(f.length, 100, 'only what the connection credit allows');
  assert.equal(r.flow.sendRoom(), 0);
  assert.equal(r.sender.hasQueued(), false, 'nothing sendable now');
  assert.deepEqual(r.flow.takeBlocked(), [s], 'parked for MAX_DATA');
});

test('probe timeout with nothing new: the oldest unacked data again, with an immediate ACK', () => {
  const r = rig();
  r.stream('ping');
  r.flush();
  assert.equal(r.packets.length, 1);
  r.sender.onProbeTimeout();
  r.flush();
  const ps = r.parsed();
  assert.ok(ps.length >= 2);
  const probe = ps[1]!;
  assert.equal(probe.immediateAck, true);
  const f = probe.frames.find((x) => x.kind === Kind.Stream)!;
  assert.deepEqual([f.offset, f.data], [0, 'ping']);
  assert.equal(r.counters.retransmittedBytes, 4);
});

test('probe timeout with nothing at all: two packets with only IMMEDIATE_ACK', () => {
  const r = rig();
  r.sender.onProbeTimeout();
  assert.equal(r.sender.hasQueued(), true);
  r.flush();
  assert.deepEqual(
    r.parsed().map((p) => p.frames.map((f) => f.kind)),
    [[Kind.ImmediateAck], [Kind.ImmediateAck]],
  );
  assert.equal(r.sender.hasQueued(), false);
});

test('what a lost packet carried is queued again; an acked one is done', () => {
  const r = rig();
  r.sender.queueControl(Frame.ResetStream, 4, AppCode.Refused, 0);
  r.flow.raise(1000, 50);
  r.flush();
  const p = r.recovery.log.get(0)!;
  assert.equal(r.flow.pending, false);
  assert.equal(r.sender.onPacketLost(p), false, 'no stream credit in it');
  assert.equal(r.flow.pending, true);
  r.flush();
  assert.deepEqual(
    r.parsed()[1]!.frames.map((f) => f.kind),
    [Kind.ImmediateAck, Kind.ResetStream, Kind.MaxData],
  );

  const s = r.stream('data');
  r.flush();
  const q = r.recovery.log.get(2)!;
  assert.equal(q.stream, s);
  assert.equal(s.openAcked, false);
  r.sender.onPacketAcked(q);
  assert.equal(s.openAcked, true);
  assert.equal(s.bytesAcked, 4);
});

test('a queued datagram that no longer fits any packet (size shrank) is dropped', () => {
  const r = rig();
  r.sender.datagrams.push(1, 2, Buffer.alloc(1000));
  r.sender.maxPacket = 256;
  r.flush();
  assert.equal(r.packets.length, 0);
  assert.equal(r.sender.datagrams.length, 0);
  assert.equal(r.sender.datagrams.bytes, 0);
});

test('the flush budget: after FLUSH_BUDGET packets the loop yields and says there is more', () => {
  // a window controller whose window we open wide: neither the window nor a BBR pacing rate stops the loop, only the budget
  const r = rig({ cc: 'cubic' });
  (r.recovery.cc as WindowController).cwnd = 1e9;
  r.stream('z'.repeat((FLUSH_BUDGET + 10) * MSS)).onMaxStreamData(1e9);
  assert.equal(r.flush(), true);
  assert.equal(r.packets.length, FLUSH_BUDGET);
  r.advance(1);
  assert.equal(r.flush(), false);
  const bytes = r.parsed().reduce((n, p) => n + p.frames.reduce((m, f) => m + (f.kind === Kind.Stream ? f.length : 0), 0), 0);
  assert.equal(bytes, (FLUSH_BUDGET + 10) * MSS, 'the rest went out in the next flush');
});

test('an ACK that is due goes out alone when nothing else carries it', () => {
  const r = rig();
  r.acks.onPacket(0, true, 1000, true);
  r.flush();
  assert.deepEqual(
    r.parsed().map((p) => p.frames.map((f) => f.kind)),
    [[Kind.Ack]],
  );
  assert.equal(r.recovery.cc.bytesInFlight, 0, 'an ACK-only packet is not in flight');
});

test('headroom and tailroom around each packet; CONNECTION_CLOSE in a packet of its own', () => {
  const r = rig({ headroom: 13, tailroom: 16 });
  r.stream('hi');
  r.flush();
  const x = r.packets[0]!;
  assert.ok(x.byteOffset >= 13 && x.byteOffset + x.length + 16 <= x.buffer.byteLength);
  const copy = Buffer.from(x);
  const wide = Buffer.from(x.buffer, x.byteOffset - 13, x.length + 29);
  wide.fill(0xee, 0, 13);
  wide.fill(0xee, 13 + x.length);
  assert.ok(copy.equals(x), 'the room does not overlap the packet');
  r.sender.sendClose(CloseCode.NoError);
  const c = r.parsed()[1]!;
  assert.deepEqual(
    c.frames.map((f) => f.kind),
    [Kind.ConnectionClose],
  );
  assert.equal(c.pn, 1, 'the next packet number');
  assert.equal(r.counters.packetsSent, 2);
});

test('a throwing session layer is counted, and the sender carries on', () => {
  const r = rig();
  const acks = new AckTracker(10);
  const recovery = new Recovery(MSS, 10, { onPacketAcked: () => {}, onPacketLost: () => {} });
  const counters = new ConnectionCounters();
  const sender = new Sender(
    {
      transmit: () => {
        throw new Error('socket gone');
      },
    },
    { recovery, acks, flow: r.flow, counters, maxPacket: MSS, headroom: 0, tailroom: 0 },
  );
  sender.datagrams.push(1, 2, Buffer.from('a'));
  assert.doesNotThrow(() => sender.flush(1000));
  assert.equal(counters.sendErrors, 1);
  assert.equal(recovery.cc.bytesInFlight > 0, true, 'counted as sent: lost when no ACK comes');
});
