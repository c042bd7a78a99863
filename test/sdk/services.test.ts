// The daemon's built-in services through the SDK (node.messages, files, pubsub,
// tasks, stdio, webhooks), against real daemons and one embedded node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { connect, startNode, PilotError, type FileProgress, type PilotNode } from '../../src/sdk/index.ts';
import { verifySignature } from '../../src/services/webhook.ts';
import type { Agent } from '../helpers/cluster.ts';
import { sleep, startNet, trustPair, type Net } from './helpers.ts';

let net: Net;
let a: Agent;
let b: Agent;
let na: PilotNode;
let nb: PilotNode;
let nc: PilotNode; // not trusted by anyone
const nodes: PilotNode[] = [];

const isCode = (code: string) => (e: unknown) => e instanceof PilotError && e.code === code;

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Poll `fn` until it returns a value, or fail after `ms`. */
async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

before(async () => {
  net = await startNet();
  [a, b] = await Promise.all([net.agent('sv-a'), net.agent('sv-b')]);
  const c = await net.agent('sv-c');
  await trustPair(a, b);
  na = await connect({ socket: a.socket });
  nb = await connect({ socket: b.socket });
  nc = await connect({ socket: c.socket });
  nodes.push(na, nb, nc);
});

after(async () => {
  for (const n of nodes) await n.close();
  await net?.stop();
});

test('messages: text, json and bytes land in the peer inbox; clear empties it', async () => {
  const t = await na.messages.send('sv-b', 'hello from a');
  assert.equal(t.peer, b.address);
  assert.equal(t.type, 'text');
  assert.equal(t.bytes, 12);
  assert.equal(t.sha256, crypto.createHash('sha256').update('hello from a').digest('hex'));
  assert.equal((await na.messages.sendJson(b.address, { k: [1, 2] })).type, 'json');
  const raw = crypto.randomBytes(300);
  assert.equal((await na.messages.send(b.address, raw)).type, 'binary');
  await assert.rejects(na.messages.send(b.address, raw, { type: 'text' }), isCode('BAD_ARGUMENT'));
  await assert.rejects(na.messages.send(b.address, '{nope', { type: 'json' }), isCode('BAD_ARGUMENT'));

  const inbox = await nb.messages.inbox();
  assert.deepEqual(
    inbox.map((m) => m.type),
    ['text', 'json', 'binary'],
  );
  assert.ok(inbox.every((m) => m.from === a.address));
  assert.equal(inbox[0]!.id, t.id);
  assert.equal(inbox[0]!.data, 'hello from a');
  assert.deepEqual(inbox[1]!.json, { k: [1, 2] });
  assert.equal(inbox[2]!.encoding, 'base64');
  assert.ok(Buffer.from(inbox[2]!.data, 'base64').equals(raw));
  assert.equal(await nb.messages.clear(), 3);
  assert.deepEqual(await nb.messages.inbox(), []);
});

test('files: a file arrives in received with the same sha256, progress reported; an aborted send rejects', async () => {
  const file = path.join(net.work, 'report.bin');
  const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
  fs.writeFileSync(file, data);
  const sha = crypto.createHash('sha256').update(data).digest('hex');
  const progress: FileProgress[] = [];
  const r = await na.files.send('sv-b', file, { onProgress: (p) => progress.push(p) });
  assert.equal(r.peer, b.address);
  assert.equal(r.bytes, data.length);
  assert.equal(r.sha256, sha);
  assert.equal(r.name, 'report.bin');
  assert.equal(r.file, file);
  assert.ok(progress.length >= 2);
  assert.deepEqual(progress.at(-1), { sent: data.length, size: data.length, resumedFrom: 0 });

  const got = await nb.files.received();
  const f = got.files.find((x) => x.name === 'report.bin');
  assert.ok(f, JSON.stringify(got));
  assert.equal(f.sha256, sha);
  assert.equal(f.from, a.address);
  assert.equal(f.size, data.length);
  assert.equal(path.dirname(f.path), got.dir);
  assert.equal(crypto.createHash('sha256').update(fs.readFileSync(f.path)).digest('hex'), sha);

  // cancelled at the first progress report: CONNECTION_RESET, nothing stored
  const big = path.join(net.work, 'big.bin');
  fs.writeFileSync(big, crypto.randomBytes(24 * 1024 * 1024));
  const ac = new AbortController();
  await assert.rejects(na.files.send(b.address, big, { signal: ac.signal, onProgress: () => ac.abort() }), isCode('CONNECTION_RESET'));
  await assert.rejects(na.files.send(b.address, path.join(net.work, 'missing.bin')), isCode('NOT_FOUND'));
  assert.equal(
    (await nb.files.received()).files.some((x) => x.name === 'big.bin'),
    false,
  );
  assert.equal(await nb.files.clear(), 1);
});

