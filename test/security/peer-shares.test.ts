// Hole 9, shares: one trusted peer cannot take every pub/sub slot or queue
// unbounded tasks; another peer still gets in (default limits). Real
// daemons; the flooding peer speaks raw frames through dial pipes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Agent } from '../helpers/cluster.ts';
import { ask, dirBytes, type QuotaSetup, type RawStream, rssOf, startQuotaSetup } from './quota-helpers.ts';

let setup: QuotaSetup;
let work: string;
let a: Agent;
let b: Agent;
let c: Agent;
const open: RawStream[] = [];

before(async () => {
  setup = await startQuotaSetup('ps', { gamma: true });
  ({ work, a, b } = setup);
  c = setup.c!;
});

after(async () => {
  for (const s of open) s.socket.destroy();
  await setup?.stop();
});

test('one peer cannot take all pub/sub subscriptions: it gets its share (16), another peer still subscribes', async () => {
  let got = 0;
  let refusal: Record<string, any> | undefined;
  // today one peer takes all 256 slots
  for (let i = 0; i < 257; i++) {
    const { answer, stream } = await ask(a, b, 1002, { op: 'subscribe', topic: `t${i}.*` }, false);
    open.push(stream);
    if (answer.ok !== true) {
      refusal = answer;
      break;
    }
    got++;
  }
  console.log(`# alpha got ${got} subscriptions, then ${refusal?.code}`);
  assert.equal(got, 16, 'one peer gets its share of the subscriptions, not all of them');
  assert.equal(refusal?.code, 'QUOTA_EXCEEDED');
  assert.match(refusal?.hint, /wildcard/);
  const other = await ask(c, b, 1002, { op: 'subscribe', topic: 'x.*' }, false);
  open.push(other.stream);
  assert.equal(other.answer.ok, true, JSON.stringify(other.answer));
  // a closed subscription gives its slot back
  const first = open.shift()!;
  first.socket.end();
  first.socket.destroy();
  let again: Record<string, any> | undefined;
  for (let i = 0; i < 50; i++) {
    const r = await ask(a, b, 1002, { op: 'subscribe', topic: 'again.*' }, false);
    open.push(r.stream);
    again = r.answer;
    if (again.ok === true) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(again?.ok, true, 'the slot came back');
});

test('a task flood from one peer is bounded: its open tasks (100), memory and disk; another peer still submits', async () => {
  const rss0 = rssOf(b.pid);
  const description = 'x'.repeat(60 * 1024);
  let got = 0;
  let refusal: Record<string, any> | undefined;
  for (let i = 0; i < 300; i++) {
    const { answer } = await ask(a, b, 1003, { op: 'submit', id: crypto.randomUUID(), description });
    if (answer.ok !== true) {
      refusal = answer;
      break;
    }
    got++;
  }
  const disk = dirBytes(path.join(b.home, 'tasks'));
  const rss1 = rssOf(b.pid);
  console.log(
    `# alpha queued ${got} tasks, then ${refusal?.code}; beta's tasks on disk ${(disk / 1024 / 1024).toFixed(1)} MiB, RSS ${(rss0 / 1e6).toFixed(0)} -> ${(rss1 / 1e6).toFixed(0)} MB`,
  );
  assert.equal(got, 100, 'one peer queues at most its share of open tasks');
  assert.equal(refusal?.code, 'QUOTA_EXCEEDED');
  assert.match(refusal?.message, /open/);
  assert.ok(disk < 100 * 70 * 1024, `tasks on disk are bounded by the share (${disk})`);
  const other = await c.ctl(['task', 'submit', b.address, '--task', 'gamma still gets in']);
  assert.equal(other.code, 0, other.stderr);
});

test('one peer cannot hold every file transfer slot: 2 at a time, then QUOTA_EXCEEDED; another peer still sends', async () => {
  const held: RawStream[] = [];
  let got = 0;
  let refusal: Record<string, any> | undefined;
  // today one peer holds all 8 slots (announce, then never send the body)
  for (let i = 0; i < 8; i++) {
    const body = crypto.randomBytes(1024);
    const { answer, stream } = await ask(
      a,
      b,
      1001,
      { type: 'file', name: `slot${i}.bin`, size: body.length, sha256: crypto.createHash('sha256').update(body).digest('hex') },
      false,
    );
    held.push(stream);
    open.push(stream);
    if (answer.ok !== true) {
      refusal = answer;
      break;
    }
    got++;
  }
  assert.equal(got, 2, 'one peer holds at most its share of the transfer slots');
  assert.equal(refusal?.code, 'QUOTA_EXCEEDED');
  const f = path.join(work, 'gamma.txt');
  fs.writeFileSync(f, 'gamma still sends');
  const g = await c.ctl(['send-file', b.address, f]);
  assert.equal(g.code, 0, g.stderr);
});
