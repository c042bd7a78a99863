// An embedded node (the daemon inside this test process, its own identity
// directory) talking to a daemon-backed node: trust, streams both ways, error
// codes crossing in both directions, and pilotctl driving the embedded node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { connect, startNode, PilotError, type PilotNode } from '../../src/sdk/index.ts';
import type { Agent } from '../helpers/cluster.ts';
import { drain, pump, startNet, type Net } from './helpers.ts';

let net: Net;
let daemonAgent: Agent;
let viaDaemon: PilotNode;
let embedded: PilotNode | undefined;
let home: string;
let socket: string;

const isCode = (code: string) => (e: unknown) => e instanceof PilotError && e.code === code;

before(async () => {
  net = await startNet();
  daemonAgent = await net.agent('em-daemon');
  viaDaemon = await connect({ socket: daemonAgent.socket });
  home = path.join(net.work, 'em-embedded');
  socket = path.join(home, 'pilot.sock');
  embedded = await startNode({
    home,
    registry: net.rdv.addr,
    email: 'em@example.com',
    hostname: 'em-embedded',
    listen: '127.0.0.1:0',
    socket,
    logger: 'silent',
  });
});

after(async () => {
  await embedded?.close();
  await viaDaemon?.close();
  await net?.stop();
});

test('an embedded node registers and is trusted by a daemon-backed node through the SDK', async () => {
  const e = embedded!;
  assert.equal(e.mode, 'embedded');
  assert.match(e.address, /^0:0000\.[0-9A-F]{4}\.[0-9A-F]{4}$/);
  assert.equal(e.hostname, 'em-embedded');
  const info = await e.info();
  assert.equal(info.pid, process.pid); // really in this process
  assert.equal(info.home, home);
  assert.equal((await e.handshake(daemonAgent.address)).status, 'pending'); // private: not findable by name before trust
  assert.equal((await viaDaemon.approve('em-embedded')).peer, e.address);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await e.trusted())[0]?.peer, daemonAgent.address);
});

test('streams both ways between the embedded node and the daemon', async () => {
  const e = embedded!;
  const size = 8 * 1024 * 1024;
  const srvE = await e.listen(6000, (s) => s.pipe(s));
  const srvD = await viaDaemon.listen(6001, (s) => s.pipe(s));
  try {
    const toEmbedded = await viaDaemon.dial('em-embedded', 6000);
    const toDaemon = await e.dial('em-daemon', 6001);
    assert.equal(toDaemon.remoteAddress, daemonAgent.address);
    assert.equal(toEmbedded.remoteAddress, e.address);
    const [s1, r1, s2, r2] = await Promise.all([pump(toEmbedded, size), drain(toEmbedded), pump(toDaemon, size), drain(toDaemon)]);
    assert.equal(r1.bytes, size);
    assert.equal(r1.sha256, s1);
    assert.equal(r2.bytes, size);
    assert.equal(r2.sha256, s2);
  } finally {
    await srvE.close();
    await srvD.close();
  }
});

test('error codes cross: refused, and destroy(err) arrives with its code in both directions', async () => {
  const e = embedded!;
  await assert.rejects(viaDaemon.dial('em-embedded', 4999), isCode('CONNECTION_REFUSED'));
  await assert.rejects(e.dial('em-daemon', 4999), isCode('CONNECTION_REFUSED'));

  // embedded listener resets with a code; the IPC-backed dialer sees that code
  const srvE = await e.listen(6002, (s) => {
    s.on('error', () => {}); // destroy(err) emits err here too, as on a net.Socket
    s.once('data', () => s.destroy(new PilotError('RATE_LIMITED', 'slow down')));
  });
  const a = await viaDaemon.dial('em-embedded', 6002);
  const errA = new Promise<Error>((r) => a.once('error', r));
  a.write('x');
  assert.equal(((await errA) as PilotError).code, 'RATE_LIMITED');
  await srvE.close();

  // the IPC-backed side resets with a code (sdk_reset); the embedded side sees it
  let gotErr: Promise<Error> | undefined;
  const srvE2 = await e.listen(6003, (s) => {
    gotErr = new Promise<Error>((r) => s.once('error', r));
    s.resume();
  });
  const b = await viaDaemon.dial('em-embedded', 6003);
  b.on('error', () => {});
  b.write('hello');
  await new Promise((r) => setTimeout(r, 100));
  b.destroy(new PilotError('NOT_FOUND', 'no such task'));
  await new Promise((r) => b.once('close', r));
  for (let i = 0; i < 50 && !gotErr; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(((await gotErr!) as PilotError).code, 'NOT_FOUND');
  await srvE2.close();
});

test('pilotctl drives the embedded node over its socket; a home with a running daemon is refused', async () => {
  const e = embedded!;
  const info = await daemonAgent.ctl(['--socket', socket, 'info']);
  assert.equal(info.code, 0, info.stderr);
  assert.equal(info.json.data.address, e.address);
  await assert.rejects(startNode({ home: daemonAgent.home, logger: 'silent' }), isCode('DAEMON_RUNNING'));
});

test('close() stops the embedded node; it comes back with the same identity and address', async () => {
  const before = embedded!.address;
  await embedded!.close();
  embedded = undefined;
  await assert.rejects(connect({ socket }), isCode('NO_DAEMON'));
  embedded = await startNode({ home, logger: 'silent' }); // everything else from home/config.json
  assert.equal(embedded.address, before);
  // the daemon notices the restart (new boot id) and makes a new session
  const r = await viaDaemon.ping('em-embedded', { count: 5, intervalMs: 300 });
  assert.ok(r.received >= 1, `no ping answer after the restart: ${JSON.stringify(r)}`);
});
