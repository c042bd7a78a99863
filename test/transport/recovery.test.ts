// Loss detection, RTT estimation and congestion control, alone and end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type CongestionAlgorithm, NewReno } from '../../src/transport/congestion.ts';
import { Recovery } from '../../src/transport/recovery.ts';
import { RttEstimator } from '../../src/transport/rtt.ts';
import { Pacer } from '../../src/transport/pacer.ts';
import type { SentPacket } from '../../src/transport/sent-packets.ts';
import type { Stream } from '../../src/transport/stream.ts';
import { closePair, makePair, nextStream, readAll, withTimeout, writeRandom } from './link.ts';

const MSS = 1200;

test('RTT: first sample, smoothing, ack delay only subtracted above min RTT', () => {
  const r = new RttEstimator();
  r.update(100, 0, 25);
  assert.equal(r.smoothed, 100);
  assert.equal(r.variance, 50);
  assert.equal(r.min, 100);
  r.update(120, 20, 25); // 120 - 20 = 100 >= min: adjusted
  assert.equal(r.smoothed, 100);
  r.update(110, 50, 25); // ack delay capped at max_ack_delay: 110 - 25 = 85 < min: not adjusted
  assert.ok(Math.abs(r.smoothed - (0.875 * 100 + 0.125 * 110)) < 1e-9);
  r.update(80, 0, 25);
  assert.equal(r.min, 80);
  assert.ok(r.pto(25) > r.smoothed + 25);
  assert.ok(r.lossDelay() >= (9 / 8) * r.smoothed);
});

test('NewReno: slow start, one cut per recovery period, congestion avoidance, persistent congestion', () => {
  const cc = new NewReno(MSS);
  cc.appLimited = false;
  assert.equal(cc.cwnd, 10 * MSS);
  cc.onSent(5 * MSS);
  cc.onAcked(5 * MSS, 1, 1, 10);
  assert.equal(cc.cwnd, 15 * MSS); // slow start: +1 per acked byte
  cc.onSent(10 * MSS);
  cc.onCongestionEvent(2, 10);
  assert.equal(cc.cwnd, Math.floor(15 * MSS * 0.5));
  assert.equal(cc.ssthresh, cc.cwnd);
  const afterCut = cc.cwnd;
  cc.onCongestionEvent(5, 11); // packet sent before recovery started: no second cut
  assert.equal(cc.cwnd, afterCut);
  cc.onAcked(MSS, 9, 9, 10); // sent before recovery: no growth
  assert.equal(cc.cwnd, afterCut);
  cc.onAcked(MSS, 12, 12, 10); // congestion avoidance: about MSS^2 / cwnd
  assert.equal(cc.cwnd, afterCut + Math.floor((MSS * MSS) / afterCut));
  cc.onCongestionEvent(13, 20);
  assert.ok(cc.cwnd < afterCut);
  cc.onPersistentCongestion(30);
  assert.equal(cc.cwnd, 2 * MSS);
  // app-limited senders do not grow the window
  const idle = new NewReno(MSS);
  idle.appLimited = true;
  idle.onSent(MSS);
  idle.onAcked(MSS, 1, 1, 10);
  assert.equal(idle.cwnd, 10 * MSS);
});

// Window arithmetic below is RFC 9002's (a window controller); BBR's reaction to the same events is in bbr.test.ts.
function harness(cc: CongestionAlgorithm = 'cubic'): { rec: Recovery; acked: number[]; lost: number[]; send: (t: number, n?: number) => void } {
  const acked: number[] = [];
  const lost: number[] = [];
  const rec = new Recovery(
    MSS,
    10,
    {
      onPacketAcked: (p: SentPacket) => acked.push(p.pn),
      onPacketLost: (p: SentPacket) => lost.push(p.pn),
    },
    cc,
  );
  rec.cc.appLimited = false;
  const send = (t: number, n = 1): void => {
    for (let i = 0; i < n; i++) {
      const p = rec.log.alloc();
      p.pn = rec.log.next;
      p.time = t;
      p.size = MSS;
      p.ackEliciting = true;
      p.inFlight = true;
      rec.onPacketSent(p);
    }
  };
  return { rec, acked, lost, send };
}

test('loss detection: packet threshold (3) and time threshold (9/8 RTT)', () => {
  const { rec, acked, lost, send } = harness();
  send(0, 10); // pn 0..9 at t=0
  // ack 4..9 at t=50: 0 and 1 are >= 3 below the largest acked... all of 0..3 are (9 - pn >= 3)
  rec.onAck([9, 4], 0, 1, 0, 50);
  assert.deepEqual(
    acked.sort((a, b) => a - b),
    [4, 5, 6, 7, 8, 9],
  );
  assert.deepEqual(lost, [0, 1, 2, 3]);
  assert.equal(rec.packetsLost, 4);
  assert.equal(rec.rtt.smoothed, 50);
  assert.equal(rec.cc.congestionEvents, 1);

  // time threshold: 10, 11 sent at t=140, 12 at 150; ack 12 at 160 -> 11 is only 1 below: wait 9/8 RTT
  send(140, 2);
  send(150);
  rec.onAck([12, 12], 0, 1, 0, 160);
  assert.deepEqual(lost, [0, 1, 2, 3]);
  assert.ok(rec.lossTime > 160 && rec.lossTime < Infinity);
  assert.equal(rec.deadline(), rec.lossTime);
  rec.onTimeout(rec.lossTime);
  assert.deepEqual(lost, [0, 1, 2, 3, 10, 11]);
  assert.equal(rec.log.count, 0);
  assert.equal(rec.cc.bytesInFlight, 0);
});

