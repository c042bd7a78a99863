// pilotctl broadcast (issue 21, upstream parity). Real daemons and a real rendezvous: a network
// of three members whose policy lets the caster reach listeners on port 4000 but not the third
// member; one broadcast reaches the listener and is not sent to the other, with counts saying so.
// The bounds (fan-out cap, datagram budget) are checked on the Broadcaster with a fake host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { IpcClient } from '../../src/ipc/client.ts';
import { connect } from '../../src/sdk/index.ts';
import { Broadcaster, BROADCAST_RATE, MAX_BROADCAST_MEMBERS, type BroadcastHost } from '../../src/daemon/broadcast.ts';
import { PilotError } from '../../src/util/errors.ts';
import { formatAddress, parseAddress } from '../../src/wire/address.ts';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';

let rdv: Rendezvous;
let work: string;
let caster: Agent; // the admin, a member too (joined with its own invite)
let listener: Agent;
let other: Agent;

const node = (name: string) => ['--registry', rdv.addr, '--email', `${name}@example.com`, '--hostname', name, '--listen', '127.0.0.1:0'];

async function invite(tag: string): Promise<string> {
  const r = await caster.ctl(['network', 'invite', 'bcast', '--tag', tag]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return r.json.data.token;
}

before(async () => {
  work = tmpDir('pilot-bcast-');
  rdv = await startRendezvous();
  caster = new Agent('bc-caster', work);
  listener = new Agent('bc-listener', work);
  other = new Agent('bc-other', work);
  await caster.start(node('bc-caster'));
  assert.equal((await caster.ctl(['network', 'create', 'bcast'])).code, 0);
  const policy = path.join(work, 'policy.json');
  fs.writeFileSync(policy, JSON.stringify({ rules: [{ from: ['tag:caster'], to: ['tag:listener'], ports: [4000] }] }));
  const ps = await caster.ctl(['network', 'policy', 'bcast', '--set', policy]);
  assert.equal(ps.code, 0, ps.stderr);
  const j = await caster.ctl(['network', 'join', await invite('caster')]);
  assert.equal(j.code, 0, j.stderr);
  await listener.start([...node('bc-listener'), '--join', await invite('listener')]);
  await other.start([...node('bc-other'), '--join', await invite('other')]);
});

after(async () => {
  await Promise.all([caster?.stop(), listener?.stop(), other?.stop()]);
  await rdv?.kill();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Datagrams arriving on port 4000 of `a`, as they come; close() ends the listening. */
async function collect(a: Agent): Promise<{ got: string[]; close: () => void }> {
  const c = new IpcClient(a.socket);
  const got: string[] = [];
  void c.call('recv', { port: 4000, count: 0, timeoutMs: 60_000 }, (_e, d) => got.push((d as { data: string }).data)).catch(() => {});
  await new Promise((r) => setTimeout(r, 300)); // the port is bound before the broadcast
  return { got, close: () => c.close() };
}

test('a broadcast reaches the members the policy allows and reports the one it refuses', async () => {
  const [l, o] = await Promise.all([collect(listener), collect(other)]);
  try {
    const r = await caster.ctl(['broadcast', 'bcast', '4000', '--data', 'all hands'], 30_000);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const b = r.json.data;
    assert.equal(b.name, 'bcast');
    assert.equal(b.bytes, 9);
    assert.deepEqual(b.counts, { sent: 1, refused: 1, offline: 0, failed: 0, skipped: 0 }, JSON.stringify(b.members));
    const byHost = new Map(b.members.map((m: { hostname: string }) => [m.hostname, m]));
    assert.equal((byHost.get('bc-listener') as { result: string }).result, 'sent');
    assert.deepEqual(byHost.get('bc-other'), {
      address: (byHost.get('bc-other') as { address: string }).address,
      hostname: 'bc-other',
      result: 'refused',
      code: 'PERMISSION_DENIED',
    });
    assert.ok(!byHost.has('bc-caster'), 'not to itself');
    for (let i = 0; i < 100 && l.got.length === 0; i++) await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(l.got, ['all hands']);
    // the SDK's broadcast: the same method
    const n = await connect({ socket: caster.socket });
    try {
      const again = await n.broadcast('bcast', 4000, Buffer.from('again'));
      assert.equal(again.counts.sent, 1);
    } finally {
      await n.close();
    }
    for (let i = 0; i < 100 && l.got.length < 2; i++) await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(l.got, ['all hands', 'again']);
    await new Promise((res) => setTimeout(res, 300));
    assert.deepEqual(o.got, []);
  } finally {
    l.close();
    o.close();
  }
});

test('broadcast errors: a network we are not in, an unknown one, a bad port', async () => {
  const n = await listener.ctl(['network', 'create', 'lonely']);
  assert.equal(n.code, 0, n.stderr);
  const x = await listener.ctl(['broadcast', 'lonely', '4000', '--data', 'x']);
  assert.equal(x.code, 1);
  assert.equal(x.json.code, 'PERMISSION_DENIED');
  assert.match(x.json.hint, /network join/);
  const u = await caster.ctl(['broadcast', 'nosuchnet', '4000', '--data', 'x']);
  assert.equal(u.json.code, 'NOT_FOUND');
  const p = await caster.ctl(['broadcast', 'bcast', '70000', '--data', 'x']);
  assert.equal(p.code, 2, p.stdout);
  assert.equal(p.json.code, 'BAD_ARGUMENT');
});

// ---- the bounds, on the Broadcaster itself ----

function fakeHost(online: number, clock: { t: number }): BroadcastHost & { sent: number } {
  const host = {
    sent: 0,
    address: parseAddress('0:0000.0000.0001'),
    now: () => clock.t,
    members: async () =>
      Array.from({ length: online + 1 }, (_, i) => ({ address: formatAddress({ network: 0, node: i + 2 }), hostname: null, online: i < online })),
    allowed: async () => true,
    send: async () => {
      host.sent++;
    },
  };
  return host;
}

test('fan-out is capped per broadcast, and broadcasts share a datagram budget', async () => {
  const clock = { t: 0 };
  const h = fakeHost(MAX_BROADCAST_MEMBERS + 10, clock);
  const b = new Broadcaster(h);
  const r = await b.broadcast(7, 'n', 4000, Buffer.from('x'));
  assert.equal(r.counts.sent, MAX_BROADCAST_MEMBERS);
  assert.equal(r.counts.skipped, 10);
  assert.equal(r.counts.offline, 1);
  assert.equal(h.sent, MAX_BROADCAST_MEMBERS);
  // the burst is spent: the next is refused with how long to wait, and nothing is sent
  await assert.rejects(
    b.broadcast(7, 'n', 4000, Buffer.from('x')),
    (e: unknown) => e instanceof PilotError && e.code === 'RATE_LIMITED' && /retry in \d+ ms/.test(e.hint ?? ''),
  );
  assert.equal(h.sent, MAX_BROADCAST_MEMBERS);
  clock.t += Math.ceil((MAX_BROADCAST_MEMBERS / BROADCAST_RATE.perSec) * 1000);
  assert.equal((await b.broadcast(7, 'n', 4000, Buffer.from('x'))).counts.sent, MAX_BROADCAST_MEMBERS);
});
