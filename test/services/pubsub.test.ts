// Port 1002 pub/sub: wildcards, --count, NDJSON streaming, local and remote
// brokers, subscribers that leave. Real daemons and the real pilotctl.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { IpcClient } from '../../src/ipc/client.ts';
import { startPair, sleep, type Pair } from './helpers.ts';
import type { Agent } from '../helpers/cluster.ts';

let p: Pair;

before(async () => {
  p = await startPair('pubsub');
});

after(async () => {
  await p?.stop();
});

async function subscribers(agent: Agent): Promise<number> {
  const c = new IpcClient(agent.socket);
  try {
    return (await c.call('pubsub_status')).subscribers;
  } finally {
    c.close();
  }
}

async function waitSubscribers(agent: Agent, n: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await subscribers(agent)) >= n) return;
    await sleep(50);
  }
  assert.fail(`${agent.name} never had ${n} subscribers`);
}

/** NDJSON event lines of a --json subscribe run. */
const events = (stdout: string): any[] =>
  stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((m) => m.event === true)
    .map((m) => m.data);

test('topic wildcards and --count: each subscriber gets exactly its topics, then exits', async () => {
  const alpha = p.a.name; // the broker, by hostname
  const all = p.a.ctl(['subscribe', alpha, '*', '--count', '4', '--timeout', '60s']); // alpha's own broker, locally
  const star = p.b.ctl(['subscribe', alpha, 'sensors.*', '--count', '2', '--timeout', '60s']);
  const mid = p.b.ctl(['subscribe', alpha, 'sensors.*.temp', '--count', '1', '--timeout', '60s']);
  const exact = p.b.ctl(['subscribe', p.a.address, 'sensors.kitchen', '--count', '1', '--timeout', '60s']);
  await waitSubscribers(p.a, 4);

  const pub = async (from: Agent, topic: string, data: string): Promise<number> => {
    const r = await from.ctl(['publish', alpha, topic, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
    return r.json.data.delivered;
  };
  assert.equal(await pub(p.b, 'other.x', 'o'), 1);
  assert.equal(await pub(p.b, 'sensors.kitchen', 'k'), 3);
  assert.equal(await pub(p.a, 'sensors.kitchen.temp', '21.5'), 3); // publish on our own broker
  assert.equal(await pub(p.b, 'sensors', 's'), 1);

  const [rAll, rStar, rMid, rExact] = await Promise.all([all, star, mid, exact]);
  for (const r of [rAll, rStar, rMid, rExact]) assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    events(rAll.stdout).map((e) => e.topic),
    ['other.x', 'sensors.kitchen', 'sensors.kitchen.temp', 'sensors'],
  );
  assert.deepEqual(
    events(rStar.stdout).map((e) => `${e.topic}=${e.data}`),
    ['sensors.kitchen=k', 'sensors.kitchen.temp=21.5'],
  );
  assert.deepEqual(
    events(rMid.stdout).map((e) => e.data),
    ['21.5'],
  );
  const ex = events(rExact.stdout);
  assert.equal(ex.length, 1);
  assert.equal(ex[0].from, p.b.address); // the publisher
  assert.equal(events(rAll.stdout)[2].from, p.a.address);
  // every subscriber left once it had its count
  for (let i = 0; i < 100 && (await subscribers(p.a)) > 0; i++) await sleep(50);
  assert.equal(await subscribers(p.a), 0);
});

test('unbounded subscribe streams NDJSON until its timeout', async () => {
  // The window must hold the five publishes even on a loaded CI box: they go
  // straight over IPC (a pilotctl process each took >4 s together once in CI).
  const sub = p.b.ctl(['subscribe', p.a.address, 'logs.*', '--timeout', '6s']);
  await waitSubscribers(p.a, 1);
  const c = new IpcClient(p.a.socket);
  try {
    for (let i = 0; i < 5; i++) {
      const r = await c.call('publish', { target: p.a.address, topic: `logs.l${i}`, data: `line ${i}` });
      assert.equal(r.delivered, 1);
    }
  } finally {
    c.close();
  }
  const r = await sub;
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 6); // five events, then the summary
  assert.deepEqual(
    lines.slice(0, 5).map((l) => l.data.data),
    ['line 0', 'line 1', 'line 2', 'line 3', 'line 4'],
  );
  assert.ok(lines.slice(0, 5).every((l) => l.status === 'ok' && l.event === true));
  assert.deepEqual(lines[5], { status: 'ok', data: { target: p.a.address, topic: 'logs.*', received: 5 } });
});

test('--count not reached before --timeout is a TIMEOUT error', async () => {
  const r = await p.b.ctl(['subscribe', p.a.address, 'quiet.*', '--count', '2', '--timeout', '1s']);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'TIMEOUT');
});

test('a subscriber that goes away (its pilotctl killed) is removed from the broker', async () => {
  // the raw IPC socket of a pilotctl subscribe, so the test can kill it
  const sock = net.connect(p.b.socket);
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const got: string[] = [];
  let buf = '';
  sock.on('data', (c: Buffer) => {
    buf += c.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      const m = JSON.parse(l);
      if (m.event === 'event') got.push(m.data.data);
    }
  });
  sock.write(JSON.stringify({ id: 1, method: 'subscribe', params: { target: p.a.address, topic: '*' } }) + '\n');
  await waitSubscribers(p.a, 1);
  assert.equal((await p.a.ctl(['publish', p.a.address, 'x', '--data', 'one'])).json.data.delivered, 1);
  for (let i = 0; i < 50 && got.length === 0; i++) await sleep(50);
  assert.deepEqual(got, ['one']);
  sock.destroy();
  // the daemon learns that its IPC client died at its next write to it: the next event
  // (or the IPC keepalive within 15 s on a quiet topic) ends the subscription at the broker
  assert.equal((await p.a.ctl(['publish', p.a.address, 'x', '--data', 'lost'])).code, 0);
  for (let i = 0; i < 100 && (await subscribers(p.a)) > 0; i++) await sleep(50);
  assert.equal(await subscribers(p.a), 0);
  assert.equal((await p.a.ctl(['publish', p.a.address, 'x', '--data', 'two'])).json.data.delivered, 0);
});

test('bad topics are refused locally; an untrusted node can neither publish nor subscribe', async () => {
  const bad = await p.b.ctl(['publish', p.a.address, 'a..b', '--data', 'x']);
  assert.equal(bad.code, 1);
  assert.equal(bad.json.code, 'BAD_ARGUMENT');
  const badSub = await p.b.ctl(['subscribe', p.a.address, 'a.*x', '--count', '1']);
  assert.equal(badSub.code, 1);
  assert.equal(badSub.json.code, 'BAD_ARGUMENT');
  const s = await p.stranger();
  const pub = await s.ctl(['publish', p.a.address, 'x', '--data', 'intruder']);
  assert.equal(pub.code, 1);
  assert.equal(pub.json.code, 'NOT_TRUSTED');
  const sub = await s.ctl(['subscribe', p.a.address, '*', '--count', '1', '--timeout', '2s']);
  assert.equal(sub.code, 1);
  assert.equal(sub.json.code, 'NOT_TRUSTED');
});
