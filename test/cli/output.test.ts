// Exit statuses (README "Exit codes"), tasks as pilotctl prints them, and the local
// check of a request against the IPC contract (no daemon needed: it refuses first).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exitCodeFor } from '../../src/cli/output.ts';
import { CliClient } from '../../src/cli/cli-client.ts';
import { findTask, formatTask, formatTaskList, type ListedTask } from '../../src/cli/commands/services.ts';
import { PilotError } from '../../src/util/errors.ts';

test('exit 2 for a bad value before pilotctl acted, 1 after it or for any other failure', () => {
  assert.equal(exitCodeFor(new PilotError('BAD_ARGUMENT', 'x'), false), 2);
  assert.equal(exitCodeFor(new PilotError('BAD_ADDRESS', 'x'), false), 2);
  assert.equal(exitCodeFor(new PilotError('BAD_ARGUMENT', 'x'), true), 1);
  assert.equal(exitCodeFor(new PilotError('NOT_FOUND', 'x'), false), 1);
  assert.equal(exitCodeFor(new PilotError('NO_DAEMON', 'x'), false), 1);
  assert.equal(exitCodeFor(new Error('boom'), false), 1);
});

test('CliClient refuses a bad value before connecting (the socket does not exist)', async () => {
  const c = new CliClient('/nonexistent/pilot.sock');
  await assert.rejects(
    c.call('task_list', { type: 'all' as 'received' }),
    (e: PilotError) => e.code === 'BAD_ARGUMENT' && /received or submitted/.test(e.message),
  );
  await assert.rejects(c.call('ping', { target: 'not valid!' }), (e: PilotError) => e.code === 'BAD_ADDRESS');
  await assert.rejects(c.call('send', { target: 'beta', port: 70000, data: 'x' }), (e: PilotError) => e.code === 'BAD_ARGUMENT');
  assert.equal(c.sent, false);
  // a good request goes out (and fails for want of a daemon: a failure, after acting)
  await assert.rejects(c.call('ping', { target: 'beta' }), (e: PilotError) => e.code === 'NO_DAEMON');
  assert.equal(c.sent, true);
  // expose's target is a local HOST:PORT, not an agent: not checked as one
  await assert.rejects(
    new CliClient('/nonexistent/pilot.sock').call('expose', { port: 80, target: '127.0.0.1:8080' }),
    (e: PilotError) => e.code === 'NO_DAEMON',
  );
});

const task = (id: string, over: Partial<ListedTask> = {}): ListedTask => ({
  id,
  role: 'received',
  peer: '0:0000.0000.0002',
  peerHostname: 'beta',
  description: 'count the lines',
  status: 'completed',
  reason: null,
  results: '42\nlines',
  createdAt: Date.UTC(2026, 11, 7, 6, 0, 0),
  updatedAt: Date.UTC(2026, 11, 7, 6, 1, 0),
  history: [
    { status: 'submitted', at: Date.UTC(2026, 11, 7, 6, 0, 0) },
    { status: 'completed', at: Date.UTC(2026, 11, 7, 6, 1, 0) },
  ],
  notifyPending: false,
  ...over,
});

test('task show: the whole record with the results; list: the peer by hostname', () => {
  const text = formatTask(task('abcdef0123456789'));
  assert.match(text, /^Task: {5}abcdef0123456789$/m);
  assert.match(text, /^Role: {5}received \(from beta \(0:0000\.0000\.0002\)\)$/m);
  assert.match(text, /^History: {2}submitted 2026-12-07 06:00:00, completed 2026-12-07 06:01:00$/m);
  assert.match(text, /Results:\n {2}42\n {2}lines$/);
  assert.match(formatTask(task('x', { status: 'accepted', results: null })), /Results:\n {2}\(none yet: the task is accepted\)$/);
  assert.match(formatTaskList([task('abcdef0123456789', { peerHostname: null })]), /abcdef01 {2}received {2}completed {2}0:0000\.0000\.0002 {2}/);
  assert.equal(formatTaskList([]), 'no tasks');
});

test('findTask: full id or a unique prefix of 4+, over both roles', () => {
  const tasks = [task('abcd1111'), task('abcd2222', { role: 'submitted' }), task('ffff0000')];
  assert.equal(findTask(tasks, 'ffff').id, 'ffff0000');
  assert.equal(findTask(tasks, 'abcd2').id, 'abcd2222');
  assert.throws(
    () => findTask(tasks, 'abcd'),
    (e: PilotError) => e.code === 'NOT_FOUND' && /ambiguous/.test(e.message) && /abcd1111, abcd2222/.test(e.hint ?? ''),
  );
  assert.throws(
    () => findTask(tasks, 'ff'),
    (e: PilotError) => /at least 4 characters/.test(e.hint ?? ''),
  );
  assert.throws(
    () => findTask(tasks, '9999'),
    (e: PilotError) => e.code === 'NOT_FOUND',
  );
});
