import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLogLine, journalLine, syslogPriority } from '../../src/util/log-format.ts';

const rec = (o: Record<string, unknown>): string => JSON.stringify({ level: 30, time: Date.UTC(2026, 11, 7, 6, 1, 2, 345), pid: 42, ...o });

test('one line per record: time, level, message, then key=value', () => {
  assert.equal(
    formatLogLine(rec({ level: 40, msg: 'no UDP answer from the rendezvous: trying TCP', registry: '127.0.0.1:9000' })),
    '2026-12-07 06:01:02.345 WARN  no UDP answer from the rendezvous: trying TCP registry=127.0.0.1:9000',
  );
  assert.equal(formatLogLine(rec({ msg: 'x', n: 3, ok: true, s: 'two words' })), '2026-12-07 06:01:02.345 INFO  x n=3 ok=true s="two words"');
});

test('an error shows its code and message on the line, its stack below', () => {
  const out = formatLogLine(
    rec({
      level: 50,
      msg: 'ipc handler failed',
      err: { type: 'PilotError', code: 'TIMEOUT', message: 'no answer', stack: 'PilotError: no answer\n    at x (y.ts:1:1)' },
    }),
  );
  assert.equal(out.split('\n')[0], '2026-12-07 06:01:02.345 ERROR ipc handler failed err="TIMEOUT: no answer"');
  assert.match(out, /\n {4}PilotError: no answer\n {8}at x/);
});

test('a line that is not a record passes through (a crash trace in the same file)', () => {
  assert.equal(formatLogLine('node:internal/process: boom'), 'node:internal/process: boom');
  assert.equal(formatLogLine('[1,2]'), '[1,2]');
});

test('journald: a <N> priority prefix, no own timestamp, one line', () => {
  assert.equal(journalLine(rec({ level: 40, msg: 'uplink down', reason: 'closed' })), '<4>WARN  uplink down reason=closed');
  assert.equal(journalLine(rec({ level: 50, msg: 'e', err: { type: 'Error', message: 'm', stack: 'Error: m\n  at z' } })), '<3>ERROR e err="m"');
  assert.deepEqual([10, 20, 30, 40, 50, 60].map(syslogPriority), [7, 7, 6, 4, 3, 2]);
});
