// One node per PILOT_HOME with the real programs: a second daemon (another socket, same home) and
// startNode() on a daemon's home are refused naming the holder, and so is a daemon on an embedded
// node's home; a refused or failed start leaves config.json untouched; a SIGKILLed daemon's lock
// does not block its restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { startNode, PilotError } from '../../src/sdk/index.ts';

let rdv: Rendezvous;
let work: string;
let a: Agent;

before(async () => {
  work = tmpDir();
  rdv = await startRendezvous();
  a = new Agent('solo', work);
  await a.start(['--registry', rdv.addr, '--email', 'solo@example.com', '--hostname', 'solo-node', '--listen', '127.0.0.1:0']);
});

after(async () => {
  await a?.stop();
  await rdv?.kill();
});

const config = (home: string): string => fs.readFileSync(path.join(home, 'config.json'), 'utf8');

test('a second daemon on the same home with another socket is refused, names the holder, and changes nothing', async () => {
  const before = config(a.home);
  const other = path.join(work, 'other.sock');
  const r = await a.ctl(['--socket', other, 'daemon', 'start', '--socket', other, '--hostname', 'intruder', '--listen', '127.0.0.1:0']);
  assert.notEqual(r.code, 0, `the second start must fail: ${r.stdout}`);
  assert.equal(r.json?.code, 'DAEMON_RUNNING', r.stderr);
  assert.match(r.json.message, new RegExp(`a daemon \\(pid ${a.pid}\\), socket ${a.socket.replace(/[.]/g, '\\.')}, since `));
  assert.match(r.json.hint, /pilotctl .*daemon stop.*PILOT_HOME/);
  assert.equal(config(a.home), before, 'config.json untouched by the refused start');
  assert.equal(fs.existsSync(other), false);
  // the first daemon still answers, with its own identity
  const info = await a.ctl(['info']);
  assert.equal(info.code, 0, info.stderr);
  assert.equal(info.json.data.address, a.address);
});

test('startNode() on a running daemon’s home is refused (also when it would serve another socket)', async () => {
  const before = config(a.home);
  await assert.rejects(
    startNode({ home: a.home, socket: path.join(work, 'embedded.sock'), hostname: 'intruder', logger: 'silent' }),
    (e: unknown) => e instanceof PilotError && e.code === 'DAEMON_RUNNING' && e.message.includes(`pid ${a.pid}`),
  );
  assert.equal(config(a.home), before);
});

test('a daemon on the home of a running startNode() is refused; the node keeps running', async () => {
  const home = path.join(work, 'embedded-home');
  const node = await startNode({ home, registry: rdv.addr, email: 'em@example.com', listen: '127.0.0.1:0', logger: 'silent' });
  try {
    const before = config(home);
    const e = new Agent('embedded-home', work);
    const r = await e.ctl(['daemon', 'start', '--listen', '127.0.0.1:0']);
    assert.notEqual(r.code, 0);
    assert.equal(r.json?.code, 'DAEMON_RUNNING', r.stderr);
    assert.match(r.json.message, new RegExp(`an embedded node \\(startNode\\) in pid ${process.pid}`));
    assert.equal(config(home), before);
    assert.ok((await node.info()).address);
  } finally {
    await node.close();
  }
  assert.equal(fs.existsSync(path.join(home, 'pilot.lock')), false, 'close() gives the home back');
});

test('a failed start (bad --listen) leaves the saved config as it was', async () => {
  const home = path.join(work, 'failing');
  const f = new Agent('failing', work);
  // first start: nothing saved when it fails
  const r0 = await f.ctl(['daemon', 'start', '--registry', rdv.addr, '--email', 'f@example.com', '--listen', '203.0.113.9:1']);
  assert.notEqual(r0.code, 0);
  assert.equal(fs.existsSync(path.join(home, 'config.json')), false, 'no config.json after a failed first start');
  await f.start(['--registry', rdv.addr, '--email', 'f@example.com', '--listen', '127.0.0.1:0']);
  await f.stop();
  const before = config(home);
  const r = await f.ctl(['daemon', 'start', '--hostname', 'renamed', '--listen', '203.0.113.9:1']);
  assert.notEqual(r.code, 0);
  assert.equal(config(home), before);
  assert.equal(fs.existsSync(path.join(home, 'pilot.lock')), false, 'the failed daemon left no lock');
});

test('the lock of a SIGKILLed daemon does not block its restart', async () => {
  const k = new Agent('killed', work);
  await k.start(['--registry', rdv.addr, '--email', 'k@example.com', '--listen', '127.0.0.1:0']);
  const address = k.address;
  assert.ok(fs.existsSync(path.join(k.home, 'pilot.lock')));
  k.kill9();
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(k.pid, 0);
    } catch {
      break;
    }
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(fs.existsSync(path.join(k.home, 'pilot.lock')), 'SIGKILL leaves the lock file behind');
  await k.start();
  assert.equal(k.address, address);
  await k.stop();
});

test('two daemon starts at once on one home: exactly one runs, the other is refused', async () => {
  const x = new Agent('race', work);
  const flags = ['--registry', rdv.addr, '--email', 'race@example.com', '--listen', '127.0.0.1:0'];
  const s1 = path.join(work, 'race-1.sock');
  const s2 = path.join(work, 'race-2.sock');
  const [r1, r2] = await Promise.all([
    x.ctl(['--socket', s1, 'daemon', 'start', '--socket', s1, ...flags]),
    x.ctl(['--socket', s2, 'daemon', 'start', '--socket', s2, ...flags]),
  ]);
  const ok = [r1, r2].filter((r) => r.code === 0);
  const refusedStarts = [r1, r2].filter((r) => r.code !== 0);
  assert.equal(ok.length, 1, `${r1.stderr} ${r2.stderr}`);
  assert.equal(refusedStarts[0]!.json?.code, 'DAEMON_RUNNING', refusedStarts[0]!.stderr);
  const winner = r1.code === 0 ? s1 : s2;
  assert.equal(JSON.parse(config(x.home)).socket, winner, 'the saved config is the running one');
  await x.ctl(['--socket', winner, 'daemon', 'stop']);
});
