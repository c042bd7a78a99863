import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LATE_CREDIT_MS, Pacer } from '../../src/transport/pacer.ts';

const MSS = 1200;
// 1.25 * cwnd / srtt = 1.25 * 1_200_000 / 10 = 150 kB per ms; the 2 ms bucket holds 300 kB.
const CWND = 1_200_000;
const SRTT = 10;
const RATE = (1.25 * CWND) / SRTT;

/** Packets the pacer lets go back to back right now. */
function burst(p: Pacer): number {
  let n = 0;
  while (p.canSend(MSS)) {
    p.consume(MSS);
    n++;
  }
  return n;
}

test('pacer: a sender held back by pacing and woken late keeps the sending time it lost (up to LATE_CREDIT_MS)', () => {
  const p = new Pacer(MSS);
  p.refill(0, CWND, SRTT, MSS, false);
  burst(p);
  const want = p.nextSendTime(MSS); // the sender waits on the pacer...
  const lateBy = 6;
  p.refill(want + lateBy, CWND, SRTT, MSS, false); // ...and its timer fires 6 ms late (busy CPU)
  const n = burst(p);
  const expected = Math.floor((RATE * (want + lateBy)) / MSS);
  assert.ok(n >= expected - 1, `${n} packets after a ${lateBy} ms late wake-up; the time lost is worth ${expected}`);
  assert.ok(n * MSS > RATE * 2 * 1.5, 'more than the 2 ms bucket');
});

test('pacer: the late credit is capped', () => {
  const p = new Pacer(MSS);
  p.refill(0, CWND, SRTT, MSS, false);
  burst(p);
  const want = p.nextSendTime(MSS);
  p.refill(want + 100, CWND, SRTT, MSS, false);
  const n = burst(p);
  assert.ok(n * MSS <= RATE * LATE_CREDIT_MS + MSS, `${n} packets: at most ${LATE_CREDIT_MS} ms worth`);
});

test('pacer: an idle sender (not waiting on pacing) gets no burst beyond the 2 ms bucket', () => {
  const p = new Pacer(MSS);
  p.refill(0, CWND, SRTT, MSS, false);
  burst(p); // app-limited: no nextSendTime call
  p.refill(8, CWND, SRTT, MSS, false);
  const n = burst(p);
  assert.ok(n * MSS <= RATE * 2 + MSS, `${n} packets after 8 ms idle: no more than the 2 ms bucket`);
});
