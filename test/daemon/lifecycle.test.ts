// Node lifecycle end to end (issue 18), with real daemons started by the real pilotctl and a
// real rendezvous: an ephemeral node that stops is gone at once (its address does not
// resolve, its hostname is free for another key); one killed with SIGKILL is gone after the
// rendezvous's --ephemeral-timeout; `pilotctl deregister`; and a clean stop reaches the peers
// (SDK peer-down within a second, dials fail fast) and the rendezvous (offline at once).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { connect, PilotError, startNode, type PilotNode } from '../../src/sdk/index.ts';
import path from 'node:path';
import { pidAlive } from '../../src/daemon/home-lock.ts';

/** Above the daemons' 20 s heartbeat (a live ephemeral node must not be swept), short for the test. */
const EPHEMERAL_TIMEOUT_S = 25;

let rdv: Rendezvous;
let work: string;
let obs: Agent;
const agents: Agent[] = [];
const nodes: PilotNode[] = [];

const node = (name: string, hostname = name) => ['--registry', rdv.addr, '--email', `${name}@example.com`, '--hostname', hostname, '--listen', '127.0.0.1:0'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function agent(name: string, extra: string[] = [], hostname = name): Promise<Agent> {
  const a = new Agent(name, work);
  agents.push(a);
  await a.start([...node(name, hostname), ...extra]);
  return a;
}

/** What the observer's daemon gets from the rendezvous for a target (pilotctl find). */
async function find(target: string): Promise<{ code: number; json: any }> {
  const r = await obs.ctl(['find', target]);
  return { code: r.code, json: r.json };
}

before(async () => {
  work = tmpDir('pilot-life-');
  rdv = await startRendezvous({ args: ['--ephemeral-timeout', String(EPHEMERAL_TIMEOUT_S)] });
  obs = await agent('observer');
});

after(async () => {
  for (const n of nodes) await n.close().catch(() => {});
  await Promise.all(agents.map((a) => a.stop()));
  await rdv?.kill();
});

test('an ephemeral node that stops is removed: its address does not resolve, its hostname is free for a new key at once', async () => {
  const eph = await agent('eph-1', ['--ephemeral']);
  assert.equal((await find(eph.address)).code, 0, 'resolves while it runs');
  const stop = await eph.ctl(['daemon', 'stop']);
  assert.equal(stop.code, 0, stop.stderr);
  const stoppedAt = Date.now();
  const gone = await find(eph.address);
  assert.notEqual(gone.code, 0, 'the address no longer resolves');
  assert.equal(gone.json?.code, 'NOT_FOUND');
  const goneMs = Date.now() - stoppedAt;
  // The hostname is free for another key within a second of the stop (the start itself takes longer).
  const taker = new Agent('eph-1-taker', work);
  agents.push(taker);
  const claim = await taker.ctl(['daemon', 'start', ...node('eph-1-taker', 'eph-1')]);
  assert.equal(claim.code, 0, `hostname eph-1 taken by a new key: ${claim.stderr}`);
  taker.address = claim.json.data.address;
  taker.pid = claim.json.data.pid;
  assert.notEqual(taker.address, eph.address, 'the node id is not handed out again');
  assert.equal((await taker.ctl(['info'])).json?.data?.hostname, 'eph-1');
  console.log(
    `# ephemeral stop -> address NOT_FOUND ${goneMs} ms after the stop returned (one pilotctl find run); hostname re-claimed ${Date.now() - stoppedAt} ms after (one daemon start)`,
  );
});

test('an ephemeral node killed with SIGKILL is removed after --ephemeral-timeout of silence', async () => {
  const eph = await agent('eph-2', ['--ephemeral']);
  eph.kill9();
  const killedAt = Date.now();
  let removedAfter = -1;
  while (Date.now() - killedAt < (EPHEMERAL_TIMEOUT_S + 20) * 1000) {
    const r = await find(eph.address);
    if (r.json?.code === 'NOT_FOUND') {
      removedAfter = Date.now() - killedAt;
      break;
    }
    await sleep(1000);
  }
  assert.ok(removedAfter >= 0, 'released by the sweep');
  assert.ok(removedAfter >= (EPHEMERAL_TIMEOUT_S - 21) * 1000, `not before its silence (${removedAfter} ms)`);
  const taker = await agent('eph-2-taker', [], 'eph-2'); // throws if the hostname were still taken
  assert.equal((await taker.ctl(['info'])).json?.data?.hostname, 'eph-2', 'its hostname is free');
  console.log(`# SIGKILLed ephemeral node removed ${removedAfter} ms after the kill (timeout ${EPHEMERAL_TIMEOUT_S} s)`);
});

test('pilotctl deregister: a permanent node is hidden (hostname released) and gets its address back on its next start; an ephemeral one is removed', async () => {
  const perm = await agent('perm-1');
  const r = await perm.ctl(['deregister']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.data.removed, false);
  assert.equal(r.json.data.address, perm.address);
  assert.equal(pidAlive(r.json.data.pid), false, 'the daemon stopped');
  assert.equal((await find('perm-1')).json?.code, 'NOT_FOUND', 'the hostname is released');
  assert.equal((await find(perm.address)).json?.code, 'NOT_FOUND', 'hidden until it registers again');
  const again = await perm.ctl(['daemon', 'start']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.json.data.address, perm.address, 'same key, same address');

  const eph = await agent('eph-3', ['--ephemeral']);
  const d = await eph.ctl(['deregister']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(d.json.data.removed, true);
  assert.equal((await find(eph.address)).json?.code, 'NOT_FOUND');
  // No daemon: a coded error with a hint.
  const none = await eph.ctl(['deregister']);
  assert.notEqual(none.code, 0);
  assert.equal(none.json?.code, 'NO_DAEMON');
  assert.ok(none.json?.hint);
});

test('a clean stop: the peer SDK sees peer-down within a second, its dial fails fast, the rendezvous shows the node offline at once', async () => {
  const a = await agent('bye-a');
  const b = await agent('bye-b');
  const hs = await b.ctl(['handshake', a.address, 'lifecycle test']);
  assert.equal(hs.code, 0, hs.stderr);
  const ap = await a.ctl(['approve', b.address]);
  assert.equal(ap.code, 0, ap.stderr);
  const nb = await connect({ socket: b.socket });
  nodes.push(nb);
  await nb.watch();
  // A session, with a stream open on it (the echo service, port 7).
  let s = await nb.dial(a.address, 7).catch(async () => {
    await sleep(500); // the trust pair may still be on its way to a
    return nb.dial(a.address, 7);
  });
  s.write('hello');
  await once(s, 'data');
  const streamEnded = new Promise<void>((resolve) => {
    s.once('error', () => resolve());
    s.once('close', () => resolve());
  });
  const down = new Promise<{ address: string; reason: string; at: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no peer-down within 5 s')), 5000);
    nb.on('peer-down', (e: { address: string; reason: string }) => {
      if (e.address !== a.address) return;
      clearTimeout(timer);
      resolve({ ...e, at: Date.now() });
    });
  });
  const t0 = Date.now();
  const stop = await a.ctl(['daemon', 'stop']);
  assert.equal(stop.code, 0, stop.stderr);
  const stoppedAt = Date.now();
  const ev = await down;
  assert.equal(ev.reason, 'peer stopped');
  assert.ok(ev.at - stoppedAt < 1000, `peer-down ${ev.at - stoppedAt} ms after the stop returned`);
  await streamEnded;
  // The rendezvous heard of the stop: offline now, not after 60 s.
  const f = await b.ctl(['find', a.address]);
  assert.equal(f.code, 0, f.stderr);
  assert.equal(f.json.data.online, false, 'offline at once');
  // A dial fails fast with a coded error instead of a handshake timeout.
  const d0 = Date.now();
  await assert.rejects(nb.dial(a.address, 7), (e: unknown) => e instanceof PilotError && e.code === 'UNREACHABLE' && /stopped/.test(e.message));
  const dialMs = Date.now() - d0;
  assert.ok(dialMs < 1000, `dial failed in ${dialMs} ms`);
  console.log(
    `# clean stop: peer-down ${ev.at - t0} ms after pilotctl daemon stop began (${ev.at - stoppedAt} ms after it returned); dial refused in ${dialMs} ms`,
  );

  // Back: a restart is reachable again (the goodbye is forgotten once the rendezvous shows it online).
  const again = await a.ctl(['daemon', 'start']);
  assert.equal(again.code, 0, again.stderr);
  s = await nb.dial(a.address, 7);
  s.write('again');
  await once(s, 'data');
  s.destroy();
});

test('startNode({ ephemeral: true }): close() removes the node from the rendezvous', async () => {
  const n = await startNode({
    home: path.join(work, 'embedded-eph'),
    registry: rdv.addr,
    email: 'emb@example.com',
    hostname: 'emb-eph',
    listen: '127.0.0.1:0',
    ephemeral: true,
    logger: 'silent',
  });
  const address = n.address;
  assert.equal((await find(address)).code, 0);
  await n.close();
  assert.equal((await find(address)).json?.code, 'NOT_FOUND');
  const taker = await agent('emb-taker', [], 'emb-eph'); // throws if the hostname were still taken
  assert.notEqual(taker.address, address);
});
