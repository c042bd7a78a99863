// Fleets through the SDK (issue 18), with real daemons and a real rendezvous on
// loopback: an admin SDK node creates a network, a policy (client -> worker on
// port 7000 only) and invites; three workers join (one embedded with
// startNode({ join }), two daemons through node.networks.join) and listen;
// discover() finds them, dialAny() completes a request, fails over when
// members cannot take the stream, and rejects with a coded error that lists
// each attempt when none can (no such tag; the policy forbids the port).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  connect,
  startNode,
  DialAnyError,
  type DialAttempt,
  PilotError,
  type PilotNode,
  type PilotServer,
  type StartNodeOptions,
} from '../../src/sdk/index.ts';
import type { Agent } from '../helpers/cluster.ts';
import { sleep, startNet, type Net } from './helpers.ts';
import { orderMembers } from '../../src/sdk/fleet.ts';

const NET = 'sdkfleet';
const PORT = 7000;
const FORBIDDEN = 7001; // every worker listens there too, but the policy does not name it

let net: Net;
let adminAgent: Agent;
let admin: PilotNode;
let w1: PilotNode | undefined; // embedded, joined with startNode({ join })
let w1Opts: StartNodeOptions;
let w2: PilotNode;
let w3: PilotNode;
/** How to stop each worker: the embedded one closes, the daemons stop. */
const stopWorker = new Map<string, () => Promise<void>>();
let workerToken = '';
let netId = 0;
const servers = new Map<string, PilotServer[]>();

const isCode = (code: string) => (e: unknown) => e instanceof PilotError && e.code === code;

/** A worker answers one line with its hostname and the line. */
async function serve(node: PilotNode): Promise<void> {
  const list: PilotServer[] = [];
  for (const port of [PORT, FORBIDDEN])
    list.push(
      await node.listen(port, (s) => {
        s.once('data', (d: Buffer) => s.end(`${node.hostname} ${d.toString('utf8')}`));
        s.on('error', () => {});
      }),
    );
  servers.set(node.hostname!, list);
}

/** One request over a socket: its whole answer. */
function request(s: NodeJS.ReadWriteStream, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('utf8')));
    s.once('end', () => resolve(out));
    s.once('error', reject);
    s.write(line);
  });
}

/**
 * dialAny, then one request. A stream to a port whose listener just closed can be acked by the
 * peer's transport before its reset arrives (then the socket, not the dial, fails with
 * CONNECTION_REFUSED; sdk_dial has that race for any dial): such a request is retried, once or twice.
 */
async function dialAnyRequest(t: { diagnostic(m: string): void }, opts: { timeoutMs: number }, line: string) {
  for (let i = 0; ; i++) {
    const r = await admin.dialAny({ network: NET, tag: 'worker' }, PORT, opts);
    try {
      return { r, reply: await request(r.socket, line) };
    } catch (err) {
      if (i >= 2 || !(err instanceof PilotError && err.code === 'CONNECTION_REFUSED')) throw err;
      t.diagnostic(`${r.member.hostname}: refused after the open was acked (retried)`);
    }
  }
}

/** Until `check` passes (membership proofs, presence and policies travel asynchronously). */
async function eventually<T>(what: string, fn: () => Promise<T>, check: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  let err: unknown;
  while (Date.now() < end) {
    try {
      last = await fn();
      err = undefined;
      if (check(last)) return last;
    } catch (e) {
      err = e;
    }
    await sleep(250);
  }
  assert.fail(`${what}: ${err ? String(err) : JSON.stringify(last)}`);
}