test('pub/sub: a wildcard subscription on a peer broker gets matching events; break cancels', async () => {
  const sub = await nb.pubsub.subscribe('sv-a', 'jobs.*', { count: 2, timeoutMs: 10_000 });
  const events = collect(sub);
  assert.equal((await na.pubsub.publish('sv-a', 'other.thing', 'no')).delivered, 0); // a's own broker
  const p1 = await nb.pubsub.publish(a.address, 'jobs.new', 'j1'); // b publishes on a's broker
  assert.deepEqual({ peer: p1.peer, topic: p1.topic, delivered: p1.delivered }, { peer: a.address, topic: 'jobs.new', delivered: 1 });
  await na.pubsub.publish(a.address, 'jobs.done', 'j1 ok');
  const got = await events;
  assert.deepEqual(
    got.map((e) => [e.topic, e.data, e.from]),
    [
      ['jobs.new', 'j1', b.address],
      ['jobs.done', 'j1 ok', a.address],
    ],
  );
  assert.deepEqual(await sub.done, { received: 2, cancelled: false });
  const noSubscribers = async (): Promise<true | undefined> => ((await na.pubsub.status()).subscribers === 0 ? true : undefined);
  await until('b to leave the broker', noSubscribers); // b's daemon closes its broker stream after the count

  // a subscription on this node's own broker, left by break
  const local = await na.pubsub.subscribe('sv-a', '*');
  assert.equal((await na.pubsub.status()).subscribers, 1);
  await nb.pubsub.publish('sv-a', 'any.topic', 'x');
  for await (const ev of local) {
    assert.equal(ev.topic, 'any.topic');
    break;
  }
  assert.deepEqual(await local.done, { received: 1, cancelled: true });
  await until('the broker to drop the subscriber', noSubscribers);

  // a timeout ends it with fewer events; a bad pattern is refused
  const quiet = await nb.pubsub.subscribe('sv-a', 'silent.*', { timeoutMs: 300 });
  assert.deepEqual(await collect(quiet), []);
  await assert.rejects(nb.pubsub.subscribe('sv-a', 'a..b'), isCode('BAD_ARGUMENT'));
});

