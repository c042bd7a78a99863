// Port 1001 messages: real daemons, the real pilotctl, inbox on disk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPair, type Pair } from './helpers.ts';

let p: Pair;

before(async () => {
  // a small message limit on beta, to see the receiver refuse
  p = await startPair('msg', { bServices: { maxMessageBytes: 65536 } });
});

after(async () => {
  await p?.stop();
});

test('text, json and binary messages land in the inbox with sender and type', async () => {
  const t = await p.a.ctl(['send-message', p.b.address, '--data', 'hello beta']);
  assert.equal(t.code, 0, t.stderr);
  assert.equal(t.json.data.peer, p.b.address);
  const j = await p.a.ctl(['send-message', 'msg-beta', '--data', '{"k":[1,2]}', '--type', 'json']);
  assert.equal(j.code, 0, j.stderr);
  const bin = Buffer.from([0, 1, 2, 255, 254]);
  const bi = await p.a.ctl(['send-message', p.b.address, '--data', bin.toString('base64'), '--type', 'binary']);
  assert.equal(bi.code, 0, bi.stderr);

  const inbox = await p.b.ctl(['inbox']);
  assert.equal(inbox.code, 0, inbox.stderr);
  const msgs = inbox.json.data.messages;
  assert.equal(msgs.length, 3);
  assert.deepEqual(
    msgs.map((m: { type: string }) => m.type),
    ['text', 'json', 'binary'],
  );
  for (const m of msgs) assert.equal(m.from, p.a.address);
  assert.equal(msgs[0].data, 'hello beta');
  assert.deepEqual(msgs[1].json, { k: [1, 2] });
  assert.equal(msgs[2].encoding, 'base64');
  assert.deepEqual(Buffer.from(msgs[2].data, 'base64'), bin);
  // the sender's own inbox is untouched
  assert.equal((await p.a.ctl(['inbox'])).json.data.messages.length, 0);
});

test('invalid input is refused locally with a code: bad JSON, unknown type, bad base64', async () => {
  const j = await p.a.ctl(['send-message', p.b.address, '--data', '{nope', '--type', 'json']);
  assert.equal(j.code, 1);
  assert.equal(j.json.code, 'BAD_ARGUMENT');
  const t = await p.a.ctl(['send-message', p.b.address, '--data', 'x', '--type', 'xml']);
  assert.equal(t.code, 2, 'a value outside the contract: refused by pilotctl before sending (exit 2)');
  assert.equal(t.json.code, 'BAD_ARGUMENT');
  const b = await p.a.ctl(['send-message', p.b.address, '--data', '***', '--type', 'binary']);
  assert.equal(b.code, 1);
  assert.equal(b.json.code, 'BAD_ARGUMENT');
});

test('the inbox survives a daemon restart, and --clear empties it for good', async () => {
  const before = (await p.b.ctl(['inbox'])).json.data.messages.length;
  assert.ok(before > 0);
  await p.b.stop();
  await p.b.start([]);
  const after = await p.b.ctl(['inbox']);
  assert.equal(after.json.data.messages.length, before);
  // the restarted daemon still receives
  const s = await p.a.ctl(['send-message', p.b.address, '--data', 'after restart']);
  assert.equal(s.code, 0, s.stderr);
  const now = (await p.b.ctl(['inbox'])).json.data.messages;
  assert.equal(now.length, before + 1);
  assert.equal(now[now.length - 1].data, 'after restart');
  const c = await p.b.ctl(['inbox', '--clear']);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.json.data.cleared, before + 1);
  await p.b.stop();
  await p.b.start([]);
  assert.equal((await p.b.ctl(['inbox'])).json.data.messages.length, 0);
});

test("a message larger than the receiver's limit is refused by the receiver with FRAME_TOO_LARGE", async () => {
  const r = await p.a.ctl(['send-message', p.b.address, '--data', 'x'.repeat(70_000)]);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'FRAME_TOO_LARGE', r.stderr);
  assert.match(r.json.message, /limit 65536/);
  assert.equal((await p.b.ctl(['inbox'])).json.data.messages.length, 0);
  // and the next one goes through
  assert.equal((await p.a.ctl(['send-message', p.b.address, '--data', 'x'.repeat(60_000)])).code, 0);
  assert.equal((await p.b.ctl(['inbox', '--clear'])).json.data.cleared, 1);
});

test('an untrusted node cannot send a message', async () => {
  const s = await p.stranger();
  const r = await s.ctl(['send-message', p.b.address, '--data', 'let me in']);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'NOT_TRUSTED');
  assert.equal((await p.b.ctl(['inbox'])).json.data.messages.length, 0);
});