before(async () => {
  net = await startNet();
  adminAgent = await net.agent('fl-admin');
  admin = await connect({ socket: adminAgent.socket });
  const created = await admin.networks.create(NET);
  netId = created.net;
  await admin.networks.setPolicy(NET, { rules: [{ from: ['tag:client'], to: ['tag:worker'], ports: [PORT] }] });
  const wi = await admin.networks.invite(NET, { tags: ['worker'], uses: 5, expires: '1h' });
  workerToken = wi.token;
  const ci = await admin.networks.invite(NET, { tags: ['client'], uses: 1, expires: 3600 });
  // the admin is not a member by itself: it joins with an invite like any agent
  const joined = await admin.networks.join(ci.token);
  assert.deepEqual(joined.tags, ['client']);
  w1Opts = {
    home: path.join(net.work, 'fl-w1'),
    registry: net.rdv.addr,
    email: 'fl-w1@example.com',
    hostname: 'fl-w1',
    listen: '127.0.0.1:0',
    logger: 'silent',
    join: workerToken,
  };
  w1 = await startNode(w1Opts);
  const a2 = await net.agent('fl-w2');
  const a3 = await net.agent('fl-w3');
  w2 = await connect({ socket: a2.socket });
  w3 = await connect({ socket: a3.socket });
  stopWorker.set('fl-w1', async () => {
    await w1?.close();
    w1 = undefined;
  });
  stopWorker.set('fl-w2', () => a2.stop());
  stopWorker.set('fl-w3', () => a3.stop());
  assert.equal((await w2.networks.join(workerToken)).already, false);
  assert.equal((await w3.networks.join(workerToken)).already, false);
  assert.equal((await w3.networks.join(workerToken)).already, true); // idempotent
  for (const w of [w1, w2, w3]) await serve(w);
});

after(async () => {
  for (const n of [w1, w2, w3, admin]) await n?.close().catch(() => {});
  await net?.stop();
});

test('node.networks: list, members, invites, policy, audit; tags and find; coded errors', async () => {
  const mine = (await admin.networks.list()).find((n) => n.name === NET);
  assert.ok(mine, 'the admin lists its network');
  assert.equal(mine.admin, true);
  assert.equal(mine.member, true);
  assert.equal(mine.address, `${netId}:${netId.toString(16).toUpperCase().padStart(4, '0')}${admin.address.slice(admin.address.indexOf('.'))}`);
  const w1List = (await w1!.networks.list()).find((n) => n.name === NET);
  assert.equal(w1List?.member, true); // joined by startNode({ join })
  assert.deepEqual(w1List?.tags, ['worker']);
  const members = await admin.networks.members(NET);
  assert.equal(members.net, netId);
  assert.deepEqual(members.members.map((m) => m.hostname).sort(), ['fl-admin', 'fl-w1', 'fl-w2', 'fl-w3']);
  const invites = await admin.networks.invites(NET);
  assert.equal(invites.find((i) => i.tags.includes('worker'))?.used, 3);
  const policy = await admin.networks.policy(NET);
  assert.match(policy.text, /tag:client/);
  assert.equal(policy.verified, true);
  const actions = (await admin.networks.audit(NET)).map((e) => e.action);
  for (const a of ['create', 'invite', 'join'])
    assert.ok(
      actions.some((x) => x.includes(a)),
      `${a} in ${actions}`,
    );
  // a policy that does not parse: the daemon's parser names source:line:column
  await assert.rejects(admin.networks.setPolicy(NET, '{"rules": [{"from": ["*"], "to": ["*"], "prots": [1]}]}', { source: 'p.json' }), (e: unknown) => {
    return e instanceof PilotError && e.code === 'BAD_ARGUMENT' && /p\.json:1:\d+/.test(e.message);
  });
  await assert.rejects(admin.networks.members('no-such-net'), isCode('NOT_FOUND'));
  await assert.rejects(admin.networks.invite(NET, { tags: ['Worker'] }), isCode('BAD_ARGUMENT'));
  await assert.rejects(admin.networks.invite(NET, { expires: -1 }), isCode('BAD_ARGUMENT'));
  await assert.rejects(
    w2.networks.join(`${workerToken.slice(0, -4)}AAAA`),
    (e: unknown) => e instanceof PilotError && ['BAD_ARGUMENT', 'BAD_SIGNATURE'].includes(e.code),
  );
  // a revoked invite: listed as revoked
  const spare = await admin.networks.invite(NET, { tags: ['spare'] });
  assert.equal((await admin.networks.revokeInvite(NET, spare.inviteId)).revoked, true);
  assert.equal((await admin.networks.invites(NET)).find((i) => i.inviteId === spare.inviteId)?.revoked, true);
  // self-declared tags: found through find({ tag, network }), cleared again
  assert.deepEqual(await w2.setTags(['gpu', 'big']), ['big', 'gpu']);
  const gpu = await admin.find({ tag: 'gpu', network: NET });
  assert.deepEqual(
    gpu.nodes.map((n) => n.hostname),
    ['fl-w2'],
  );
  assert.equal(gpu.net, netId);
  await w2.clearTags();
  assert.deepEqual((await admin.find({ tag: 'gpu', network: NET })).nodes, []);
  // the address lookup is still there
  assert.equal((await admin.find('fl-admin')).address, admin.address);
});

