// pilot-rendezvous as a program: stdout carries only the start lines, the log
// is pino NDJSON on stderr (one format), and failures read like pilotctl's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { ROOT, tmpDir } from '../helpers/cluster.ts';

const MAIN = path.join(ROOT, 'src/rendezvous/main.ts');

interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs pilot-rendezvous; `stopWhen` sees stdout and says when to send SIGTERM (never: it must exit by itself). */
function rdv(args: string[], stopWhen?: (stdout: string) => boolean): Promise<Exited> {
  const proc = spawn(process.execPath, [MAIN, '--data', tmpDir('pilot-rdvmain-'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  proc.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    if (stopWhen?.(stdout)) proc.kill('SIGTERM');
  });
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) =>
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

test('stdout: only the start lines; stderr: every line a pino record (info logs included)', async () => {
  const r = await rdv(['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--log-level', 'info'], (out) => /^http /m.test(out));
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout.trim().split('\n');
  assert.equal(out.length, 2, r.stdout);
  assert.match(out[0]!, /^listening udp\+tcp 127\.0\.0\.1:\d+ key=[A-Za-z0-9+/=]{44} alt=\d+$/);
  assert.match(out[1]!, /^http 127\.0\.0\.1:\d+$/);
  const recs = r.stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { level: number; msg: string });
  assert.ok(
    recs.some((x) => x.msg === 'ready'),
    'the start is in the log too',
  );
  assert.ok(recs.some((x) => x.msg === 'shutting down'));
});

test('--json: one {"status":"ok","data"} start line', async () => {
  const r = await rdv(['--listen', '127.0.0.1:0', '--alt-port', 'none', '--log-level', 'silent', '--json'], (out) => out.includes('\n'));
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { status: string; data: { listen: string; key: string } };
  assert.equal(j.status, 'ok');
  assert.match(j.data.listen, /^127\.0\.0\.1:\d+$/);
  assert.equal(Buffer.from(j.data.key, 'base64').length, 32);
});

test('a busy --listen: ADDRESS_IN_USE in the pilotctl format, exit 1; --json gives the same as JSON', async () => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  try {
    const r = await rdv(['--listen', `127.0.0.1:${port}`, '--log-level', 'silent']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      new RegExp(
        `^error \\[ADDRESS_IN_USE\\]: tcp 127\\.0\\.0\\.1:${port} is already in use by another process\\nhint: pick another --listen HOST:PORT .*\\n$`,
      ),
    );
    const j = await rdv(['--listen', `127.0.0.1:${port}`, '--log-level', 'silent', '--json']);
    assert.equal(j.code, 1);
    const e = JSON.parse(j.stderr) as { status: string; code: string; hint: string };
    assert.equal(e.status, 'error');
    assert.equal(e.code, 'ADDRESS_IN_USE');
    assert.match(e.hint, /--listen/);
  } finally {
    srv.close();
  }
});

test('a bad value or an unknown flag: exit 2, the same format', async () => {
  const bad = await rdv(['--listen', '127.0.0.1:0', '--relay-rate', '5']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error \[BAD_ARGUMENT\]: bad --relay-rate 5\nhint: /);
  const level = await rdv(['--listen', '127.0.0.1:0', '--log-level', 'loud']);
  assert.equal(level.code, 2);
  assert.match(level.stderr, /^error \[BAD_ARGUMENT\]: unknown log level "loud"\nhint: --log-level \(or \$PILOT_LOG_LEVEL\) takes trace, /);
  const usage = await rdv(['--no-such-flag']);
  assert.equal(usage.code, 2);
  assert.equal(usage.stderr, "error [USAGE]: unknown option '--no-such-flag'\nhint: see: pilot-rendezvous --help\n");
});
