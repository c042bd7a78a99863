// echoProbe (what `pilotctl ping` and traceroute's tunnel leg report) against a stand-in daemon
// whose echo answers arrive from a timer, as they would from the UDP socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Address } from '../../src/wire/address.ts';
import type { DatagramHandler } from '../../src/daemon/ports.ts';
import { echoProbe, type EchoProbeHost } from '../../src/daemon/echo-probe.ts';

const PEER = { address: { network: 0, node: 2 } as unknown as Address };

/** Answers each probe after `answerMs`, then keeps the event loop busy for `afterMs` (the rest of that packet's receive path). */
function standIn(answerMs: number, afterMs: number, answer = (seq: number) => seq > 0): EchoProbeHost {
  let handler: DatagramHandler | undefined;
  return {
    ports: {
      ephemeral: () => 40000,
      onDatagram: (_port, h) => {
        handler = h;
        return () => (handler = undefined);
      },
    },
    sendDatagram: (_to, srcPort, dstPort, data) => {
      const echo = Buffer.from(data);
      if (answer(echo.readUInt32BE(0)))
        setTimeout(() => {
          handler?.({ from: PEER.address, srcPort: dstPort, dstPort: srcPort, data: echo });
          const until = performance.now() + afterMs;
          while (performance.now() < until); // still inside the receive callback
        }, answerMs);
      return Promise.resolve();
    },
  };
}

test('echoProbe: the RTT stops when the answer is delivered, not after the rest of its receive path', async () => {
  const rtts = await echoProbe(standIn(5, 60), PEER, { count: 3, intervalMs: 0, timeoutMs: 2000 });
  assert.equal(rtts.length, 3);
  for (const r of rtts) {
    assert.ok(r >= 4, `rtt ${r} ms shorter than the answer took`);
    assert.ok(r < 50, `rtt ${r} ms counts the 60 ms the receive callback spent after delivering the answer`);
  }
});

test('echoProbe: an unanswered probe is reported as lost (null) and left out of the RTTs', async () => {
  const seen: (number | null)[] = [];
  const rtts = await echoProbe(
    standIn(1, 0, (seq) => seq !== 2),
    PEER,
    {
      count: 3,
      intervalMs: 0,
      timeoutMs: 100,
      onProbe: (_seq, rtt) => seen.push(rtt),
    },
  );
  assert.equal(rtts.length, 2);
  assert.equal(seen.length, 3);
  assert.equal(seen[1], null);
  assert.ok(seen[0] !== null && seen[2] !== null);
});

test('echoProbe: the timeout timer is armed after the probe is sent, outside the measured round trip', async (t) => {
  // ping(8) stamps a probe just before sendto(): setting up the timeout's timer between the clock
  // start and the send counted that setup (a cold timer list after 50 ms of idle) as network time.
  const events: string[] = [];
  const realSetTimeout = globalThis.setTimeout;
  t.mock.method(globalThis, 'setTimeout', ((cb: () => void, ms?: number) => {
    if (ms === 2000) events.push('timeout armed');
    return realSetTimeout(cb, ms);
  }) as typeof setTimeout);
  const host = standIn(1, 0);
  const send = host.sendDatagram;
  host.sendDatagram = (...a) => {
    events.push('sent');
    return send(...a);
  };
  const rtts = await echoProbe(host, PEER, { count: 3, intervalMs: 0, timeoutMs: 2000 });
  assert.equal(rtts.length, 3);
  assert.deepEqual(events, ['sent', 'timeout armed', 'sent', 'timeout armed', 'sent', 'timeout armed']);
});
