// Fleets end to end (issue 18): real daemons started by the real pilotctl and a real rendezvous on
// loopback. An admin creates a network, sets a policy (planner -> worker on 1000-1003 and 7) and
// makes two invites; a planner and a worker start with `--join <token>` and nothing else (no
// handshake, no approval). The planner reaches the worker where the policy allows it, the worker
// does not reach the planner, a non-member reaches nobody, a restart keeps the membership, and a
// kicked member is refused within seconds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';

let rdv: Rendezvous;
let work: string;
let admin: Agent;
let planner: Agent;
let worker: Agent;
let outsider: Agent;
let net = 0;
let workerToken = '';

const node = (reg: Rendezvous, name: string) => ['--registry', reg.addr, '--email', `${name}@example.com`, '--hostname', name, '--listen', '127.0.0.1:0'];
/** The same node as seen in network `n`: N:<node id>. */
const inNet = (n: number, address: string) => `${n}:${n.toString(16).toUpperCase().padStart(4, '0')}${address.slice(address.indexOf('.'))}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  work = tmpDir();
  rdv = await startRendezvous();
  admin = new Agent('fleet-admin', work);
  planner = new Agent('planner-1', work);
  worker = new Agent('worker-1', work);
  outsider = new Agent('outsider', work);
  await admin.start(node(rdv, 'fleet-admin'));
  const c = await admin.ctl(['network', 'create', 'fleet']);
  assert.equal(c.code, 0, c.stderr + c.stdout);
  net = c.json.data.net;
  const policy = path.join(work, 'policy.json');
  fs.writeFileSync(policy, JSON.stringify({ rules: [{ from: ['tag:planner'], to: ['tag:worker'], ports: ['1000-1003', 7] }] }, null, 2));
  const ps = await admin.ctl(['network', 'policy', 'fleet', '--set', policy]);
  assert.equal(ps.code, 0, ps.stderr + ps.stdout);
  const ip = await admin.ctl(['network', 'invite', 'fleet', '--tag', 'planner', '--expires', '1h']);
  assert.equal(ip.code, 0, ip.stderr + ip.stdout);
  const iw = await admin.ctl(['network', 'invite', 'fleet', '--tag', 'worker', '--uses', '5']);
  assert.equal(iw.code, 0, iw.stderr + iw.stdout);
  workerToken = iw.json.data.token;
  // --join and nothing else: no handshake, no approval
  await planner.start([...node(rdv, 'planner-1'), '--join', ip.json.data.token]);
  await worker.start([...node(rdv, 'worker-1'), '--join', workerToken]);
  await outsider.start(node(rdv, 'outsider'));
});

after(async () => {
  await Promise.all([admin?.stop(), planner?.stop(), worker?.stop(), outsider?.stop()]);
  await rdv?.kill();
});

test('a bad policy is refused with the parser line:column, a forged token with a code', async () => {
  const bad = path.join(work, 'bad.json');
  fs.writeFileSync(bad, '{"rules": [{"from": ["*"], "to": ["*"], "ports": [70000]}]}');
  const r = await admin.ctl(['network', 'policy', 'fleet', '--set', bad]);
  assert.equal(r.code, 2, r.stdout); // checked by pilotctl before anything is sent
  assert.equal(r.json.code, 'BAD_ARGUMENT');
  assert.match(r.json.message, /bad\.json:1:\d+/);
  const t = await admin.ctl(['network', 'invite', 'fleet', '--tag', 'Worker']);
  assert.equal(t.code, 2, t.stdout);
  assert.equal(t.json.code, 'BAD_ARGUMENT');
  assert.match(t.json.hint, /lower case/);
  const f = await outsider.ctl(['network', 'join', `${workerToken.slice(0, -4)}AAAA`]);
  assert.equal(f.code, 2, f.stdout); // checked by pilotctl: nothing sent
  assert.equal(f.json.code, 'BAD_ARGUMENT');
  assert.match(f.json.message, /join token/);
});

test('members are listed with tags and presence; the joiners know their membership', async () => {
  const m = await admin.ctl(['network', 'members', 'fleet']);
  assert.equal(m.code, 0, m.stderr);
  const byHost = new Map(m.json.data.members.map((x: { hostname: string }) => [x.hostname, x]));
  assert.deepEqual((byHost.get('planner-1') as { tags: string[] }).tags, ['planner']);
  assert.deepEqual((byHost.get('worker-1') as { tags: string[] }).tags, ['worker']);
  assert.equal((byHost.get('worker-1') as { online: boolean }).online, true);
  assert.equal((byHost.get('worker-1') as { address: string }).address, inNet(net, worker.address));
  const l = await worker.ctl(['network', 'list']);
  const mine = l.json.data.networks.find((n: { name: string }) => n.name === 'fleet');
  assert.equal(mine.member, true);
  assert.deepEqual(mine.tags, ['worker']);
  // the admin administers the network but is not a member (it joins with an invite like anyone)
  const al = await admin.ctl(['network', 'list']);
  const own = al.json.data.networks.find((n: { name: string }) => n.name === 'fleet');
  assert.equal(own.admin, true);
  assert.equal(own.member, false);
  assert.equal(own.members, 2);
  const f = await planner.ctl(['find', '--tag', 'worker', '--network', 'fleet']);
  assert.equal(f.code, 0, f.stderr);
  assert.deepEqual(
    f.json.data.nodes.map((n: { address: string }) => n.address),
    [inNet(net, worker.address)],
  );
});

test('planner reaches worker on allowed ports: ping, a stream to 1001 (inbox), 1000 reached', async () => {
  const p = await planner.ctl(['ping', inNet(net, worker.address), '--count', '2', '--interval', '50ms'], 30_000);
  if (p.json?.data?.received !== 2)
    console.log(
      'WORKER',
      worker.log().split('\n').slice(-25).join('\n'),
      '\nPLANNER',
      planner.log().split('\n').slice(-25).join('\n'),
      JSON.stringify(p.json),
      JSON.stringify(await worker.ipc('stats')),
      JSON.stringify(await planner.ipc('stats')),
    );
  assert.equal(p.code, 0, p.stderr + p.stdout);
  assert.equal(p.json.data.received, 2);
  const s = await planner.ctl(['send-message', 'worker-1', '--data', 'plan A'], 30_000);
  assert.equal(s.code, 0, s.stderr + s.stdout);
  const inbox = await worker.ctl(['inbox']);
  assert.ok(
    inbox.json.data.messages.some((x: { data?: string; text?: string }) => JSON.stringify(x).includes('plan A')),
    JSON.stringify(inbox.json.data),
  );
  // a stream to port 1000 (the stdio service) and its answer
  const c = await planner.ctl(['connect', worker.address, '1000', '--message', 'hi\n', '--timeout', '3s']);
  assert.equal(c.code, 0, c.stdout);
  assert.match(c.json.data.reply, /"ok":true/);
  // the planner proved its membership to the worker (credential + ticket, checked by the worker itself)
  const m = await worker.ctl(['network', 'members', 'fleet']);
  assert.equal(m.json.data.members.find((x: { hostname: string }) => x.hostname === 'planner-1')?.verified, true, JSON.stringify(m.json.data));
  // a port the policy does not name
  const x = await planner.ctl(['connect', worker.address, '5000', '--message', 'hi', '--timeout', '3s']);
  assert.equal(x.json.code, 'PERMISSION_DENIED', x.stdout);
  assert.match(x.json.hint, /network policy fleet/);
});

test('worker does not reach planner (policy), a non-member reaches nobody', async () => {
  const w = await worker.ctl(['connect', planner.address, '1000', '--message', 'hi', '--timeout', '3s']);
  assert.equal(w.code, 1, w.stdout);
  assert.equal(w.json.code, 'PERMISSION_DENIED');
  const o = await outsider.ctl(['connect', worker.address, '1000', '--message', 'hi', '--timeout', '3s']);
  assert.equal(o.code, 1, o.stdout);
  assert.equal(o.json.code, 'NOT_TRUSTED');
  const n = await outsider.ctl(['ping', inNet(net, worker.address), '--count', '1']);
  assert.notEqual(n.code, 0);
  assert.equal(n.json.code, 'NOT_FOUND'); // N:… names a node only for members of N
});

test('a restarted member keeps its membership (same token: no new join)', async () => {
  await worker.stop();
  await worker.start(['--join', workerToken]);
  const l = await worker.ctl(['network', 'list']);
  assert.equal(l.json.data.networks.find((n: { name: string }) => n.name === 'fleet')?.member, true);
  // a stream; the first may meet the old session and be reset ("peer restarted"), as for any peer
  let c = await planner.ctl(['connect', 'worker-1', '1000', '--message', 'again\n', '--timeout', '10s'], 30_000);
  for (let i = 0; i < 3 && c.json?.code === 'CONNECTION_RESET'; i++)
    c = await planner.ctl(['connect', 'worker-1', '1000', '--message', 'again\n', '--timeout', '10s'], 30_000);
  assert.equal(c.code, 0, c.stderr + c.stdout);
  assert.match(c.json.data.reply, /"ok":true/);
  const invites = await admin.ctl(['network', 'invites', 'fleet']);
  const inv = invites.json.data.invites.find((i: { tags: string[] }) => i.tags.includes('worker'));
  assert.equal(inv.used, 1); // the restart did not join again
});

test('a kicked member is refused within seconds', async () => {
  const k = await admin.ctl(['network', 'kick', 'fleet', planner.address]);
  assert.equal(k.code, 0, k.stderr + k.stdout);
  let code = '';
  for (let i = 0; i < 20; i++) {
    const c = await planner.ctl(['connect', worker.address, '1000', '--message', 'hi', '--timeout', '2s']);
    code = c.json?.code ?? 'OK';
    if (code !== 'OK') break;
    await sleep(250);
  }
  assert.ok(code === 'NOT_TRUSTED' || code === 'PERMISSION_DENIED' || code === 'CONNECTION_RESET', code);
  // the worker dropped the planner's proof and its session (the kick push), not only the planner itself
  let peers: string[] = [];
  for (let i = 0; i < 20; i++) {
    peers = (await worker.ctl(['peers'])).json.data.peers.map((p: { address: string }) => p.address);
    if (!peers.includes(planner.address)) break;
    await sleep(250);
  }
  assert.ok(!peers.includes(planner.address), JSON.stringify(peers));
  const m = await admin.ctl(['network', 'members', 'fleet']);
  assert.ok(!m.json.data.members.some((x: { hostname: string }) => x.hostname === 'planner-1'));
});
