// Test helpers that run the real programs: pilot-rendezvous and daemons
// started with the real `pilotctl daemon start`, optionally inside a network
// namespace (`ip netns exec`).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IpcClient } from '../../src/ipc/client.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE = process.execPath;

export function tmpDir(prefix = 'pilot-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function wrap(cmd: string[], netns?: string): string[] {
  return netns ? ['ip', 'netns', 'exec', netns, ...cmd] : cmd;
}

export interface Rendezvous {
  addr: string;
  port: number;
  /** HOST:PORT of the metrics/dashboard listener, when started with --http. */
  http?: string;
  dataDir: string;
  proc: ChildProcess;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** `args`: extra pilot-rendezvous flags (e.g. --store postgres://…). */
export async function startRendezvous(opts: { dataDir?: string; listen?: string; netns?: string; args?: string[] } = {}): Promise<Rendezvous> {
  const dataDir = opts.dataDir ?? tmpDir('pilot-rdv-');
  const argv = wrap(
    [NODE, path.join(ROOT, 'src/rendezvous/main.ts'), '--listen', opts.listen ?? '127.0.0.1:0', '--data', dataDir, '--log-level', 'warn', ...(opts.args ?? [])],
    opts.netns,
  );
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const wantHttp = opts.args?.includes('--http') ?? false;
  let http: string | undefined;
  const addr = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`rendezvous did not start: ${stderr}`)), 15_000);
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /listening udp\+tcp (\S+)/.exec(buf);
      const h = /^http (\S+)$/m.exec(buf);
      if (m && (!wantHttp || h)) {
        clearTimeout(timer);
        http = h?.[1];
        resolve(m[1]!);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`rendezvous exited (${code}): ${stderr}`));
    });
  });
  proc.stdout!.resume();
  return {
    addr,
    port: Number(addr.slice(addr.lastIndexOf(':') + 1)),
    ...(http !== undefined ? { http } : {}),
    dataDir,
    proc,
    kill: (signal = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill(signal);
      }),
  };
}

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Parsed --json output (stdout on success, stderr on failure), if any. */
  json: any;
}

export function run(argv: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<CtlResult> {
  return new Promise((resolve) => {
    const p = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      let json: unknown;
      const text = (code === 0 ? stdout : stderr).trim().split('\n').pop() ?? '';
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

export class Agent {
  readonly name: string;
  readonly home: string;
  readonly socket: string;
  readonly netns: string | undefined;
  address = '';
  pid = 0;

  constructor(name: string, work: string, netns?: string) {
    this.name = name;
    this.home = path.join(work, name);
    this.socket = path.join(this.home, 'pilot.sock');
    this.netns = netns;
  }

  /** Run pilotctl as this agent (--json added). */
  ctl(args: string[], timeoutMs?: number): Promise<CtlResult> {
    return run(
      wrap([NODE, path.join(ROOT, 'src/cli/pilotctl.ts'), '--json', ...args], this.netns),
      { PILOT_HOME: this.home, PILOT_SOCKET: this.socket },
      timeoutMs,
    );
  }

  /** One call straight over the daemon's IPC socket (what pilotctl does, without starting a CLI process). */
  async ipc<T = any>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const c = new IpcClient(this.socket);
    try {
      return (await c.request(method, params)) as T; // tests read answers loosely; the contract is checked in src/
    } finally {
      c.close();
    }
  }

  async start(extra: string[] = []): Promise<void> {
    const r = await this.ctl(['daemon', 'start', ...extra]);
    if (r.code !== 0) throw new Error(`daemon start failed for ${this.name}: ${r.stderr} ${r.stdout}`);
    this.address = r.json.data.address;
    this.pid = r.json.data.pid;
  }

  async stop(): Promise<void> {
    await this.ctl(['daemon', 'stop']).catch(() => undefined);
  }

  kill9(): void {
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }

  log(): string {
    const p = path.join(this.home, 'pilot.log');
    return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
  }
}
