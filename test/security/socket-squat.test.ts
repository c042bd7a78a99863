// Hole 6: socket squatting. Another local user (here: `nobody`, via chown, as
// the tests run as root) who plants the IPC socket first must receive nothing
// from pilotctl or the SDK, and the daemon must neither follow a symlink nor
// remove or take over someone else's socket. The default socket lives in a
// private directory ($XDG_RUNTIME_DIR/pilot/ or the 0700 home), never in /tmp.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { connect } from '../../src/sdk/index.ts';
import { asPilotError } from '../../src/util/errors.ts';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root (to chown a socket to another user)';
const PILOTCTL = path.join(ROOT, 'src/cli/pilotctl.ts');

let work: string;
let rdv: Rendezvous;

/** A squatter's socket at p, owned by `nobody`; counts every byte a client sends it. */
async function squat(p: string): Promise<{ received: () => string; close: () => Promise<void> }> {
  let got = '';
  const conns = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    conns.add(s);
    s.on('data', (c) => (got += c.toString()));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(p, r));
  fs.chmodSync(p, 0o777);
  fs.chownSync(p, NOBODY, NOBODY);
  return {
    received: () => got,
    close: () =>
      new Promise<void>((r) => {
        for (const c of conns) c.destroy();
        srv.close(() => r());
      }),
  };
}

const ctl = (args: string[], env: NodeJS.ProcessEnv = {}) => run([process.execPath, PILOTCTL, '--json', ...args], { SUDO_UID: '', ...env }, 60_000);

before(async () => {
  if (skip) return;
  work = tmpDir('pilot-squat-');
  fs.chmodSync(work, 0o755);
  rdv = await startRendezvous();
});

after(async () => {
  if (skip) return;
  await rdv?.kill();
  fs.rmSync(work, { recursive: true, force: true });
});

test('pilotctl and the SDK refuse a socket owned by another user: the squatter receives nothing', { skip }, async () => {
  const dir = path.join(work, 'shared');
  fs.mkdirSync(dir, { mode: 0o1777 });
  fs.chmodSync(dir, 0o1777); // like /tmp: world-writable, sticky
  const p = path.join(dir, 'pilot.sock');
  const s = await squat(p);
  try {
    const r = await ctl(['--socket', p, 'send-message', 'agent-alpha', '--data', 'the secret plan']);
    assert.notEqual(r.code, 0, 'pilotctl talked to the squatter');
    assert.equal(r.json?.code, 'UNSAFE_SOCKET', r.stderr);
    assert.match(r.json.message, /uid 65534/);
    assert.ok(r.json.hint, 'a hint says what to do');
    // root under sudo may drive the invoking user's daemon, but only that user's
    const sudo = await ctl(['--socket', p, 'info'], { SUDO_UID: '1234' });
    assert.equal(sudo.json?.code, 'UNSAFE_SOCKET', sudo.stderr);
    const sdk = await connect({ socket: p }).then(
      (n) => {
        void n.close();
        return assert.fail('the SDK connected to the squatter');
      },
      (e: unknown) => asPilotError(e),
    );
    assert.equal(sdk.code, 'UNSAFE_SOCKET');
    await new Promise((r2) => setTimeout(r2, 200));
    assert.equal(s.received(), '', 'not one byte reached the squatter');
  } finally {
    await s.close();
  }
});

test('pilotctl refuses a symlinked socket path', { skip }, async () => {
  const p = path.join(work, 'real.sock');
  const s = await squat(p);
  fs.chownSync(p, 0, 0); // even a socket of our own is not reached through a symlink
  const link = path.join(work, 'link.sock');
  fs.symlinkSync(p, link);
  try {
    const r = await ctl(['--socket', link, 'info']);
    assert.notEqual(r.code, 0);
    assert.equal(r.json?.code, 'UNSAFE_SOCKET', r.stderr);
    assert.match(r.json.message, /symlink/);
    assert.equal(s.received(), '');
  } finally {
    await s.close();
  }
});

