// The stats snapshot: counters as counted, the rest read from recovery and congestion control.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Recovery } from '../../src/transport/recovery.ts';
import { ConnectionCounters } from '../../src/transport/stats.ts';

test('snapshot: counters, RTT (min 0 before any sample), window, and what the connection passes in', () => {
  const c = new ConnectionCounters();
  const r = new Recovery(1200, 10, { onPacketAcked: () => {}, onPacketLost: () => {} }, 'newreno');
  c.packetsSent = 3;
  c.malformed = 2;
  c.sendErrors = 1;
  const s = c.snapshot(r, 'newreno', 4, 1200);
  assert.equal(s.congestionControl, 'newreno');
  assert.equal(s.packetsSent, 3);
  assert.equal(s.malformed, 2);
  assert.equal(s.sendErrors, 1);
  assert.equal(s.packetsReceived, 0);
  assert.equal(s.streamsOpen, 4);
  assert.equal(s.maxPacketSize, 1200);
  assert.equal(s.minRttMs, 0, 'no sample yet');
  assert.equal(s.srttMs, r.rtt.smoothed);
  assert.equal(s.cwnd, 10 * 1200);
  assert.equal(s.ssthresh, Infinity);
  assert.equal(s.bytesInFlight, 0);
  r.rtt.update(40, 0, 10);
  assert.equal(c.snapshot(r, 'newreno', 0, 1200).minRttMs, 40);
  // a snapshot is a copy
  c.packetsSent++;
  assert.equal(s.packetsSent, 3);
});
