// The policed-path policy on synthetic counters and a controlled clock (the lab test is test/nat/udp-police.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicedPaths } from '../../src/daemon/policed-paths.ts';
import type { ConnectionStats } from '../../src/transport/stats.ts';
import { silentLogger } from '../../src/util/logger.ts';

function rig() {
  const peer = { direct: true, sent: 0, lost: 0, srtt: 12 };
  const pins: Array<{ until: number; reason: string; at: number }> = [];
  const tcp: number[] = [];
  const pp = new PolicedPaths({
    log: silentLogger(),
    peers: () => [
      {
        key: 9,
        name: 'peer',
        direct: peer.direct,
        stats: () => ({ packetsSent: peer.sent, packetsLost: peer.lost, srttMs: peer.srtt, minRttMs: 10 }) as ConnectionStats,
      },
    ],
    pinRelay: (_k, until, reason) => {
      pins.push({ until, reason, at: now });
      peer.direct = until === 0;
    },
    preferTcp: async (until) => {
      tcp.push(until);
    },
  });
  let now = 1_000_000;
  /** One second of sending: `sent` packets, `lost` of them lost. */
  const second = (sent: number, lost: number): void => {
    now += 1_000;
    peer.sent += sent;
    peer.lost += lost;
    pp.tick(now);
  };
  return {
    pp,
    peer,
    pins,
    tcp,
    second,
    get now() {
      return now;
    },
  };
}

test('a policed direct path goes to the TCP relay for 60 s, then direct again (re-probe), and for 120 s the next time', () => {
  const r = rig();
  r.second(0, 0);
  for (let i = 0; i < 4; i++) r.second(400 + 50 * i, 200 + 50 * i); // ~200 delivered whatever is sent
  assert.equal(r.pins.length, 1, 'pinned once');
  assert.match(r.pins[0]!.reason, /UDP policed at ~200 packets\/s: relay over TCP/);
  assert.equal(r.pins[0]!.until - r.pins[0]!.at, 60_000);
  assert.deepEqual(r.tcp, [r.pins[0]!.until], 'the uplink goes to TCP for as long');
  for (let i = 0; i < 3; i++) r.second(2_000, 0); // the relay carries 2,000 packets/s: stays
  assert.equal(r.pins.length, 1);
  // The pin runs out (the path manager punches again, direct comes back): policed again, pinned longer.
  for (let i = 0; i < 60; i++) r.second(0, 0);
  r.peer.direct = true;
  for (let i = 0; i < 5; i++) r.second(400 + 50 * i, 200 + 50 * i);
  assert.equal(r.pins.length, 2);
  assert.equal(r.pins[1]!.until - r.pins[1]!.at, 120_000, 'back-off doubles');
  assert.equal(r.pp.counters.policed, 2);
});

test('a relay that carries less than the policed path did sends the peer back direct at once, and it stays there a while', () => {
  const r = rig();
  r.second(0, 0);
  for (let i = 0; i < 4; i++) r.second(400 + 50 * i, 200 + 50 * i);
  assert.equal(r.pins.length, 1);
  for (let i = 0; i < 3; i++) r.second(150, 0); // 150 packets/s on the relay: less than 200
  assert.equal(r.pins.length, 2);
  assert.equal(r.pins[1]!.until, 0, 'unpinned');
  assert.equal(r.pp.counters.relayWorse, 1);
  for (let i = 0; i < 10; i++) r.second(400 + 50 * (i % 4), 200 + 50 * (i % 4));
  assert.equal(r.pins.length, 2, 'not pinned again during the back-off');
});

test('congestion (a queue) and ordinary loss never move a peer', () => {
  const r = rig();
  r.second(0, 0);
  r.peer.srtt = 90;
  for (let i = 0; i < 6; i++) r.second(400 + 50 * i, 200 + 50 * i);
  r.peer.srtt = 12;
  for (let i = 0; i < 6; i++) r.second(1_000 * (i + 1), 30 * (i + 1));
  assert.equal(r.pins.length, 0);
});
