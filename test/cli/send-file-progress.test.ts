// send-file's progress line (rate over a window, ETA) and the Ctrl-C summary, as pure functions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatEta, formatRate, interruptedError, progressLine, RateMeter } from '../../src/cli/commands/send-file-progress.ts';
import { exitCodeFor } from '../../src/cli/output.ts';

const MiB = 1024 * 1024;

test('progressLine shows the bar, MiB done, rate and ETA', () => {
  assert.equal(progressLine(25 * MiB, 100 * MiB, 5 * MiB), `[########----------------------]  25%  25.0/100.0 MiB  5.0 MiB/s  ETA 0:15`);
  assert.equal(progressLine(0, 10 * MiB, null), `[------------------------------]   0%  0.0/10.0 MiB  - MiB/s  ETA -:--`);
  assert.match(progressLine(10, 0, null), /^\[#{30}\] 100% /);
});

test('formatEta and formatRate', () => {
  assert.equal(formatEta(7), '0:07');
  assert.equal(formatEta(185), '3:05');
  assert.equal(formatEta(3723), '1:02:03');
  assert.equal(formatEta(null), '-:--');
  assert.equal(formatEta(Number.POSITIVE_INFINITY), '-:--');
  assert.equal(formatRate(512 * 1024), '512 KiB/s');
  assert.equal(formatRate(12.34 * MiB), '12.3 MiB/s');
});

test('RateMeter: the rate over the last seconds, not since the start', () => {
  const m = new RateMeter();
  m.add(0, 0);
  assert.equal(m.rate(), null);
  // a slow start: 1 MiB in the first 10 s
  for (let t = 1000; t <= 10_000; t += 1000) m.add(t, (t / 10_000) * MiB);
  // then 10 MiB/s
  let bytes = MiB;
  for (let t = 11_000; t <= 20_000; t += 1000) {
    bytes += 10 * MiB;
    m.add(t, bytes);
  }
  assert.equal(m.rate(), 10 * MiB);
});

test('Ctrl-C: what was sent and the command that resumes; exit 130', () => {
  const e = interruptedError('agent-beta', '/data/my file.bin', { sent: 3 * MiB, size: 12 * MiB, resumedFrom: 0 });
  assert.equal(e.code, 'INTERRUPTED');
  assert.equal(e.message, `send-file interrupted: 3.0 of 12.0 MiB (${3 * MiB} bytes) sent to agent-beta`);
  assert.match(e.hint ?? '', /resumes from there: pilotctl send-file agent-beta '\/data\/my file\.bin'$/);
  assert.match(interruptedError('b', '/f', undefined).message, /nothing sent to b yet/);
  assert.equal(exitCodeFor(e, true), 130);
});
