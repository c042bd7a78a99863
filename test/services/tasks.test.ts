// Port 1003 tasks: the whole lifecycle between two real daemons, persisted
// across restarts of both (including a status change made while the
// submitter was offline), invalid moves, foreign updates, untrusted nodes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { openPipe } from '../../src/ipc/client.ts';
import { ByteReader, encodeFrame } from '../../src/services/framing.ts';
import { startAgent, startPair, sleep, trustEachOther, type Pair } from './helpers.ts';
import type { Agent } from '../helpers/cluster.ts';

let p: Pair;

before(async () => {
  p = await startPair('task');
});

after(async () => {
  await p?.stop();
});

async function task(agent: Agent, id: string, type: 'received' | 'submitted'): Promise<any> {
  const r = await agent.ctl(['task', 'list', '--type', type]);
  assert.equal(r.code, 0, r.stderr);
  return r.json.data.tasks.find((t: { id: string }) => t.id === id);
}

async function waitStatus(agent: Agent, id: string, status: string, ms = 60_000): Promise<any> {
  const end = Date.now() + ms;
  for (;;) {
    const t = await task(agent, id, 'submitted');
    if (t?.status === status) return t;
    if (Date.now() > end) assert.fail(`task ${id} on ${agent.name} is ${t?.status}, not ${status}`);
    await sleep(500);
  }
}

test('submit, accept, execute, send-results: both sides follow, across restarts of both', async () => {
  const sub = await p.a.ctl(['task', 'submit', p.b.name, '--task', 'summarise the logs of yesterday']);
  assert.equal(sub.code, 0, sub.stderr);
  const id: string = sub.json.data.task.id;
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal(sub.json.data.task.status, 'submitted');
  assert.equal(sub.json.data.task.peer, p.b.address);

  await p.b.stop();
  await p.b.start([]);
  const got = await task(p.b, id, 'received');
  assert.equal(got.status, 'submitted');
  assert.equal(got.peer, p.a.address);
  assert.equal(got.description, 'summarise the logs of yesterday');

  const acc = await p.b.ctl(['task', 'accept', id.slice(0, 8)]); // a unique prefix is enough
  assert.equal(acc.code, 0, acc.stderr);
  assert.equal(acc.json.data.notified, true);
  assert.equal((await task(p.a, id, 'submitted')).status, 'accepted');

  await p.a.stop();
  await p.a.start([]);
  const ex = await p.b.ctl(['task', 'execute']); // the oldest accepted task
  assert.equal(ex.code, 0, ex.stderr);
  assert.equal(ex.json.data.task.id, id);
  assert.equal(ex.json.data.task.description, 'summarise the logs of yesterday');
  assert.equal((await task(p.a, id, 'submitted')).status, 'executing');

  // the submitter is offline when the results are ready, and the executor restarts too
  await p.a.stop();
  const res = await p.b.ctl(['task', 'send-results', id, '--results', 'all quiet: 0 errors']);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.json.data.notified, false);
  assert.equal(res.json.data.task.status, 'completed');
  await p.b.stop();
  await p.b.start([]);
  await p.a.start([]);
  const done = await waitStatus(p.a, id, 'completed');
  assert.equal(done.results, 'all quiet: 0 errors');
  assert.deepEqual(
    done.history.map((h: { status: string }) => h.status),
    ['submitted', 'accepted', 'executing', 'completed'],
  );
  const mine = await task(p.b, id, 'received');
  assert.equal(mine.notifyPending, false);
  assert.deepEqual(
    mine.history.map((h: { status: string }) => h.status),
    ['submitted', 'accepted', 'executing', 'completed'],
  );
});

test('the lifecycle refuses moves out of order, with a hint', async () => {
  const id: string = (await p.a.ctl(['task', 'submit', p.b.address, '--task', 'second'])).json.data.task.id;
  const ex = await p.b.ctl(['task', 'execute', id]);
  assert.equal(ex.code, 1);
  assert.equal(ex.json.code, 'BAD_ARGUMENT');
  assert.match(ex.json.hint, /accept or decline/);
  const sr = await p.b.ctl(['task', 'send-results', id, '--results', 'x']);
  assert.equal(sr.json.code, 'BAD_ARGUMENT');
  const dec = await p.b.ctl(['task', 'decline', id, '--reason', 'too busy']);
  assert.equal(dec.code, 0, dec.stderr);
  const acc = await p.b.ctl(['task', 'accept', id]);
  assert.equal(acc.json.code, 'BAD_ARGUMENT');
  const t = await waitStatus(p.a, id, 'declined', 10_000);
  assert.equal(t.reason, 'too busy');
  const none = await p.b.ctl(['task', 'accept', crypto.randomUUID()]);
  assert.equal(none.json.code, 'NOT_FOUND');
  // the submitter cannot drive a task it submitted
  const wrongSide = await p.a.ctl(['task', 'accept', id]);
  assert.equal(wrongSide.json.code, 'NOT_FOUND');
  const bad = await p.a.ctl(['task', 'list', '--type', 'everything']);
  assert.equal(bad.json.code, 'BAD_ARGUMENT');
});

test('only the executor can update a task: a third trusted node gets NOT_FOUND', async () => {
  const c = await startAgent(p.rdv, p.work, 'task-gamma');
  p.agents.push(c);
  await trustEachOther(p.a, c);
  const id: string = (await p.a.ctl(['task', 'submit', p.b.address, '--task', 'third'])).json.data.task.id;
  const { socket } = await openPipe('dial', { target: p.a.address, port: 1003 }, c.socket);
  const reader = new ByteReader(socket);
  socket.end(encodeFrame({ op: 'update', id, status: 'completed', results: 'forged' }));
  const ans = (await reader.readFrame()) as Record<string, unknown>;
  socket.destroy();
  assert.equal(ans.ok, false);
  assert.equal(ans.code, 'NOT_FOUND');
  const t = await task(p.a, id, 'submitted');
  assert.equal(t.status, 'submitted');
  assert.equal(t.results, null);
});

test('an untrusted node cannot submit a task', async () => {
  const s = await p.stranger();
  const r = await s.ctl(['task', 'submit', p.b.address, '--task', 'mine bitcoin']);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'NOT_TRUSTED');
  assert.equal((await s.ctl(['task', 'list'])).json.data.tasks.length, 0);
});
