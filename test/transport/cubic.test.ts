// CUBIC (RFC 9438) alone: the growth curve against the formula, the 0.7 cut,
// fast convergence, the Reno-friendly region, app-limited periods, one cut per
// recovery period and persistent congestion; then end to end over a lossy link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cubic, CUBIC_ALPHA, CUBIC_BETA, CUBIC_C } from '../../src/transport/cubic.ts';
import { NewReno } from '../../src/transport/congestion.ts';
import { Bbr } from '../../src/transport/bbr.ts';
import { createCongestionController, Recovery } from '../../src/transport/recovery.ts';
import type { Stream } from '../../src/transport/stream.ts';
import { closePair, makePair, withTimeout } from './link.ts';

const MSS = 1200;

/** A CUBIC sender that lost at `wmaxPackets` and has been cut (cwnd = 0.7 W_max), window-limited. */
function afterLoss(wmaxPackets: number, now = 1000): Cubic {
  const cc = new Cubic(MSS);
  cc.appLimited = false;
  cc.cwnd = wmaxPackets * MSS;
  cc.onSent(cc.cwnd);
  cc.onCongestionEvent(now - 1, now);
  return cc;
}

/** Acks one window's worth of packets, one packet per ack, all sent after the recovery period began. */
function ackRound(cc: Cubic, now: number, srtt: number): void {
  const n = Math.max(1, Math.floor(cc.cwnd / MSS));
  for (let i = 0; i < n; i++) {
    cc.onSent(MSS);
    cc.onAcked(MSS, now - srtt / 2, now, srtt);
  }
}

test('createCongestionController picks the algorithm; bbr is the default of a connection, cubic stays selectable', () => {
  assert.ok(createCongestionController('cubic', MSS) instanceof Cubic);
  assert.ok(createCongestionController('newreno', MSS) instanceof NewReno);
  assert.ok(createCongestionController('bbr', MSS) instanceof Bbr);
  const p = makePair();
  assert.equal(p.a.stats().congestionControl, 'bbr');
  closePair(p);
  const q = makePair({}, { congestionControl: 'newreno' });
  assert.equal(q.a.stats().congestionControl, 'newreno');
  closePair(q);
  const c = makePair({}, { congestionControl: 'cubic' });
  assert.equal(c.a.stats().congestionControl, 'cubic');
  closePair(c);
  assert.throws(() => makePair({}, { congestionControl: 'vegas' as never }), /congestionControl/);
});

test('loss cuts the window to 0.7x and sets ssthresh; slow start before that is +1 per acked byte', () => {
  const cc = new Cubic(MSS);
  cc.appLimited = false;
  cc.onSent(5 * MSS);
  cc.onAcked(5 * MSS, 1, 2, 10);
  assert.equal(cc.cwnd, 15 * MSS);
  cc.onSent(10 * MSS);
  cc.onCongestionEvent(3, 10);
  assert.equal(cc.cwnd, 15 * MSS * CUBIC_BETA);
  assert.equal(cc.ssthresh, cc.cwnd);
  assert.equal(cc.wMax, 15 * MSS);
  assert.equal(cc.cwndPrior, 15 * MSS);
  assert.equal(cc.congestionEvents, 1);
});

test('window growth follows W_cubic(t) = C(t-K)^3 + W_max with K = cbrt((W_max - cwnd_epoch)/C)', () => {
  // a long RTT keeps CUBIC out of the Reno-friendly region
  const wmax = 1000;
  const cc = afterLoss(wmax);
  const srtt = 100;
  const kExpected = Math.cbrt((wmax - wmax * CUBIC_BETA) / CUBIC_C); // ~9.09 s
  let now = 1100;
  ackRound(cc, now, srtt); // first growing ack starts the epoch
  assert.equal(cc.epochStart, 1100);
  assert.ok(Math.abs(cc.k - kExpected) < 1e-9, `K ${cc.k} vs ${kExpected}`);
  const samples: Array<[number, number]> = [];
  for (now = 1200; now <= 1100 + 16_000; now += srtt) {
    ackRound(cc, now, srtt);
    samples.push([(now - 1100) / 1000, cc.cwnd / MSS]);
  }
  for (const [t, w] of samples) {
    // per RTT the window moves to W_cubic(t + RTT) (capped at 1.5x): within a few packets of the curve
    const want = CUBIC_C * (t - kExpected) ** 3 + wmax;
    assert.ok(Math.abs(w - want) < 0.02 * wmax, `t=${t.toFixed(1)} s: window ${w.toFixed(1)} vs W_cubic ${want.toFixed(1)}`);
  }
  // concave below W_max, plateau at it around K, convex after
  const at = (t: number): number => samples.find(([x]) => x >= t)![1];
  assert.ok(at(3) - at(1) > at(6) - at(4), 'concave: growth slows towards W_max');
  assert.ok(Math.abs(at(kExpected) - wmax) < 0.01 * wmax, 'reaches W_max at K');
  assert.ok(at(16) - at(14) > at(12) - at(10), 'convex: growth speeds up past W_max');
  assert.ok(at(16) > wmax * 1.1, `past W_max: ${at(16)}`);
});

