import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pacer } from '../../src/transport/pacer.ts';

const MSS = 1200;
const RATE = 1000; // B/ms: 8 Mbit/s, the model rate BBR would give on issue 20's long path

function drain(p: Pacer): number {
  let n = 0;
  while (p.canSend(MSS)) {
    p.consume(MSS);
    n++;
  }
  return n;
}

test('a paced send loop that comes back late gets the time it missed (up to a quarter RTT), an idle one does not', () => {
  const p = new Pacer(MSS);
  p.refill(0, 200_000, 100, MSS, false, RATE);
  drain(p);
  const due = p.nextSendTime(MSS);
  // the timer fires 20 ms late (a busy box): 20 ms at 1000 B/ms is ~17 packets owed beyond the normal burst
  p.refill(due + 20, 200_000, 100, MSS, false, RATE);
  const late = drain(p);
  assert.ok(late >= 16, `after a 20 ms stall: ${late} packets at once (the ~17 missed; without the credit the burst cap of 10)`);

  // a much longer stall is credited only up to srtt/4 = 25 ms (~21 packets) beyond the burst
  p.refill(1000, 200_000, 100, MSS, false, RATE);
  drain(p);
  const due2 = p.nextSendTime(MSS);
  p.refill(due2 + 500, 200_000, 100, MSS, false, RATE);
  const capped = drain(p);
  assert.ok(capped <= 31, `after a 500 ms stall: ${capped} packets, capped at the burst + 25 ms (10 + 21)`);

  // not waiting on pacing (idle: nothing to send): no credit, just the normal burst
  const q = new Pacer(MSS);
  q.refill(0, 200_000, 100, MSS, false, RATE);
  drain(q);
  q.refill(500, 200_000, 100, MSS, false, RATE);
  assert.ok(drain(q) <= 11, 'an idle sender resumes with the normal burst');
});

test('sub-millisecond RTT (loopback): lateness credit is negligible, the burst is unchanged', () => {
  const p = new Pacer(MSS);
  p.refill(0, 100_000, 0.1, MSS, false);
  p.refill(10, 100_000, 0.1, MSS, false); // a full bucket: 2 ms at 1.25 x cwnd / srtt
  const first = drain(p);
  const due = p.nextSendTime(MSS);
  p.refill(due + 50, 100_000, 0.1, MSS, false); // 50 ms late: credit capped at srtt/4 = 0.025 ms
  const after = drain(p);
  assert.ok(after <= first * 1.02, `${after} vs ${first} packets`);
});
