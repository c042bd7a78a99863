// Item of 10: `pilot-rendezvous --admin-token T` puts the dashboard's admin
// token in the process list, readable by every local user. The token can come
// from $PILOT_ADMIN_TOKEN or --admin-token-file instead (then it is in no
// process's command line); the flag still works but warns.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ROOT, tmpDir } from '../helpers/cluster.ts';

const TOKEN = 'file-token-0123456789abcdef';
const work = tmpDir('pilot-admintok-');
const procs: ChildProcess[] = [];

after(() => {
  for (const p of procs) p.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
});

interface Started {
  proc: ChildProcess;
  port: number;
  stderr: () => string;
}

/** A real pilot-rendezvous with --http on loopback; resolves once its http line is out (or rejects with its stderr). */
function startRdv(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const data = tmpDir('pilot-admintok-data-');
  const proc = spawn(
    process.execPath,
    [
      path.join(ROOT, 'src/rendezvous/main.ts'),
      '--listen',
      '127.0.0.1:0',
      '--alt-port',
      'none',
      '--http',
      '127.0.0.1:0',
      '--data',
      data,
      '--log-level',
      'warn', // the token warnings are log records (pino NDJSON on stderr); nothing else logs at warn here
      ...args,
    ],
    { env: { ...process.env, PILOT_ADMIN_TOKEN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  procs.push(proc);
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no http line: ${err}`)), 20_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /^http \S+:(\d+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]), stderr: () => err });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`exited ${code}: ${err}`), { stderr: err }));
    });
  });
}

function status(port: number, auth: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/api/admin/stats', headers: { authorization: auth } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

const cmdline = (pid: number): string => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');

test('--admin-token-file: the token works and is in no command line; no warning', async () => {
  const file = path.join(work, 'token');
  fs.writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
  const s = await startRdv(['--admin-token-file', file]);
  assert.equal(await status(s.port, `Bearer ${TOKEN}`), 200);
  assert.equal(await status(s.port, 'Bearer wrong-token-0123456789'), 401);
  assert.ok(!cmdline(s.proc.pid!).includes(TOKEN), 'the token is not in the process list');
  assert.equal(s.stderr(), '');
  s.proc.kill();
});

test('$PILOT_ADMIN_TOKEN: the token works and is in no command line', async () => {
  const tok = 'env-token-0123456789abcdef';
  const s = await startRdv([], { PILOT_ADMIN_TOKEN: tok });
  assert.equal(await status(s.port, `Bearer ${tok}`), 200);
  assert.ok(!cmdline(s.proc.pid!).includes(tok));
  s.proc.kill();
});

test('--admin-token still works but warns that every local user can read it', async () => {
  const tok = 'flag-token-0123456789abcdef';
  const s = await startRdv(['--admin-token', tok]);
  assert.equal(await status(s.port, `Bearer ${tok}`), 200);
  assert.match(s.stderr(), /"level":40,.*"msg":"--admin-token is visible to every local user.*PILOT_ADMIN_TOKEN or --admin-token-file/);
  s.proc.kill();
});

test('a token file readable by others is used with a warning; a missing one and flag+file are refused with a hint', async () => {
  const file = path.join(work, 'token-644');
  fs.writeFileSync(file, `${TOKEN}\n`, { mode: 0o644 });
  fs.chmodSync(file, 0o644);
  const s = await startRdv(['--admin-token-file', file]);
  assert.match(s.stderr(), /"level":40,.*readable by other users \(mode 644\): chmod 600/);
  s.proc.kill();
  const missing = await startRdv(['--admin-token-file', path.join(work, 'nope')]).then(
    () => assert.fail('started'),
    (e: { stderr: string }) => e.stderr,
  );
  assert.match(missing, /^error \[BAD_ARGUMENT\]: cannot read the admin token file .*ENOENT\nhint: create it/m);
  const both = await startRdv(['--admin-token-file', file, '--admin-token', TOKEN]).then(
    () => assert.fail('started'),
    (e: { stderr: string }) => e.stderr,
  );
  assert.match(both, /^error \[BAD_ARGUMENT\]: both --admin-token and --admin-token-file/m);
});
