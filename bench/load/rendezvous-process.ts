// A real pilot-rendezvous in its own process (src/rendezvous/main.ts with the
// Node running this), on loopback, with a fresh data directory: the default
// SQLite store, /metrics on an ephemeral HTTP port. Optionally under
// --cpu-prof, whose profile is written when the process exits on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A capacity bench registers many thousand keys from each of its sources: the
 * per-source abuse limits (new identities, unregistered keys) are lifted so it
 * measures the registry, not them. test/security covers the limits.
 */
export const CAPACITY_FLAGS = [
  '--registration-rate',
  '1000000',
  '--registration-burst',
  '1000000',
  '--unregistered-rate',
  '1000000',
  '--unregistered-per-source',
  '1000000',
];
const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/rendezvous/main.ts');

export interface RendezvousProcess {
  proc: ChildProcess;
  pid: number;
  port: number;
  httpPort: number;
  serverKey: Buffer;
  dataDir: string;
  /** registry.db plus its WAL and shared-memory files, in bytes. */
  dbBytes(): number;
  /** SIGTERM, wait for a clean exit (the CPU profile is written then), remove the data directory. */
  stop(): Promise<void>;
}

/** `args`: more pilot-rendezvous flags (e.g. --store postgres://… for a scale-out instance). */
export async function startRendezvousProcess(opts: { cpuProfDir?: string; logLevel?: string; args?: string[] } = {}): Promise<RendezvousProcess> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-load-bench-'));
  const prof = opts.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir] : [];
  const args = [
    ...prof,
    MAIN,
    '--listen',
    '127.0.0.1:0',
    '--alt-port',
    'none',
    '--http',
    '127.0.0.1:0',
    '--data',
    dataDir,
    '--log-level',
    opts.logLevel ?? 'warn',
    ...CAPACITY_FLAGS,
    ...(opts.args ?? []),
  ];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const { port, key, http } = await new Promise<{ port: number; key: string; http: number }>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`rendezvous did not start: ${stderr}`)), 20_000);
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const l = /listening udp\+tcp \S+:(\d+) key=(\S+)/.exec(buf);
      const h = /\nhttp \S+:(\d+)/.exec(buf);
      if (l && h) {
        clearTimeout(timer);
        resolve({ port: Number(l[1]), key: l[2]!, http: Number(h[1]) });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`rendezvous exited (${code}): ${stderr}`));
    });
  });
  proc.stdout!.resume();
  const db = path.join(dataDir, 'registry.db');
  return {
    proc,
    pid: proc.pid!,
    port,
    httpPort: http,
    serverKey: Buffer.from(key, 'base64'),
    dataDir,
    dbBytes: () => ['', '-wal', '-shm'].reduce((n, ext) => n + (fs.existsSync(db + ext) ? fs.statSync(db + ext).size : 0), 0),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        await new Promise<void>((resolve) => {
          const kill = setTimeout(() => proc.kill('SIGKILL'), 30_000);
          proc.once('exit', () => (clearTimeout(kill), resolve()));
          proc.kill('SIGTERM');
        });
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