test('ACK ranges: selective acks, duplicates and acks of unsent packets', () => {
  const { rec, acked, send } = harness();
  send(0, 6);
  // two ranges: 5..5 and 1..2
  assert.equal(rec.onAck([5, 5, 2, 1], 0, 2, 0, 10), true);
  assert.deepEqual(acked, [5, 2, 1]);
  assert.equal(rec.onAck([5, 5, 2, 1], 0, 2, 0, 11), true); // repeat: nothing new
  assert.deepEqual(acked, [5, 2, 1]);
  assert.equal(rec.onAck([100, 0], 0, 1, 0, 12), false); // acks packets never sent
});

test('PTO fires after srtt + 4 rttvar + max_ack_delay and backs off exponentially', () => {
  const { rec, send } = harness();
  send(0);
  rec.onAck([0, 0], 0, 1, 0, 20); // srtt 20, rttvar 10
  send(100);
  const d1 = rec.deadline();
  assert.equal(d1, 100 + 20 + 40 + 10);
  assert.equal(rec.onTimeout(d1 - 1), false);
  assert.equal(rec.onTimeout(d1), true);
  assert.equal(rec.ptoCount, 1);
  assert.equal(rec.deadline(), 100 + 2 * 70);
  assert.equal(rec.onTimeout(100 + 2 * 70), true);
  assert.equal(rec.deadline(), 100 + 4 * 70);
  // an ACK resets the backoff
  send(400);
  rec.onAck([2, 2], 0, 1, 0, 420);
  assert.equal(rec.ptoCount, 0);
});

test('persistent congestion collapses the window', () => {
  const { rec, send } = harness();
  send(0);
  rec.onAck([0, 0], 0, 1, 0, 10); // srtt 10
  for (let t = 100; t <= 400; t += 20) send(t); // pn 1..16 spanning 300 ms, all lost
  send(500); // pn 17 acked
  rec.onAck([17, 17], 0, 1, 0, 510);
  assert.equal(rec.cc.cwnd, 2 * MSS);
});

test('pacer spreads a window over the RTT but allows a burst', () => {
  const p = new Pacer(MSS);
  // 100 KB window over 100 ms after slow start: 1.25 KB/ms
  p.refill(0, 100_000, 100, MSS, false);
  let sent = 0;
  while (p.canSend(MSS)) {
    p.consume(MSS);
    sent++;
  }
  assert.ok(sent >= 10 && sent <= 11, `burst ${sent}`);
  const next = p.nextSendTime(MSS);
  assert.ok(next > 0 && next <= 1, `next ${next}`);
  p.refill(10, 100_000, 100, MSS, false);
  assert.ok(p.canSend(MSS));
});

test('end to end: the window shrinks when loss starts (a loss-based controller; bbr.test.ts has BBR keeping its rate)', async () => {
  const p = makePair({ seed: 11 }, { congestionControl: 'cubic' });
  const s = p.a.openStream(1, 1);
  const total = 32 * 1024 * 1024;
  let received = 0;
  let lossy = false;
  let peak = 0;
  let lossyMin = Infinity;
  const done = new Promise<void>((resolve, reject) => {
    p.b.once('stream', (x: Stream) => {
      x.on('data', (d: Buffer) => {
        received += d.length;
        // the clean phase lasts until a good part of the data is through (the window has grown by then)
        if (!lossy && received >= 8 * 1024 * 1024) {
          lossy = true;
          p.ab.opts = { loss: 0.05, seed: 12 };
        }
      });
      x.on('end', resolve);
      x.on('error', reject);
    });
  });
  const probe = setInterval(() => {
    const cwnd = p.a.stats().cwnd;
    if (!lossy) peak = Math.max(peak, cwnd);
    else lossyMin = Math.min(lossyMin, cwnd);
  }, 1);
  // a fast writer (the random one is slower than the transport, and app-limited senders do not grow the window)
  const block = Buffer.alloc(64 * 1024, 7);
  for (let n = 0; n < total; n += block.length) {
    if (!s.write(block)) await new Promise((r) => s.once('drain', r));
    if (!lossy) peak = Math.max(peak, p.a.stats().cwnd);
  }
  s.end();
  await withTimeout(done, 30_000, 'transfer');
  clearInterval(probe);
  assert.equal(received, total);
  const st = p.a.stats();
  assert.ok(st.congestionEvents > 0);
  assert.ok(peak > 100 * 1200, `window grew on the clean link: ${peak}`);
  assert.ok(lossyMin < peak / 4, `window shrank under loss: peak ${peak}, min ${lossyMin}`);
  closePair(p);
});

test('end to end: RTT estimate converges on a delayed link', async () => {
  const p = makePair({ delayMs: 25 });
  const s = p.a.openStream(1, 1);
  const inc = nextStream(p.b);
  const [sent, got] = await withTimeout(Promise.all([writeRandom(s, 512 * 1024), inc.then(readAll)]), 20_000, 'transfer');
  assert.equal(got.hash, sent);
  const st = p.a.stats();
  // (node timers may fire up to ~1 ms early against performance.now)
  assert.ok(st.minRttMs >= 45 && st.minRttMs < 60, `min rtt ${st.minRttMs}`);
  assert.ok(st.srttMs >= 48 && st.srttMs < 75, `srtt ${st.srttMs}`);
  assert.ok(st.rttVarMs < 20, `rttvar ${st.rttVarMs}`);
  closePair(p);
});