test('fast convergence: a loss below the previous W_max lowers W_max to cwnd (1 + beta) / 2', () => {
  const cc = afterLoss(1000);
  assert.equal(cc.wMax, 1000 * MSS);
  ackRound(cc, 1100, 100); // some growth, still below W_max
  const before = cc.cwnd;
  assert.ok(before < cc.wMax);
  cc.onCongestionEvent(1150, 1200);
  assert.ok(Math.abs(cc.wMax - (before * (1 + CUBIC_BETA)) / 2) < 1e-6);
  assert.ok(Math.abs(cc.cwnd - before * CUBIC_BETA) < 1e-6);
  // above the previous W_max: W_max is the window at the loss
  const up = afterLoss(100);
  up.cwnd = 150 * MSS;
  up.onCongestionEvent(1500, 1600);
  assert.equal(up.wMax, 150 * MSS);
});

test('Reno-friendly region: at a small RTT the window grows like AIMD(alpha, 0.7), then alpha becomes 1', () => {
  const wmax = 100;
  const cc = afterLoss(wmax);
  const srtt = 1; // 1 ms: the cubic curve barely moves in a round, W_est leads
  const start = cc.cwnd;
  let now = 1100;
  let rounds = 0;
  while (cc.wEst < cc.cwndPrior && rounds < 1000) {
    ackRound(cc, now, srtt);
    now += srtt;
    rounds++;
  }
  // AIMD with alpha ~0.53 packets per round from 70 to 100 packets: about 30 / 0.53 = 57 rounds
  const expected = (wmax * MSS - start) / MSS / CUBIC_ALPHA;
  assert.ok(Math.abs(rounds - expected) < expected * 0.15, `rounds ${rounds} vs ${expected.toFixed(0)}`);
  assert.ok(cc.wCubic((now - cc.epochStart) / 1000) < cc.wEst, 'still below the curve: the window is W_est');
  assert.ok(Math.abs(cc.cwnd - cc.wEst) < 1e-6);
  assert.equal(cc.alpha, 1);
  const w = cc.cwnd;
  ackRound(cc, now, srtt);
  assert.ok(Math.abs((cc.cwnd - w) / MSS - 1) < 0.05, `+1 packet per round with alpha = 1: ${(cc.cwnd - w) / MSS}`);
});

test('no growth while app-limited, and the app-limited time is cut out of t', () => {
  const cc = afterLoss(1000);
  const srtt = 100;
  ackRound(cc, 1100, srtt);
  ackRound(cc, 1200, srtt);
  const w = cc.cwnd;
  const epoch = cc.epochStart;
  cc.appLimited = true;
  for (let now = 1300; now <= 6300; now += srtt) ackRound(cc, now, srtt);
  assert.equal(cc.cwnd, w, 'no growth while app-limited');
  cc.appLimited = false;
  ackRound(cc, 6400, srtt);
  // the 5.1 s of app-limited acks moved the epoch: growth continues from where it stopped, no jump
  assert.ok(Math.abs(cc.epochStart - (epoch + 6400 - 1300)) < 1e-6, `epoch ${cc.epochStart}`);
  assert.ok(cc.cwnd - w < 0.05 * w, `no jump after the idle period: ${w} -> ${cc.cwnd}`);
});