test('discover finds the online workers with their network addresses', async () => {
  const found = await eventually(
    'three online workers',
    () => admin.discover({ network: NET, tag: 'worker' }),
    (f) => f.length === 3,
  );
  assert.deepEqual(found.map((m) => m.hostname).sort(), ['fl-w1', 'fl-w2', 'fl-w3']);
  for (const m of found) {
    assert.ok(m.address.startsWith(`${netId}:`), m.address);
    assert.deepEqual(m.tags, ['worker']);
    assert.equal(m.online, true);
  }
  assert.deepEqual(await admin.discover({ network: NET, tag: 'nobody' }), []);
});

test('dialAny completes a request, and keeps to the member it has a session with', async (t) => {
  const t0 = performance.now();
  const first = await admin.dialAny({ network: NET, tag: 'worker' }, PORT, { timeoutMs: 5000 });
  t.diagnostic(`first dialAny (discover, no session yet): ${(performance.now() - t0).toFixed(1)} ms`);
  assert.equal(await request(first.socket, 'job 0'), `${first.member.hostname} job 0`);
  assert.ok(first.member.address.startsWith(`${netId}:`));
  assert.deepEqual(first.failed, []);
  // the only member with a session now: picked first while the others have none
  const again = await admin.dialAny({ network: NET, tag: 'worker' }, PORT);
  assert.equal(again.member.hostname, first.member.hostname);
  assert.equal(await request(again.socket, 'job 1'), `${first.member.hostname} job 1`);
  // what discover + peers cost on top of a dial, with a session
  const ms = async (f: () => Promise<unknown>) => {
    const s0 = performance.now();
    for (let i = 0; i < 20; i++) await f();
    return ((performance.now() - s0) / 20).toFixed(1);
  };
  const q = { network: NET, tag: 'worker' };
  const viaDialAny = await ms(async () => (await admin.dialAny(q, PORT)).socket.destroy());
  const viaDial = await ms(async () => (await admin.dial(first.member.address, PORT)).destroy());
  const viaDiscover = await ms(() => admin.discover(q));
  t.diagnostic(`warm, mean of 20: dialAny ${viaDialAny} ms, dial ${viaDial} ms, discover ${viaDiscover} ms`);
});

test('dialAny with a tag nobody has rejects with NOT_FOUND and a hint', async () => {
  const err = await admin.dialAny({ network: NET, tag: 'nobody' }, PORT).catch((e: unknown) => e);
  assert.ok(err instanceof DialAnyError, String(err));
  assert.equal(err.code, 'NOT_FOUND');
  assert.match(err.message, /tag:nobody in network sdkfleet/);
  assert.match(err.hint!, /discover/);
  await assert.rejects(admin.dialAny({ network: 'no-such-net', tag: 'worker' }, PORT), isCode('NOT_FOUND'));
  await assert.rejects(admin.dialAny({ network: NET, tag: 'worker' }, 70000), isCode('BAD_ARGUMENT'));
  await assert.rejects(admin.dialAny({ network: NET, tag: 'nobody' }, PORT, { attempts: 0 }), isCode('BAD_ARGUMENT'));
});

test('a port the policy forbids: every attempt PERMISSION_DENIED, and the error says so', async () => {
  const err = await admin.dialAny({ network: NET, tag: 'worker' }, FORBIDDEN, { timeoutMs: 3000 }).catch((e: unknown) => e);
  assert.ok(err instanceof DialAnyError, String(err));
  assert.equal(err.code, 'PERMISSION_DENIED');
  assert.equal(err.attempts.length, 3);
  assert.deepEqual(new Set(err.attempts.map((a) => a.code)), new Set(['PERMISSION_DENIED']));
  assert.deepEqual(err.attempts.map((a) => a.hostname).sort(), ['fl-w1', 'fl-w2', 'fl-w3']);
  assert.match(err.message, /took port 7001; tried 3/);
  assert.match(err.hint!, /policy of network sdkfleet/);
});

