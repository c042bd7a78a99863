// Real HTTP CONNECT proxies for lab tests: Debian's tinyproxy and squid, each
// started directly (no system service) with its own config under a temp dir,
// optionally inside a network namespace. stop() kills the one process it started.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface ProxyProcess {
  kind: 'tinyproxy' | 'squid';
  host: string;
  port: number;
  /** http://[user:pass@]host:port */
  url(auth?: { user: string; pass: string }): string;
  /** Its log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export interface ProxyOptions {
  /** Address to listen on (inside `netns` when given). */
  host: string;
  /** Default: a free port (found in the root namespace; fine for namespaces too, they have their own ports). */
  port?: number;
  netns?: string;
  /** Require Basic auth with these credentials (tinyproxy only). */
  auth?: { user: string; pass: string };
  /** Ports CONNECT may reach (default 443 only, as most corporate proxies). */
  connectPorts?: number[];
}

export function whichProxy(bin: 'tinyproxy' | 'squid'): string | undefined {
  for (const p of [`/usr/bin/${bin}`, `/usr/sbin/${bin}`]) if (fs.existsSync(p)) return p;
  const r = spawnSync('which', [bin], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function listening(netns: string | undefined, port: number): boolean {
  const argv = ['ss', '-Hltn', `sport = :${port}`];
  const r = netns ? spawnSync('ip', ['netns', 'exec', netns, ...argv], { encoding: 'utf8' }) : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim().length > 0;
}

async function launch(kind: ProxyProcess['kind'], argv: string[], o: ProxyOptions, port: number, dir: string, logFile: string): Promise<ProxyProcess> {
  const full = o.netns ? ['ip', 'netns', 'exec', o.netns, ...argv] : argv;
  const proc: ChildProcess = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const log = (): string => `${out}${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''}`;
  const deadline = Date.now() + 20_000;
  while (!listening(o.netns, port)) {
    if (proc.exitCode !== null) throw new Error(`${kind} exited (${proc.exitCode}): ${log()}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${kind} did not listen on ${o.host}:${port} within 20 s: ${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    kind,
    host: o.host,
    port,
    url: (auth) => `http://${auth ? `${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.pass)}@` : ''}${o.host}:${port}`,
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        const done = (): void => {
          fs.rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (proc.exitCode !== null || proc.signalCode !== null) return done();
        proc.once('exit', done);
        proc.kill('SIGKILL');
      }),
  };
}

/** tinyproxy in the foreground (-d) with a config of our own. */
export async function startTinyproxy(o: ProxyOptions): Promise<ProxyProcess> {
  const bin = whichProxy('tinyproxy');
  if (!bin) throw new Error('tinyproxy is not installed (apt-get install tinyproxy)');
  const port = o.port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-tinyproxy-'));
  fs.chmodSync(dir, 0o777); // it drops to nobody and still writes its log here
  const logFile = path.join(dir, 'tinyproxy.log');
  const conf = [
    `Port ${port}`,
    `Listen ${o.host}`,
    'Timeout 60',
    'MaxClients 64',
    'LogLevel Info',
    `LogFile "${logFile}"`,
    'User nobody',
    'Group nogroup',
    ...(o.connectPorts ?? [443]).map((p) => `ConnectPort ${p}`),
    ...(o.auth ? [`BasicAuth ${o.auth.user} ${o.auth.pass}`] : []),
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'tinyproxy.conf'), `${conf}\n`);
  return launch('tinyproxy', [bin, '-d', '-c', path.join(dir, 'tinyproxy.conf')], o, port, dir, logFile);
}

/** squid in the foreground (-N), no cache, CONNECT allowed to connectPorts only. */
export async function startSquid(o: ProxyOptions): Promise<ProxyProcess> {
  const bin = whichProxy('squid');
  if (!bin) throw new Error('squid is not installed (apt-get install squid)');
  if (o.auth) throw new Error('startSquid: auth is not set up (use tinyproxy for auth tests)');
  const port = o.port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-squid-'));
  fs.chmodSync(dir, 0o777);
  const logFile = path.join(dir, 'cache.log');
  const conf = [
    `http_port ${o.host}:${port}`,
    `pid_filename ${path.join(dir, 'squid.pid')}`,
    `cache_log ${logFile}`,
    'access_log none',
    'cache deny all',
    `coredump_dir ${dir}`,
    'pinger_enable off',
    'shutdown_lifetime 1 seconds',
    `acl SSL_ports port ${(o.connectPorts ?? [443]).join(' ')}`,
    'acl CONNECT method CONNECT',
    'http_access deny CONNECT !SSL_ports',
    'http_access allow all',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'squid.conf'), `${conf}\n`);
  return launch('squid', [bin, '-N', '-f', path.join(dir, 'squid.conf')], o, port, dir, logFile);
}
