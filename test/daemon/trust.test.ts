// Zero trust, enforced: real daemons, real rendezvous, the real CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';

let rdv: Rendezvous;
let work: string;
const agents: Agent[] = [];

async function agent(name: string, extra: string[] = []): Promise<Agent> {
  const a = new Agent(name, work);
  await a.start(['--registry', rdv.addr, '--email', `${name}@example.com`, '--hostname', name, '--listen', '127.0.0.1:0', ...extra]);
  agents.push(a);
  return a;
}

before(async () => {
  work = tmpDir();
  rdv = await startRendezvous();
});

after(async () => {
  for (const a of agents) await a.stop();
  await rdv?.kill();
});

test('an untrusted peer can neither find, connect, ping nor send to a private node', async () => {
  const priv = await agent('t-private');
  const stranger = await agent('t-stranger');
  const find = await stranger.ctl(['find', 't-private']);
  assert.equal(find.code, 1);
  assert.equal(find.json.code, 'NOT_FOUND');
  for (const args of [
    ['ping', priv.address, '--count', '1', '--timeout', '1s'],
    ['connect', priv.address, '7', '--message', 'x', '--timeout', '1s'],
    ['send', priv.address, '1000', '--data', 'x'],
  ]) {
    const r = await stranger.ctl(args);
    assert.equal(r.code, 1, `${args[0]} must fail`);
    assert.equal(r.json.code, 'NOT_TRUSTED', `${args[0]}: ${r.stderr}`);
  }
});

test('the seed sequence: handshake, approve, trust, ping; then revoke stops everything', async () => {
  const alpha = await agent('agent-alpha');
  const me = await agent('my-agent');
  const hs = await me.ctl(['handshake', alpha.address, 'I would like to send you tasks']);
  assert.equal(hs.code, 0, hs.stderr);
  assert.equal(hs.json.data.status, 'pending');
  const pend = await alpha.ctl(['pending']);
  assert.equal(pend.json.data.incoming.length, 1);
  assert.equal(pend.json.data.incoming[0].from, me.address);
  assert.equal(pend.json.data.incoming[0].reason, 'I would like to send you tasks');
  assert.equal((await alpha.ctl(['approve', 'my-agent'])).code, 0);
  const tr = await me.ctl(['trust']);
  assert.equal(tr.json.data.trusted[0].peer, alpha.address);
  assert.equal(tr.json.data.trusted[0].mutual, true);
  const ping = await me.ctl(['ping', 'agent-alpha', '--count', '2', '--interval', '100ms']);
  assert.equal(ping.code, 0, ping.stderr);
  assert.equal(ping.json.data.received, 2);

  // revoke from alpha's side: me is told (push) and nothing passes any more
  assert.equal((await alpha.ctl(['untrust', me.address])).code, 0);
  await new Promise((r) => setTimeout(r, 500));
  const after = await me.ctl(['trust']);
  assert.equal(after.json.data.trusted.length, 0);
  const ping2 = await me.ctl(['ping', alpha.address, '--count', '1', '--timeout', '1s']);
  assert.equal(ping2.code, 1);
  assert.equal(ping2.json.code, 'NOT_TRUSTED');
});

test('reject, and mutual requests auto-approve', async () => {
  const x = await agent('t-x');
  const y = await agent('t-y');
  await x.ctl(['handshake', y.address]);
  const rj = await y.ctl(['reject', x.address, 'not now']);
  assert.equal(rj.code, 0, rj.stderr);
  assert.equal((await y.ctl(['pending'])).json.data.incoming.length, 0);
  assert.equal((await x.ctl(['trust'])).json.data.trusted.length, 0);
  // now both ask: trusted at once
  assert.equal((await x.ctl(['handshake', y.address])).json.data.status, 'pending');
  assert.equal((await y.ctl(['handshake', x.address])).json.data.status, 'trusted');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await x.ctl(['trust'])).json.data.trusted[0].peer, y.address);
  const c = await x.ctl(['connect', y.address, '7', '--message', 'hello trusted']);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.json.data.reply, 'hello trusted');
});

test('pending requests survive restarts on both sides, and reach an offline target', async () => {
  const p = await agent('t-p');
  const q = await agent('t-q');
  await q.stop(); // offline target
  assert.equal((await p.ctl(['handshake', q.address, 'while you were out'])).code, 0);
  await p.stop();
  await p.start([]);
  await q.start([]);
  const inc = await q.ctl(['pending']);
  assert.equal(inc.json.data.incoming[0]?.from, p.address);
  assert.equal(inc.json.data.incoming[0]?.reason, 'while you were out');
  const out = await p.ctl(['pending']);
  assert.equal(out.json.data.outgoing[0]?.to, q.address);
  assert.equal((await q.ctl(['approve', p.address])).code, 0);
});

test('a public node is findable and pingable by anyone, but streams still need trust', async () => {
  await agent('t-public', ['--public']);
  const anyone = await agent('t-anyone');
  const f = await anyone.ctl(['find', 't-public']);
  assert.equal(f.code, 0, f.stderr);
  assert.equal(f.json.data.public, true);
  const ping = await anyone.ctl(['ping', 't-public', '--count', '1']);
  assert.equal(ping.code, 0, ping.stderr);
  const c = await anyone.ctl(['send', 't-public', '1000', '--data', 'x']);
  assert.equal(c.code, 1);
  assert.equal(c.json.code, 'NOT_TRUSTED');
});