test('tasks: submit, accept, execute, send results; the submitter sees each step; decline with a reason', async () => {
  const t = await na.tasks.submit('sv-b', 'summarize the logs');
  assert.equal(t.status, 'submitted');
  assert.equal(t.role, 'submitted');
  assert.equal(t.peer, b.address);
  const received = await nb.tasks.list({ type: 'received' });
  assert.deepEqual(
    received.map((x) => [x.id, x.status, x.peer, x.description]),
    [[t.id, 'submitted', a.address, 'summarize the logs']],
  );

  const acc = await nb.tasks.accept(t.id.slice(0, 8)); // a unique prefix works
  assert.equal(acc.task.status, 'accepted');
  assert.equal(acc.notified, true);
  const ex = await nb.tasks.execute();
  assert.equal(ex.task.id, t.id);
  assert.equal(ex.task.status, 'executing');
  const done = await nb.tasks.sendResults(t.id, '42 errors, all timeouts');
  assert.equal(done.task.status, 'completed');
  assert.deepEqual(
    done.task.history.map((h) => h.status),
    ['submitted', 'accepted', 'executing', 'completed'],
  );
  const mine = await until('the submitter copy to complete', async () =>
    (await na.tasks.list({ type: 'submitted' })).find((x) => x.id === t.id && x.status === 'completed'),
  );
  assert.equal(mine.results, '42 errors, all timeouts');

  const t2 = await na.tasks.submit(b.address, 'rewrite it in rust');
  const dec = await nb.tasks.decline(t2.id, 'no');
  assert.equal(dec.task.status, 'declined');
  assert.equal(dec.task.reason, 'no');
  await until('the submitter copy to be declined', async () => ((await na.tasks.list()).find((x) => x.id === t2.id)?.status === 'declined' ? true : undefined));
  await assert.rejects(nb.tasks.execute(), isCode('NOT_FOUND'));
  await assert.rejects(nb.tasks.accept(t2.id), isCode('BAD_ARGUMENT'));
});

test('stdio: lines sent to a peer are taken from its queue, queued ones first', async () => {
  const s1 = await na.stdio.send('sv-b', 'queued before reading\n');
  assert.deepEqual(s1, { target: 'sv-b', sent: 22, lines: 1, truncated: 0 });
  const reader = await nb.stdio.recv({ from: 'sv-a', count: 3, timeoutMs: 10_000 });
  const lines = collect(reader);
  assert.equal((await na.stdio.send(b.address, ['one', 'two'])).lines, 2);
  const got = await lines;
  assert.deepEqual(
    got.map((m) => [m.data, m.from, m.via]),
    [
      ['queued before reading', a.address, 'stream'],
      ['one', a.address, 'stream'],
      ['two', a.address, 'stream'],
    ],
  );
  assert.deepEqual(await reader.done, { received: 3, cancelled: false });
  const st = await nb.stdio.status();
  assert.equal(st.queued, 0);
  assert.ok(st.received >= 3);

  // a callback instead of the iterator, stopped with an AbortSignal
  const ac = new AbortController();
  const seen: string[] = [];
  const cb = await nb.stdio.recv({ signal: ac.signal, onItem: (m) => seen.push(m.data) });
  await na.stdio.send('sv-b', 'via callback');
  await until('the callback', async () => (seen.length > 0 ? true : undefined));
  ac.abort();
  assert.deepEqual(await cb.done, { received: 1, cancelled: true });
  assert.deepEqual(seen, ['via callback']);
});

test('webhooks: set, deliveries signed with the secret, status, clear', async () => {
  const hits: Array<{ event: string; valid: boolean; body: { event: string; data: Record<string, unknown> } }> = [];
  let secret = '';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      hits.push({
        event: String(req.headers['x-pilot-event']),
        valid: verifySignature(secret, raw, req.headers['x-pilot-signature'] as string),
        body: JSON.parse(raw.toString()),
      });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
    const set = await nb.webhooks.set(url);
    assert.equal(set.url, url);
    secret = set.secret;
    assert.equal((await nb.webhooks.status()).url, url);
    await na.messages.send('sv-b', 'ring');
    const hit = await until('the webhook POST', async () => hits.find((h) => h.event === 'message_received'));
    assert.equal(hit.valid, true);
    assert.equal(hit.body.data.from, a.address);
    const st = await until('the delivered counter', async () => {
      const s = await nb.webhooks.status();
      return s.delivered >= 1 ? s : undefined;
    });
    assert.equal(st.failed, 0);
    await nb.webhooks.clear();
    assert.equal((await nb.webhooks.status()).url, null);
    await assert.rejects(nb.webhooks.set('ftp://example.com/x'), isCode('BAD_ARGUMENT'));
    await nb.messages.clear();
  } finally {
    server.close();
  }
});

