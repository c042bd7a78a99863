// Key rotation end to end (issue 18): real daemons started by the real pilotctl, a real
// rendezvous on loopback. `pilotctl rotate-key` gives a node a new key for the same address,
// signed by the old one; a trusted peer dials it at once with no new approval; a network
// member that rotates is still reached under the policy; an admin that rotates keeps
// administering; the old key can no longer register; a rotation cut short by a crash (new
// key on disk, rendezvous not told) is finished by the next start.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { udpPeer } from '../rendezvous/helpers.ts';
import { identityFromSecretKey, readIdentityFile } from '../../src/crypto/identity.ts';
import { PENDING_IDENTITY_FILE, preparePending } from '../../src/daemon/key-rotation.ts';
import { parseAddress } from '../../src/wire/address.ts';
import { PilotError } from '../../src/util/errors.ts';

let rdv: Rendezvous;
let work: string;
let a: Agent;
let b: Agent;
let admin: Agent;
let planner: Agent;
let worker: Agent;

const node = (name: string) => ['--registry', rdv.addr, '--email', `${name}@example.com`, '--hostname', name, '--listen', '127.0.0.1:0'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const info = async (x: Agent) => (await x.ctl(['info'])).json.data as { address: string; hostname: string; publicKey: string };

before(async () => {
  work = tmpDir();
  rdv = await startRendezvous();
  a = new Agent('rot-a', work);
  b = new Agent('rot-b', work);
  admin = new Agent('rot-admin', work);
  planner = new Agent('rot-planner', work);
  worker = new Agent('rot-worker', work);
  await Promise.all([a.start(node('rot-a')), b.start(node('rot-b')), admin.start(node('rot-admin'))]);
  assert.equal((await b.ctl(['handshake', a.address, 'tests'])).code, 0);
  const ap = await a.ctl(['approve', b.address]);
  assert.equal(ap.code, 0, ap.stderr);
  const c = await admin.ctl(['network', 'create', 'rfleet']);
  assert.equal(c.code, 0, c.stderr + c.stdout);
  const policy = path.join(work, 'policy.json');
  fs.writeFileSync(policy, JSON.stringify({ rules: [{ from: ['tag:planner'], to: ['tag:worker'], ports: ['1000-1003', 7] }] }));
  assert.equal((await admin.ctl(['network', 'policy', 'rfleet', '--set', policy])).code, 0);
  const ip = await admin.ctl(['network', 'invite', 'rfleet', '--tag', 'planner']);
  const iw = await admin.ctl(['network', 'invite', 'rfleet', '--tag', 'worker']);
  await planner.start([...node('rot-planner'), '--join', ip.json.data.token]);
  await worker.start([...node('rot-worker'), '--join', iw.json.data.token]);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop(), admin?.stop(), planner?.stop(), worker?.stop()]);
  await rdv?.kill();
});

async function ping(from: Agent, to: string): Promise<{ ok: boolean; out: string }> {
  const r = await from.ctl(['ping', to, '--count', '1', '--timeout', '2s']);
  return { ok: r.code === 0 && r.json?.data?.received === 1, out: r.stdout + r.stderr };
}

test('A rotates: same address and hostname, new key in info; B reaches A at once with no new approval; the old key is dead', async () => {
  const before = await info(a);
  assert.ok((await ping(b, a.address)).ok, 'b -> a before');
  const oldIdentity = readIdentityFile(path.join(a.home, 'identity.json'));
  const tr0 = Date.now();
  const r = await a.ctl(['rotate-key']);
  console.log(`# pilotctl rotate-key: ${Date.now() - tr0} ms (CLI process included)`);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(r.json.data.address, before.address);
  assert.equal(r.json.data.oldKey, before.publicKey);
  assert.notEqual(r.json.data.publicKey, before.publicKey);
  assert.equal(r.json.data.already, false);
  const after = await info(a);
  assert.equal(after.address, before.address);
  assert.equal(after.hostname, before.hostname);
  assert.equal(after.publicKey, r.json.data.publicKey, 'pilotctl info shows the new key');
  // On disk: the new key, 0600, no pending file.
  const file = path.join(a.home, 'identity.json');
  assert.equal(readIdentityFile(file).publicKey.toString('base64'), after.publicKey);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.existsSync(path.join(a.home, PENDING_IDENTITY_FILE)), false);

  // B, which approved the OLD key, reaches A right away (no approve), by address and by hostname, both ways.
  const t0 = Date.now();
  let p = await ping(b, a.address);
  for (let i = 0; i < 3 && !p.ok; i++) p = await ping(b, a.address); // a stream/session may break once
  assert.ok(p.ok, `b -> a after the rotation: ${p.out}`);
  console.log(`# b -> a ping after rotation: ${Date.now() - t0} ms`);
  assert.ok((await ping(b, 'rot-a')).ok, 'by hostname');
  assert.ok((await ping(a, b.address)).ok, 'a -> b');
  const m = await b.ctl(['send-message', a.address, '--data', 'after rotation']);
  assert.equal(m.code, 0, m.stderr + m.stdout);
  const tr = await a.ctl(['trust']);
  assert.ok(
    tr.json.data.trusted.some((x: { peer?: string; address?: string }) => (x.peer ?? x.address) === b.address),
    JSON.stringify(tr.json.data),
  );

  // The old key can no longer register (or heartbeat) for the address.
  const port = Number(rdv.addr.split(':')[1]);
  const thief = await udpPeer(port, { identity: identityFromSecretKey(oldIdentity.secretKey)! });
  try {
    await assert.rejects(
      thief.client.register({ email: 'thief@example.com' }),
      (e: unknown) => e instanceof PilotError && e.code === 'KEY_ROTATED' && !!e.hint,
    );
    await assert.rejects(thief.client.heartbeat({}), (e: unknown) => e instanceof PilotError && (e.code === 'NOT_REGISTERED' || e.code === 'KEY_ROTATED'));
  } finally {
    await thief.close();
  }

  // Rotating again at once: refused with a coded error and a hint (one rotation a minute).
  const again = await a.ctl(['rotate-key']);
  assert.notEqual(again.code, 0);
  assert.equal(again.json.code, 'RATE_LIMITED', again.stdout);
  assert.match(again.json.hint, /wait \d+ s/);
  assert.equal((await info(a)).publicKey, after.publicKey, 'a refused rotation changes nothing');
  assert.equal(fs.existsSync(path.join(a.home, PENDING_IDENTITY_FILE)), false, 'the refused pending key is dropped');
});

