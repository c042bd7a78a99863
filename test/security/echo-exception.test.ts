// Issue 15, hole 1: the echo exception. A datagram whose *source* port is 7
// used to pass the trust check whatever its destination, so any public node
// could write into another public node's stdio queue (1000) and SDK datagram
// ports, and into a private node's once that node had pinged it; and a local
// client could pick srcPort 7 to skip the sending-side check. Echo must be the
// only thing an untrusted peer reaches: requests to port 7, and replies from
// port 7 to a request we sent. Real daemons, real rendezvous; the attacker is
// an in-process daemon that writes raw datagrams on its connection (what a
// modified daemon would send).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startRendezvous, tmpDir, type Agent, type Rendezvous } from '../helpers/cluster.ts';
import { startAgent } from '../services/helpers.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import * as v from 'valibot';
import { DaemonConfigSchema } from '../../src/daemon/config.ts';
import { parseAddress } from '../../src/wire/address.ts';
import { silentLogger } from '../../src/util/logger.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let rdv: Rendezvous;
let work: string;
let pub: Agent; // public victim
let priv: Agent; // private victim
let attacker: Daemon; // public, trusted by nobody
const agents: Agent[] = [];

/** Datagrams that reach `port` of `a` (as an SDK datagram socket would see them) within `ms`. */
function listen(a: Agent, port: number, ms: number): Promise<{ received: number }> {
  return a.ipc('recv', { port, count: 0, timeoutMs: ms });
}

/** One echo round trip from the in-process attacker (through the policy, as a normal ping). */
async function attackerPing(to: string): Promise<boolean> {
  const port = attacker.ports.ephemeral();
  const got = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    const off = attacker.ports.onDatagram(port, () => {
      clearTimeout(timer);
      off();
      resolve(true);
    });
  });
  await attacker.sendDatagram(parseAddress(to), port, 7, Buffer.from('ping'));
  return got;
}

/** What a modified daemon sends: raw datagrams claiming source port 7. */
async function forge(to: string, dstPort: number, text: string): Promise<void> {
  const peer = await attacker.peerFor(parseAddress(to));
  assert.equal(peer.conn.sendDatagram(7, dstPort, Buffer.from(text)), true, 'the forged datagram left');
}

before(async () => {
  work = tmpDir('pilot-echo-exc-');
  rdv = await startRendezvous();
  pub = await startAgent(rdv, work, 'ee-public', ['--public']);
  priv = await startAgent(rdv, work, 'ee-private');
  agents.push(pub, priv);
  const home = path.join(work, 'ee-attacker');
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const config = v.parse(DaemonConfigSchema, {
    registry: rdv.addr,
    email: 'attacker@example.com',
    hostname: 'ee-attacker',
    public: true,
    listen: '127.0.0.1:0',
    socket: path.join(home, 'pilot.sock'),
  });
  attacker = await Daemon.start({ home, config, logger: silentLogger() });
});

after(async () => {
  await attacker?.stop();
  await Promise.all(agents.map((a) => a.stop()));
  await rdv?.kill();
  fs.rmSync(work, { recursive: true, force: true });
});

test('echo still works both ways between untrusted public nodes, and from a private node to them', async () => {
  assert.equal(await attackerPing(pub.address), true, 'attacker -> public echo');
  const p1 = await pub.ipc('ping', { target: formatted(), count: 2, intervalMs: 100, timeoutMs: 3000 });
  assert.equal(p1.received, 2, 'public -> attacker echo');
  const p2 = await priv.ipc('ping', { target: 'ee-public', count: 2, intervalMs: 100, timeoutMs: 3000 });
  assert.equal(p2.received, 2, 'private -> public echo');
});

function formatted(): string {
  return fs.readFileSync(path.join(work, 'ee-attacker', 'address'), 'utf8').trim();
}

test("an untrusted public node cannot write into a public node's stdio queue or SDK datagram port by claiming source port 7", async () => {
  assert.equal(await attackerPing(pub.address), true, 'session up');
  const before = (await pub.ipc('stats')).daemon.refusedUntrusted as number;
  const sdkPort = listen(pub, 5000, 2500);
  await sleep(300); // the recv is registered
  await forge(pub.address, 1000, 'rm -rf / # from a stranger');
  await forge(pub.address, 5000, 'forged into an SDK socket');
  assert.equal((await sdkPort).received, 0, 'nothing reached the SDK datagram port');
  const q = await pub.ipc('stdio_status');
  assert.equal(q.queued, 0, `stdio queue: ${JSON.stringify(q)}`);
  const after = (await pub.ipc('stats')).daemon.refusedUntrusted as number;
  assert.ok(after >= before + 2, `refused: ${before} -> ${after}`);
});

test("nor into a private node's after that node pinged it", async () => {
  const ping = await priv.ipc('ping', { target: formatted(), count: 1, timeoutMs: 3000 });
  assert.equal(ping.received, 1, 'private -> attacker echo');
  const sdkPort = listen(priv, 5000, 2500);
  await sleep(300);
  await forge(priv.address, 1000, 'hello from a stranger');
  await forge(priv.address, 5000, 'forged into an SDK socket');
  assert.equal((await sdkPort).received, 0, 'nothing reached the SDK datagram port');
  const q = await priv.ipc('stdio_status');
  assert.equal(q.queued, 0, `stdio queue: ${JSON.stringify(q)}`);
});

test('a local client cannot pick source port 7 to skip the trust check; echo requests need no source port', async () => {
  const target = formatted();
  const err = await pub.ipc('send', { target, port: 1000, data: 'x', srcPort: 7 }).then(
    () => undefined,
    (e: { code?: string }) => e,
  );
  assert.ok(err, 'refused');
  assert.equal(err.code, 'BAD_ARGUMENT');
  const plain = await pub.ipc('send', { target, port: 1000, data: 'x' }).then(
    () => undefined,
    (e: { code?: string }) => e,
  );
  assert.equal(plain?.code, 'NOT_TRUSTED');
  const echo = await pub.ipc('send', { target, port: 7, data: 'x' });
  assert.equal(echo.bytes, 1, 'an echo request needs no source port: an ephemeral one is chosen');
});