test('an untrusted node gets NOT_TRUSTED from every service', async () => {
  await assert.rejects(nc.messages.send(a.address, 'let me in'), isCode('NOT_TRUSTED'));
  await assert.rejects(nc.files.send(a.address, path.join(net.work, 'report.bin')), isCode('NOT_TRUSTED'));
  await assert.rejects(nc.pubsub.publish(a.address, 'jobs.new', 'x'), isCode('NOT_TRUSTED'));
  await assert.rejects(nc.pubsub.subscribe(a.address, '*'), isCode('NOT_TRUSTED'));
  await assert.rejects(nc.tasks.submit(a.address, 'do it'), isCode('NOT_TRUSTED'));
  await assert.rejects(nc.stdio.send(a.address, 'hi'), isCode('NOT_TRUSTED'));
  assert.deepEqual(await na.messages.inbox(), []);
});

test('an embedded node runs the same services (a disabled one is CONNECTION_REFUSED)', async () => {
  const home = path.join(net.work, 'sv-embedded');
  fs.mkdirSync(home, { recursive: true });
  fs.writeFileSync(path.join(home, 'services.json'), JSON.stringify({ webhooks: false })); // a service switched off
  const e = await startNode({ home, registry: net.rdv.addr, email: 'sv-e@example.com', hostname: 'sv-e', listen: '127.0.0.1:0', logger: 'silent' });
  nodes.push(e);
  assert.equal(e.mode, 'embedded');
  await e.handshake(a.address);
  await na.approve(e.address);
  await until('mutual trust', async () => ((await e.trusted()).some((t) => t.peer === a.address && t.mutual) ? true : undefined));

  // embedded -> daemon and back
  assert.equal((await e.messages.send(a.address, 'from the embedded node')).peer, a.address);
  assert.deepEqual(
    (await na.messages.inbox()).map((m) => [m.from, m.data]),
    [[e.address, 'from the embedded node']],
  );
  await na.messages.send('sv-e', 'to the embedded node');
  assert.equal((await e.messages.inbox())[0]?.data, 'to the embedded node');

  // stdio and pub/sub on the embedded node's own services
  const reader = await e.stdio.recv({ count: 1, timeoutMs: 10_000 });
  await na.stdio.send('sv-e', 'line for e');
  assert.deepEqual(
    (await collect(reader)).map((m) => m.data),
    ['line for e'],
  );
  const sub = await e.pubsub.subscribe('sv-e', 'e.*', { count: 1, timeoutMs: 10_000 });
  assert.equal((await na.pubsub.publish('sv-e', 'e.hello', 'hi e')).delivered, 1);
  assert.deepEqual(
    (await collect(sub)).map((ev) => [ev.topic, ev.from]),
    [['e.hello', a.address]],
  );
  const local = await e.pubsub.subscribe('sv-e', '*');
  local.cancel();
  assert.deepEqual(await local.done, { received: 0, cancelled: true });

  // a task from the daemon, run by the embedded node; a cancelled file send
  const t = await na.tasks.submit('sv-e', 'embedded work');
  await e.tasks.accept(t.id);
  await e.tasks.execute(t.id);
  assert.equal((await e.tasks.sendResults(t.id, 'ok')).task.status, 'completed');
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(e.files.send(a.address, path.join(net.work, 'report.bin'), { signal: ac.signal }), isCode('CONNECTION_RESET'));
  const f = await e.files.send(a.address, path.join(net.work, 'report.bin'));
  assert.equal((await na.files.received()).files.find((x) => x.name === f.name)?.sha256, f.sha256);
  await assert.rejects(e.messages.send(nc.address, 'x'), isCode('NOT_TRUSTED'));
  await assert.rejects(e.webhooks.status(), isCode('CONNECTION_REFUSED'));
});