test("the daemon refuses to start on a path holding another user's socket or a symlink, and removes neither", { skip }, async () => {
  const home = path.join(work, 'victim');
  const flags = ['--registry', rdv.addr, '--email', 'victim@example.com', '--listen', '127.0.0.1:0'];
  // another user's stale socket (nobody listening): it used to be deleted and taken over
  const p = path.join(work, 'stale.sock');
  const made = await run(['python3', '-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(p)})`]);
  assert.equal(made.code, 0, made.stderr);
  fs.chownSync(p, NOBODY, NOBODY);
  const r = await ctl(['--home', home, '--socket', p, 'daemon', 'start', ...flags]);
  if (r.code === 0) await ctl(['--home', home, '--socket', p, 'daemon', 'stop']); // (the hole: do not leave it running)
  assert.notEqual(r.code, 0, `the daemon took over another user's socket: ${r.stdout}`);
  assert.equal(r.json?.code, 'UNSAFE_SOCKET', r.stderr);
  assert.equal(fs.lstatSync(p).uid, NOBODY, "the squatter's socket was left alone");
  // a symlink at the socket path: refused, its target untouched
  const target = path.join(work, 'precious.txt');
  fs.writeFileSync(target, 'keep me');
  const link = path.join(work, 'daemon-link.sock');
  fs.symlinkSync(target, link);
  const r2 = await ctl(['--home', home, '--socket', link, 'daemon', 'start', ...flags]);
  if (r2.code === 0) await ctl(['--home', home, '--socket', link, 'daemon', 'stop']);
  assert.notEqual(r2.code, 0, 'the daemon started through a symlink');
  assert.equal(r2.json?.code, 'UNSAFE_SOCKET', r2.stderr);
  assert.ok(fs.lstatSync(link).isSymbolicLink(), 'the symlink was not removed');
  assert.equal(fs.readFileSync(target, 'utf8'), 'keep me');
});

test('by default the socket is private: $XDG_RUNTIME_DIR/pilot/ (0700) for the default home, HOME/pilot.sock otherwise; never /tmp', { skip }, async () => {
  const fakeHome = path.join(work, 'user');
  const xdg = path.join(work, 'run-user');
  fs.mkdirSync(fakeHome, { mode: 0o700 });
  fs.mkdirSync(xdg, { mode: 0o700 });
  const env = { HOME: fakeHome, XDG_RUNTIME_DIR: xdg, PILOT_HOME: '', PILOT_SOCKET: '' };
  const r = await ctl(['daemon', 'start', '--registry', rdv.addr, '--email', 'me@example.com', '--listen', '127.0.0.1:0'], env);
  assert.equal(r.code, 0, r.stderr);
  try {
    const sock = path.join(xdg, 'pilot', 'pilot.sock');
    assert.equal(r.json.data.socket, sock);
    assert.equal(fs.statSync(path.dirname(sock)).mode & 0o777, 0o700, 'socket directory 0700');
    assert.equal(fs.lstatSync(sock).mode & 0o777, 0o600, 'socket 0600');
    const saved = JSON.parse(fs.readFileSync(path.join(fakeHome, '.pilot', 'config.json'), 'utf8'));
    assert.equal(saved.socket, undefined, 'the default is not pinned into the config');
    // pilotctl finds it with no --socket, as in the seed article
    const info = await ctl(['daemon', 'status'], env);
    assert.equal(info.code, 0, info.stderr);
    // without a runtime directory (a system unit, sudo) the client still finds a daemon that listens in the home
    const other = await ctl(['info'], { ...env, XDG_RUNTIME_DIR: '' });
    assert.equal(other.code, 1, 'the home socket is not there: this daemon is in the runtime dir');
    assert.equal(other.json?.code, 'NO_DAEMON');
  } finally {
    await ctl(['daemon', 'stop'], env);
  }
  // a saved config from an old version that names /tmp/pilot.sock moves to the private default
  const home = path.join(work, 'legacy');
  fs.mkdirSync(home, { mode: 0o700 });
  fs.writeFileSync(
    path.join(home, 'config.json'),
    JSON.stringify({ registry: rdv.addr, email: 'old@example.com', listen: '127.0.0.1:0', socket: '/tmp/pilot.sock' }),
  );
  const env2 = { HOME: fakeHome, XDG_RUNTIME_DIR: xdg, PILOT_HOME: home, PILOT_SOCKET: '' };
  const r2 = await ctl(['daemon', 'start'], env2);
  assert.equal(r2.code, 0, r2.stderr);
  try {
    assert.equal(r2.json.data.socket, path.join(home, 'pilot.sock'));
    assert.equal((await ctl(['info'], env2)).code, 0);
  } finally {
    await ctl(['daemon', 'stop'], env2);
  }
});
