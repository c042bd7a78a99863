// A SIGKILLed daemon whose parent has not reaped it yet is a zombie: kill(pid, 0)
// still succeeds and /proc/PID/stat still has its start time. It holds nothing any
// more, so its lock must not refuse the restart. (In CI, PID 1 of the container
// reaps late: `daemon start` right after a kill -9 was refused as DAEMON_RUNNING.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HomeLock, LOCK_FILE } from '../../src/daemon/home-lock.ts';

const stat = (pid: number): string => fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
const after = (s: string): string[] => s.slice(s.lastIndexOf(')') + 2).split(' ');

test('a zombie holder (killed, not yet reaped) does not block a start', { skip: process.platform !== 'linux' }, async (t) => {
  // sh starts a short sleep, prints its pid, then becomes `sleep 5`, which never reaps the child.
  const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => parent.kill('SIGKILL'));
  const pid = Number((await new Promise<Buffer>((r) => parent.stdout.once('data', r))).toString().trim());
  let fields = after(stat(pid));
  for (let i = 0; i < 100 && fields[0] !== 'Z'; i++) {
    await new Promise((r) => setTimeout(r, 20));
    fields = after(stat(pid));
  }
  assert.equal(fields[0], 'Z', 'the child is a zombie');
  process.kill(pid, 0); // and kill(0) still finds it

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-lock-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  fs.writeFileSync(
    path.join(dir, LOCK_FILE),
    JSON.stringify({ pid, kind: 'daemon', since: new Date().toISOString(), host: os.hostname(), bootId: boot, startTime: fields[19] }),
  );
  const lock = HomeLock.acquire(dir, { kind: 'daemon' });
  assert.equal(JSON.parse(fs.readFileSync(lock.file, 'utf8')).pid, process.pid);
  lock.release();
});