test('dialAny fails over: the others stop listening in turn, then the worker it picks first stops', async (t) => {
  const byName = new Map([
    ['fl-w1', w1!],
    ['fl-w2', w2],
    ['fl-w3', w3],
  ]);
  // sessions with all three now, so the order is by RTT (then random): whichever comes first fails in most rounds
  const failures: string[] = [];
  const t0 = performance.now();
  for (const keep of byName.keys()) {
    for (const [name, node] of byName) {
      for (const s of servers.get(name)!) await s.close();
      if (name === keep) await serve(node);
    }
    for (let i = 0; i < 3; i++) {
      const { r, reply } = await dialAnyRequest(t, { timeoutMs: 3000 }, `${keep} ${i}`);
      assert.equal(reply, `${keep} ${keep} ${i}`);
      assert.equal(r.member.hostname, keep);
      for (const f of r.failed) {
        assert.notEqual(f.hostname, keep);
        assert.equal(f.code, 'CONNECTION_REFUSED', JSON.stringify(f));
        failures.push(f.hostname!);
      }
    }
  }
  assert.ok(failures.length > 0, 'some dials failed over');
  t.diagnostic(
    `9 dialAny with 2 of 3 refusing: ${((performance.now() - t0) / 9).toFixed(1)} ms each (listener changes included), ${failures.length} fail-overs`,
  );
  // all listen again; the worker dialAny picks first (a session, the lowest RTT) stops. It may still be
  // listed online and have its session here for a while: dialAny tries it, and fails over.
  for (const [name, node] of byName) if (name !== 'fl-w3') await serve(node);
  const q = { network: NET, tag: 'worker' };
  const stopped = orderMembers(await admin.discover(q), await admin.peers(), admin.address)[0]!.hostname!;
  await stopWorker.get(stopped)!();
  const left = [...byName.keys()].filter((n) => n !== stopped);
  const tried: DialAttempt[] = [];
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    const { r, reply } = await dialAnyRequest(t, { timeoutMs: 2000 }, 'after');
    const ms = performance.now() - t0;
    assert.ok(left.includes(r.member.hostname!), r.member.hostname!);
    assert.equal(reply, `${r.member.hostname} after`);
    for (const f of r.failed)
      assert.ok(f.hostname === stopped && ['TIMEOUT', 'UNREACHABLE', 'CONNECTION_RESET', 'NOT_FOUND'].includes(f.code), JSON.stringify(f));
    tried.push(...r.failed);
    t.diagnostic(
      `${stopped} stopped: dialAny ${i} took ${ms.toFixed(0)} ms, answered by ${r.member.hostname}, failed ${JSON.stringify(r.failed.map((f) => f.code))}`,
    );
  }
  // once it timed out, it is tried last for a while (not one timeout per dial)
  assert.ok(tried.filter((f) => f.code === 'TIMEOUT' || f.code === 'UNREACHABLE').length <= 1, JSON.stringify(tried));
  // nobody listens: every attempt fails, each listed
  for (const name of left) for (const s of servers.get(name)!) await s.close();
  const err = await admin.dialAny(q, PORT, { timeoutMs: 2000 }).catch((e: unknown) => e);
  assert.ok(err instanceof DialAnyError, String(err));
  const refused = err.attempts.filter((a) => a.code === 'CONNECTION_REFUSED').map((a) => a.hostname);
  assert.deepEqual(refused.sort(), left, JSON.stringify(err.attempts));
  assert.match(err.message, new RegExp(`${left[0]}\\): CONNECTION_REFUSED`));
});

test('startNode({ join }) again with the same token joins nothing (a restart keeps the membership)', async () => {
  const usedBefore = (await admin.networks.invites(NET)).find((i) => i.tags.includes('worker'))?.used;
  await w1?.close(); // still running if another worker was the one stopped
  w1 = await startNode(w1Opts);
  const mine = (await w1.networks.list()).find((n) => n.name === NET);
  assert.equal(mine?.member, true);
  assert.equal((await admin.networks.invites(NET)).find((i) => i.tags.includes('worker'))?.used, usedBefore);
  // the token is not kept on disk in clear
  const fs = await import('node:fs');
  for (const f of fs.readdirSync(w1Opts.home)) {
    const p = path.join(w1Opts.home, f);
    if (fs.statSync(p).isFile()) assert.ok(!fs.readFileSync(p, 'utf8').includes(workerToken), `${f} holds the token`);
  }
  // a bad token stops the start with a coded error
  await w1.close();
  w1 = undefined;
  await assert.rejects(
    startNode({ ...w1Opts, join: 'pilot-join-1.garbage' }),
    (e: unknown) => e instanceof PilotError && ['BAD_ARGUMENT', 'BAD_SIGNATURE'].includes(e.code),
  );
});