test('a member rotates: the co-member still reaches it under the policy, and sees its membership proven', async () => {
  assert.ok((await ping(planner, worker.address)).ok, 'planner -> worker before');
  const r = await worker.ctl(['rotate-key']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  let c = await planner.ctl(['connect', worker.address, '1000', '--message', 'hi\n', '--timeout', '3s'], 30_000);
  for (let i = 0; i < 3 && c.code !== 0; i++) c = await planner.ctl(['connect', worker.address, '1000', '--message', 'hi\n', '--timeout', '3s'], 30_000);
  assert.equal(c.code, 0, c.stdout + c.stderr + worker.log().split('\n').slice(-15).join('\n'));
  assert.match(c.json.data.reply, /"ok":true/);
  // The planner checked the worker's credential (bound to its OLD key) against the rotation it verified.
  let verified = false;
  for (let i = 0; i < 20 && !verified; i++) {
    const m = await planner.ctl(['network', 'members', 'rfleet']);
    verified = m.json.data.members.find((x: { hostname: string }) => x.hostname === 'rot-worker')?.verified === true;
    if (!verified) await sleep(250);
  }
  assert.ok(verified, 'the rotated worker proved its membership');
  // The rotation is in the network's audit log, as the member's signed request.
  const au = await admin.ctl(['network', 'audit', 'rfleet', '--statements']);
  assert.equal(au.code, 0, au.stderr + au.stdout);
  const entry = au.json.data.entries.find((e: { action: string }) => e.action === 'rotate_key');
  assert.ok(entry, JSON.stringify(au.json.data.entries.map((e: { action: string }) => e.action)));
  assert.equal(entry.detail.new, r.json.data.publicKey);
  assert.equal(entry.verified, true, 'the audit statement verifies');
  // The policy still holds: the worker does not reach the planner, nor a port outside the rule.
  const x = await planner.ctl(['connect', worker.address, '5000', '--message', 'hi', '--timeout', '3s']);
  assert.equal(x.json.code, 'PERMISSION_DENIED', x.stdout);
  // A restart with the rotated key keeps the membership (own credential linked to the new key).
  await worker.stop();
  await worker.start([]);
  const l = await worker.ctl(['network', 'list']);
  assert.equal(l.json.data.networks.find((n: { name: string }) => n.name === 'rfleet')?.member, true, JSON.stringify(l.json.data));
});

test('the admin rotates and keeps administering: members, invites, policy', async () => {
  const r = await admin.ctl(['rotate-key']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const m = await admin.ctl(['network', 'members', 'rfleet']);
  assert.equal(m.code, 0, m.stderr + m.stdout);
  const inv = await admin.ctl(['network', 'invite', 'rfleet', '--tag', 'worker']);
  assert.equal(inv.code, 0, inv.stderr + inv.stdout);
  // Members follow the admin's new key: the policy the admin signed again verifies for them.
  let verified: unknown;
  for (let i = 0; i < 40 && verified !== true; i++) {
    const p = await planner.ctl(['network', 'policy', 'rfleet']);
    verified = p.json?.data?.verified;
    if (verified !== true) await sleep(250);
  }
  assert.equal(verified, true, 'policy re-signed by the rotated admin verifies at a member');
  // A new member joining with an invite made after the rotation, and the planner still reaches the worker.
  const late = new Agent('rot-late', work);
  await late.start([...node('rot-late'), '--join', inv.json.data.token]);
  try {
    const c = await planner.ctl(['connect', late.address, '1000', '--message', 'hi\n', '--timeout', '5s'], 30_000);
    assert.equal(c.code, 0, c.stdout + c.stderr);
  } finally {
    await late.stop();
  }
});

test('a rotation cut short by a crash (new key on disk, rendezvous not told) is finished by the next start', async () => {
  const before = await info(b);
  await b.stop();
  // What `rotate-key` leaves behind when the daemon dies between writing the new key and the rendezvous's answer.
  const pending = preparePending(b.home, readIdentityFile(path.join(b.home, 'identity.json')), parseAddress(before.address), Date.now());
  assert.equal(fs.statSync(path.join(b.home, PENDING_IDENTITY_FILE)).mode & 0o777, 0o600);
  await b.start([]);
  const after = await info(b);
  assert.equal(after.address, before.address);
  assert.equal(after.publicKey, pending.next.publicKey.toString('base64'), 'the pending key became the identity');
  assert.equal(fs.existsSync(path.join(b.home, PENDING_IDENTITY_FILE)), false);
  let p = await ping(a, b.address);
  for (let i = 0; i < 3 && !p.ok; i++) p = await ping(a, b.address);
  assert.ok(p.ok, `a -> b after b's recovered rotation: ${p.out}`);
});