test('recovery period: one reduction per round, no growth from packets sent before it', () => {
  const cc = afterLoss(100, 1000);
  const w = cc.cwnd;
  cc.onCongestionEvent(999, 1010); // another packet of the same flight: same recovery period
  assert.equal(cc.cwnd, w);
  assert.equal(cc.congestionEvents, 1);
  cc.onSent(MSS);
  cc.onAcked(MSS, 990, 1020, 10); // sent before recovery started: no growth
  assert.equal(cc.cwnd, w);
  cc.onCongestionEvent(1030, 1040); // sent after: a new period, cut again
  assert.equal(cc.congestionEvents, 2);
  assert.ok(Math.abs(cc.cwnd - w * CUBIC_BETA) < 1e-6);
});

test('persistent congestion collapses to 2 packets; the next stage starts with K = 0 at its own window', () => {
  const cc = afterLoss(100, 1000);
  cc.onPersistentCongestion(1000);
  assert.equal(cc.cwnd, 2 * MSS);
  // slow start back up to ssthresh
  let now = 1100;
  while (cc.inSlowStart()) {
    cc.onSent(MSS);
    cc.onAcked(MSS, now - 5, now, 10);
    now += 1;
  }
  const w = cc.cwnd;
  cc.onSent(MSS);
  cc.onAcked(MSS, now - 5, now, 10);
  assert.equal(cc.k, 0);
  assert.equal(cc.wMax, w);
  assert.equal(cc.cwndEpoch, w);
});

for (const algorithm of ['cubic', 'newreno'] as const) {
  test(`${algorithm}: a reduction whose losses were all acked later (reordering) is undone`, () => {
    const rec = new Recovery(MSS, 10, { onPacketAcked: () => {}, onPacketLost: () => {} }, algorithm);
    rec.cc.appLimited = false;
    const send = (t: number): void => {
      const p = rec.log.alloc();
      p.pn = rec.log.next;
      p.time = t;
      p.size = MSS;
      p.ackEliciting = p.inFlight = true;
      rec.onPacketSent(p);
    };
    for (let i = 0; i < 6; i++) send(0);
    rec.onAck([5, 1], 0, 1, 0, 10); // pn 0 is 5 behind: lost by packet threshold
    const cut = rec.cc.cwnd;
    assert.equal(rec.packetsLost, 1);
    assert.equal(rec.cc.congestionEvents, 1);
    assert.ok(cut < 15 * MSS);
    send(11);
    send(11);
    rec.onAck([7, 6], 0, 1, 0, 20); // a real loss can not be undone by unrelated acks
    assert.ok(rec.cc.cwnd < cut + 2 * MSS, `not restored: ${rec.cc.cwnd}`);
    assert.equal(rec.spuriousLosses, 0);
    rec.onAck([7, 0], 0, 1, 0, 21); // ... but pn 0 shows up after all: spurious
    assert.equal(rec.spuriousLosses, 1);
    assert.ok(rec.cc.cwnd >= 15 * MSS, `window restored: ${rec.cc.cwnd}`);
    assert.equal(rec.cc.ssthresh, Infinity);
    // a genuine loss stays
    for (let i = 0; i < 6; i++) send(30);
    rec.onAck([13, 9], 0, 1, 0, 40);
    assert.equal(rec.cc.congestionEvents, 2);
    const w = rec.cc.cwnd;
    send(41);
    rec.onAck([14, 14], 0, 1, 0, 50);
    assert.ok(rec.cc.ssthresh < Infinity && rec.cc.cwnd <= w + MSS);
  });
}

test('end to end: CUBIC under 5% loss delivers intact', async () => {
  const p = makePair({ loss: 0.05, seed: 3 }, { congestionControl: 'cubic' });
  const s = p.a.openStream(1, 1);
  const total = 4 * 1024 * 1024;
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    p.b.once('stream', (x: Stream) => {
      x.on('data', (d: Buffer) => (received += d.length));
      x.on('end', resolve);
      x.on('error', reject);
    });
  });
  const block = Buffer.alloc(64 * 1024, 3);
  for (let n = 0; n < total; n += block.length) if (!s.write(block)) await new Promise((r) => s.once('drain', r));
  s.end();
  await withTimeout(done, 30_000, 'transfer');
  assert.equal(received, total);
  const st = p.a.stats();
  assert.ok(st.congestionEvents > 0 && st.packetsLost > 0);
  assert.ok(st.congestionEvents <= st.packetsLost, 'at most one cut per lost packet');
  closePair(p);
});
