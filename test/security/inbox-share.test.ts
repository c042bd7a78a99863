// Hole 9, inbox: one trusted peer cannot fill the inbox; it gets its share
// of messages (maxPeerInboxMessages, lowered to 20 here to keep the test
// short), then QUOTA_EXCEEDED, and another peer's message still arrives.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { Agent } from '../helpers/cluster.ts';
import { ask, message, type QuotaSetup, startQuotaSetup } from './quota-helpers.ts';

let setup: QuotaSetup;
let a: Agent;
let b: Agent;
let c: Agent;

before(async () => {
  setup = await startQuotaSetup('ib', { services: { maxPeerInboxMessages: 20 }, gamma: true });
  ({ a, b } = setup);
  c = setup.c!;
});

after(async () => {
  await setup?.stop();
});

test("one peer cannot fill the inbox: its share of messages, then QUOTA_EXCEEDED; another peer's message arrives; clearing gives the share back", async () => {
  let got = 0;
  let last: { code: number; json: any; stderr: string } | undefined;
  for (let i = 0; i < 25; i++) {
    const body = Buffer.from(`m${i}`);
    const s = await ask(a, b, 1001, { type: 'text', size: body.length, sha256: crypto.createHash('sha256').update(body).digest('hex') }, false);
    if (s.answer.ok !== true) {
      last = { code: 1, json: s.answer, stderr: '' };
      s.stream.socket.destroy();
      break;
    }
    s.stream.socket.end(body);
    const done = (await s.stream.reader.readFrame()) as Record<string, any>;
    s.stream.socket.destroy();
    assert.equal(done.ok, true, JSON.stringify(done));
    got++;
  }
  assert.equal(got, 20);
  assert.equal(last?.json.code, 'QUOTA_EXCEEDED');
  assert.match(last?.json.message, /out of space for you/);
  const m = await message(c, b, 'gamma gets through');
  assert.equal(m.code, 0, m.stderr);
  assert.equal((await b.ctl(['inbox', '--clear'])).code, 0);
  const again = await message(a, b, 'after clear');
  assert.equal(again.code, 0, again.stderr);
});
