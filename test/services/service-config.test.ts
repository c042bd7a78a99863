// services.json: each built-in service can be switched off; a broken file
// stops the daemon from starting instead of being ignored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent } from '../helpers/cluster.ts';
import { startPair, type Pair } from './helpers.ts';

let p: Pair;

before(async () => {
  p = await startPair('cfg', { bServices: { files: false, pubsub: false, tasks: false, webhooks: false } });
});

after(async () => {
  await p?.stop();
});

test('disabled services refuse peers with CONNECTION_REFUSED; the enabled one works', async () => {
  const file = path.join(p.work, 'f.txt');
  fs.writeFileSync(file, 'x');
  const f = await p.a.ctl(['send-file', p.b.address, file]);
  assert.equal(f.code, 1);
  assert.equal(f.json.code, 'CONNECTION_REFUSED', f.stderr);
  const pub = await p.a.ctl(['publish', p.b.address, 'a', '--data', 'x']);
  assert.equal(pub.json.code, 'CONNECTION_REFUSED', pub.stderr);
  const t = await p.a.ctl(['task', 'submit', p.b.address, '--task', 'x']);
  assert.equal(t.json.code, 'CONNECTION_REFUSED', t.stderr);
  const m = await p.a.ctl(['send-message', p.b.address, '--data', 'messages still on']);
  assert.equal(m.code, 0, m.stderr);
  // and locally, with a hint saying where to switch it on
  for (const args of [['received'], ['task', 'list'], ['set-webhook', 'http://127.0.0.1:1/x']]) {
    const r = await p.b.ctl(args);
    assert.equal(r.json.code, 'CONNECTION_REFUSED', args.join(' '));
    assert.match(r.json.hint, /services\.json/);
  }
  assert.equal((await p.b.ctl(['inbox'])).json.data.messages.length, 1);
});

test('a broken services.json stops the daemon from starting, with the reason', async () => {
  const x = new Agent('cfg-broken', p.work);
  fs.mkdirSync(x.home, { recursive: true });
  fs.writeFileSync(path.join(x.home, 'services.json'), JSON.stringify({ pubsub: 'nope', typo: true }));
  const r = await x.ctl(['daemon', 'start', '--registry', p.rdv.addr, '--email', 'cfg-broken@example.com', '--listen', '127.0.0.1:0']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr + r.stdout, /services\.json/);
  assert.match(r.stderr + r.stdout, /pubsub/);
});
