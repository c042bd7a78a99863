// The policing signature on synthetic counters; the real thing is test/nat/udp-police.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PoliceDetector } from '../../src/nat/police-detector.ts';

/** Feed `windows` one-second windows of (sent, lost, srtt) and return the verdicts. */
function feed(windows: [sent: number, lost: number, srttMs: number][], minRttMs = 10) {
  const d = new PoliceDetector();
  let now = 1_000_000;
  let sent = 0;
  let lost = 0;
  d.sample(1, now, { packetsSent: 0, packetsLost: 0, srttMs: minRttMs, minRttMs });
  return windows.map(([s, l, srtt]) => {
    now += 1_000;
    sent += s;
    lost += l;
    return d.sample(1, now, { packetsSent: sent, packetsLost: lost, srttMs: srtt, minRttMs })!;
  });
}

test('loss above a flat packet rate with no queue is policing (after 3 windows, not before)', () => {
  // The sender tries 300..600 packets/s; ~200 get through every second whatever it does.
  const v = feed([
    [300, 100, 12],
    [450, 248, 11],
    [600, 395, 12],
    [380, 181, 12],
  ]);
  assert.deepEqual(
    v.map((x) => x.policed),
    [false, false, true, true],
  );
  assert.ok(Math.abs(v[3]!.deliveredPps - 200) < 10, `delivered ${v[3]!.deliveredPps} pps`);
});

test('congestion is not policing: the loss comes with a queue (RTT far above its minimum)', () => {
  const v = feed([
    [300, 100, 80],
    [450, 248, 90],
    [600, 395, 85],
    [380, 181, 70],
  ]);
  assert.ok(v.every((x) => !x.policed));
});

test('random loss is not policing: too little of it, and the delivered rate follows the sender', () => {
  const v = feed([
    [1000, 30, 11],
    [2000, 60, 12],
    [4000, 120, 11],
    [3000, 90, 12],
    [5000, 150, 12],
  ]);
  assert.ok(v.every((x) => !x.policed));
  const heavy = feed([
    [1000, 200, 11],
    [2000, 400, 12],
    [4000, 800, 11],
    [3000, 600, 12],
  ]);
  assert.ok(
    heavy.every((x) => !x.policed),
    'heavy loss but the rate is not flat',
  );
});

test('a light or idle sender says nothing, and breaks the run of windows', () => {
  const v = feed([
    [300, 100, 12],
    [450, 248, 11],
    [50, 10, 11],
    [600, 395, 12],
    [380, 181, 12],
  ]);
  assert.ok(v.every((x) => !x.policed));
  const d = new PoliceDetector();
  for (let i = 0; i < 5000; i++) d.sample(i, 0, { packetsSent: 0, packetsLost: 0, srttMs: 1, minRttMs: 1 });
  assert.ok(d.size <= 4096, `bounded (${d.size} peers)`);
});
