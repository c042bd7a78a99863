// The PILOT_HOME lock on its own (src/daemon/home-lock.ts): refusal naming the holder, release, and the
// stale cases (dead pid, reused pid, reboot, another host gone quiet, garbage) that must not block a start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HomeLock, LOCK_FILE, REMOTE_STALE_MS, type LockHolder } from '../../src/daemon/home-lock.ts';
import { PilotError } from '../../src/util/errors.ts';

function home(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-lock-'));
}

function plant(dir: string, h: Partial<LockHolder>): string {
  const file = path.join(dir, LOCK_FILE);
  fs.writeFileSync(file, JSON.stringify({ kind: 'daemon', since: '2026-01-01T00:00:00.000Z', host: os.hostname(), ...h }));
  return file;
}

/** A pid no process has now. */
function deadPid(): number {
  for (let pid = 4_000_000; pid > 1000; pid -= 7919) {
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return pid;
    }
  }
  throw new Error('no free pid found');
}

function startTimeOf(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

const refused = (re: RegExp) => (e: unknown) => e instanceof PilotError && e.code === 'DAEMON_RUNNING' && re.test(e.message) && /PILOT_HOME/.test(e.hint ?? '');

test('a second holder is refused with the first one named; release frees the home', () => {
  const dir = home();
  const a = HomeLock.acquire(dir, { kind: 'daemon', socket: '/run/x/pilot.sock' });
  assert.equal(a.holder.pid, process.pid);
  const onDisk = JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'));
  assert.equal(onDisk.pid, process.pid);
  assert.equal(onDisk.socket, '/run/x/pilot.sock');
  assert.equal(fs.statSync(path.join(dir, LOCK_FILE)).mode & 0o777, 0o600);
  assert.throws(
    () => HomeLock.acquire(dir, { kind: 'embedded' }),
    refused(new RegExp(`a daemon \\(pid ${process.pid}\\), socket /run/x/pilot\\.sock, since \\d{4}-`)),
  );
  // another spelling of the same home is the same lock
  assert.throws(() => HomeLock.acquire(`${dir}/./`, { kind: 'daemon' }), refused(/pid/));
  assert.equal(HomeLock.holderOf(dir)?.pid, process.pid);
  assert.throws(() => HomeLock.refuseIfHeld(dir), refused(/socket \/run\/x\/pilot\.sock/));
  a.release();
  HomeLock.refuseIfHeld(dir); // free: no throw
  a.release(); // idempotent
  assert.equal(fs.existsSync(path.join(dir, LOCK_FILE)), false);
  assert.equal(HomeLock.holderOf(dir), undefined);
  const b = HomeLock.acquire(dir, { kind: 'embedded' });
  assert.throws(() => HomeLock.acquire(dir, { kind: 'daemon' }), refused(/an embedded node \(startNode\) in pid \d+, no IPC socket/));
  b.release();
});

test('a dead holder (SIGKILL, crash) does not block a start', () => {
  const dir = home();
  plant(dir, { pid: deadPid() });
  const l = HomeLock.acquire(dir, { kind: 'daemon' });
  assert.equal(JSON.parse(fs.readFileSync(l.file, 'utf8')).pid, process.pid);
  l.release();
});

test('our own pid in a lock we do not hold is a previous life (pid 1 of a restarted container)', () => {
  const dir = home();
  plant(dir, { pid: process.pid });
  HomeLock.acquire(dir, { kind: 'daemon' }).release();
});

test('a live pid is the holder only if it is the same process (start time, boot id)', { skip: process.platform !== 'linux' }, () => {
  const dir = home();
  const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  // pid 1 lives; recorded with its real start time it is a live holder
  plant(dir, { pid: 1, startTime: startTimeOf(1), bootId: boot });
  assert.throws(() => HomeLock.acquire(dir, { kind: 'daemon' }), refused(/a daemon \(pid 1\)/));
  // the same pid with another start time: the holder died and the pid was reused
  plant(dir, { pid: 1, startTime: '1', bootId: boot });
  HomeLock.acquire(dir, { kind: 'daemon' }).release();
  // written before a reboot
  plant(dir, { pid: 1, startTime: startTimeOf(1), bootId: '00000000-0000-0000-0000-000000000000' });
  HomeLock.acquire(dir, { kind: 'daemon' }).release();
});

test('a holder on another host holds while it refreshes the file, and is stale once it stops', () => {
  const dir = home();
  const file = plant(dir, { pid: 1, host: 'other-host.invalid' });
  assert.throws(() => HomeLock.acquire(dir, { kind: 'daemon' }), refused(/on host other-host\.invalid/));
  const old = new Date(Date.now() - REMOTE_STALE_MS - 1000);
  fs.utimesSync(file, old, old);
  HomeLock.acquire(dir, { kind: 'daemon' }).release();
});

test('an unreadable lock file is taken over; release leaves a lock that is not ours alone', () => {
  const dir = home();
  const file = path.join(dir, LOCK_FILE);
  fs.writeFileSync(file, 'garbage');
  const l = HomeLock.acquire(dir, { kind: 'daemon' });
  fs.writeFileSync(file, JSON.stringify({ pid: 1, host: os.hostname(), kind: 'daemon', since: 'x' }));
  l.release();
  assert.equal(fs.existsSync(file), true, 'someone else’s lock survives our release');
});

test('the home is created (0700) when missing', () => {
  const dir = path.join(home(), 'new', 'home');
  const l = HomeLock.acquire(dir, { kind: 'daemon' });
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  l.release();
});

test('many nodes in one process share one exit hook (no listener leak warning at eleven embedded nodes)', () => {
  const before = process.listenerCount('exit');
  const locks = Array.from({ length: 12 }, () => HomeLock.acquire(home(), { kind: 'embedded' }));
  assert.equal(process.listenerCount('exit'), before + 1);
  for (const l of locks.slice(0, 11)) l.release();
  assert.equal(process.listenerCount('exit'), before + 1); // one lock still held
  locks[11]!.release();
  assert.equal(process.listenerCount('exit'), before);
  for (const l of locks) assert.equal(fs.existsSync(l.file), false);
});
