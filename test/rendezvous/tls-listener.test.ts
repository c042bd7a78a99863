// pilot-rendezvous --tls-listen/--tls-cert/--tls-key as a program: the start
// line, the three flags together or not at all, unreadable or mismatched
// files as BAD_ARGUMENT naming the file, and a renewed certificate served after
// SIGHUP without a restart (what a certbot/lego deploy hook does).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { ROOT, tmpDir } from '../helpers/cluster.ts';
import { hasOpenssl, makeTestCa } from '../helpers/test-ca.ts';

const MAIN = path.join(ROOT, 'src/rendezvous/main.ts');
const skip = hasOpenssl() ? false : 'needs the openssl CLI';

function start(args: string[]) {
  const proc = spawn(process.execPath, [MAIN, '--data', tmpDir('pilot-rdvtls-'), '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  const exited = new Promise<number | null>((r) =>
    proc.once('close', (code) => {
      clearTimeout(timer);
      r(code);
    }),
  );
  const line = (re: RegExp, ms = 15_000): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const t0 = Date.now();
      const check = (): void => {
        const m = re.exec(stdout) ?? re.exec(stderr);
        if (m) return resolve(m);
        if (proc.exitCode !== null || Date.now() - t0 > ms) return reject(new Error(`no ${re} in: ${stdout}\n${stderr}`));
        setTimeout(check, 50);
      };
      check();
    });
  return { proc, exited, line, out: () => ({ stdout, stderr }) };
}

function handshake(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: '' }, () => {
      s.destroy();
      resolve('ok');
    });
    s.once('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
  });
}

test('pilot-rendezvous --tls-listen: a wss start line, and a renewed certificate after SIGHUP', { skip, timeout: 60_000 }, async () => {
  const a = makeTestCa('ca-a');
  const b = makeTestCa('ca-b');
  try {
    const live = fs.mkdtempSync(path.join(a.dir, 'live-'));
    const cert = path.join(live, 'fullchain.pem');
    const key = path.join(live, 'privkey.pem');
    const first = a.issue('rv1', ['127.0.0.1']);
    fs.copyFileSync(first.cert, cert);
    fs.copyFileSync(first.key, key);
    const r = start(['--tls-listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key, '--log-level', 'info']);
    try {
      const port = Number((await r.line(/^wss 127\.0\.0\.1:(\d+)$/m))[1]);
      assert.equal(await handshake(port, fs.readFileSync(a.caCert)), 'ok');
      const renewed = b.issue('rv2', ['127.0.0.1']);
      fs.copyFileSync(renewed.cert, cert);
      fs.copyFileSync(renewed.key, key);
      r.proc.kill('SIGHUP');
      await r.line(/TLS certificate reloaded/);
      assert.equal(await handshake(port, fs.readFileSync(b.caCert)), 'ok', 'the renewed certificate is served');
      assert.notEqual(await handshake(port, fs.readFileSync(a.caCert)), 'ok');
    } finally {
      r.proc.kill('SIGTERM');
      assert.equal(await r.exited, 0);
    }
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('pilot-rendezvous: --tls-* flags go together; unreadable or mismatched files are BAD_ARGUMENT naming the file (exit 2)', {
  skip,
  timeout: 60_000,
}, async () => {
  const ca = makeTestCa('ca-c');
  try {
    const one = ca.issue('one', ['127.0.0.1']);
    const two = ca.issue('two', ['127.0.0.1']);
    for (const [args, re] of [
      [['--tls-listen', '127.0.0.1:0'], /--tls-listen, --tls-cert and --tls-key go together/],
      [['--tls-cert', one.cert, '--tls-key', one.key], /go together/],
      [
        ['--tls-listen', '127.0.0.1:0', '--tls-cert', '/nonexistent/fullchain.pem', '--tls-key', one.key],
        /cannot read --tls-cert \/nonexistent\/fullchain\.pem: ENOENT/,
      ],
      [['--tls-listen', '127.0.0.1:0', '--tls-cert', one.cert, '--tls-key', two.key], /--tls-cert .*one\.crt \/ --tls-key .*two\.key/],
    ] as const) {
      const r = start([...args]);
      const code = await r.exited;
      assert.equal(code, 2, `${args.join(' ')}: ${r.out().stderr}`);
      assert.match(r.out().stderr, /error \[BAD_ARGUMENT\]/);
      assert.match(r.out().stderr, re);
      assert.match(r.out().stderr, /hint: /);
    }
  } finally {
    ca.cleanup();
  }
});
