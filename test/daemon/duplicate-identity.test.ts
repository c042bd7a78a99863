// A node's identity appears twice for a while (a copy of its home started elsewhere: two machines with one
// key), then the copy goes away. The original pair must talk again within seconds, both ways, the way
// WireGuard/Tailscale recover: the newest authenticated handshake wins and the peer roams to its source.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';

let rdv: Rendezvous;
let work: string;
let a: Agent;
let b: Agent;
let copy: Agent;

before(async () => {
  work = tmpDir();
  rdv = await startRendezvous();
  a = new Agent('alpha', work);
  b = new Agent('beta', work);
  await a.start(['--registry', rdv.addr, '--email', 'a@example.com', '--hostname', 'dup-alpha', '--listen', '127.0.0.1:0']);
  await b.start(['--registry', rdv.addr, '--email', 'b@example.com', '--hostname', 'dup-beta', '--listen', '127.0.0.1:0']);
  assert.equal((await b.ctl(['handshake', a.address, 'tests'])).code, 0);
  const ap = await a.ctl(['approve', b.address]);
  assert.equal(ap.code, 0, ap.stderr);
});

after(async () => {
  await copy?.stop();
  await a?.stop();
  await b?.stop();
  await rdv?.kill();
});

async function ping(from: Agent, to: string): Promise<boolean> {
  const r = await from.ctl(['ping', to, '--count', '1', '--timeout', '1s']);
  return r.code === 0 && r.json?.data?.received === 1;
}

/** Seconds until `from` pings `to` again (polling), or Infinity after `budgetS`. */
async function secondsUntilPing(from: Agent, to: string, budgetS: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < budgetS * 1000) {
    if (await ping(from, to)) return (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 200));
  }
  return Infinity;
}

test('a pair recovers within seconds after a copy of one identity ran and stopped', async (t) => {
  assert.ok(await ping(a, b.address), 'a -> b before the copy');
  assert.ok(await ping(b, a.address), 'b -> a before the copy');
  // Some traffic first, as a pair that has been talking for a while: alpha's packet numbers toward beta
  // climb well past what a fresh connection starts at (300 echo replies).
  const busy = await b.ctl(['ping', a.address, '--count', '300', '--interval', '2ms', '--timeout', '2s'], 120_000);
  assert.equal(busy.code, 0, busy.stderr);
  // and streams both ways (stream ids in use on both sides)
  assert.equal((await a.ctl(['send-message', b.address, '--data', 'before'])).code, 0);
  assert.equal((await b.ctl(['send-message', a.address, '--data', 'before'])).code, 0);
  // A copy of beta's home in another directory: the lock does not stop it (two machines, one key).
  const copyHome = path.join(work, 'beta-copy');
  fs.mkdirSync(copyHome, { mode: 0o700 });
  for (const f of fs.readdirSync(b.home)) {
    if (/^(pilot\.sock|pilot\.lock|daemon\.pid|pilot\.log)$/.test(f)) continue;
    fs.cpSync(path.join(b.home, f), path.join(copyHome, f), { recursive: true });
  }
  copy = new Agent('beta-copy', work);
  const cfg = JSON.parse(fs.readFileSync(path.join(copyHome, 'config.json'), 'utf8'));
  delete cfg.socket;
  fs.writeFileSync(path.join(copyHome, 'config.json'), JSON.stringify(cfg));
  await copy.start(['--listen', '127.0.0.1:0']);
  assert.equal(copy.address, b.address, 'the copy registers the same address');
  // Both copies talk to alpha; the copy handshook last, so alpha's session and path point at it.
  await ping(b, a.address);
  assert.ok(await ping(copy, a.address), 'the copy reaches alpha');
  assert.ok(await ping(a, b.address), 'alpha reaches (the copy of) beta');
  await copy.stop();
  const ab = await secondsUntilPing(a, b.address, 30);
  const ba = await secondsUntilPing(b, a.address, 30);
  t.diagnostic(`recovered after the copy stopped: alpha -> beta ${ab} s, then beta -> alpha ${ba} s`);
  // streams too: both sides start their connection over (not only datagrams get through)
  const m1 = await a.ctl(['send-message', b.address, '--data', 'after the copy'], 30_000);
  assert.equal(m1.code, 0, m1.stderr);
  const m2 = await b.ctl(['send-message', a.address, '--data', 'after the copy'], 30_000);
  assert.equal(m2.code, 0, m2.stderr);
  if (process.env.DUP_DEBUG) for (const x of [a, b]) t.diagnostic(`${x.name}: ${JSON.stringify(await x.ipc('stats'))} ${JSON.stringify(await x.ipc('peers'))}`);
  assert.ok(ab <= 5, `alpha -> beta recovered after ${ab} s`);
  assert.ok(ba <= 5, `beta -> alpha recovered after ${ba} s`);
});
