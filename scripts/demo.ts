// `npm run demo`: a local Pilot network on this machine. Starts a rendezvous
// server and two agents (real daemons, driven by the real pilotctl), then
// shows them find each other, ping over the encrypted tunnel and exchange a
// message. Everything it does is printed; everything it starts is stopped.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-demo-'));
const node = process.execPath;
const children: ChildProcess[] = [];

function banner(text: string): void {
  console.log(`\n\x1b[1m== ${text}\x1b[0m`);
}

function pilotctl(agent: string, args: string[], opts: { quiet?: boolean; allowFail?: boolean } = {}): string {
  const home = path.join(work, agent);
  const env = { ...process.env, PILOT_HOME: home, PILOT_SOCKET: path.join(home, 'pilot.sock') };
  if (!opts.quiet) console.log(`\x1b[36m[${agent}]$ pilotctl ${args.join(' ')}\x1b[0m`);
  const r = spawnSync(node, [path.join(root, 'src/cli/pilotctl.ts'), ...args], { env, encoding: 'utf8', timeout: 60_000 });
  const out = (r.stdout ?? '') + (r.stderr ?? '');
  if (!opts.quiet) process.stdout.write(out.replace(/^/gm, '  ').replace(/ {2}$/, ''));
  if (r.status !== 0 && !opts.allowFail) throw new Error(`pilotctl ${args.join(' ')} failed (exit ${r.status})`);
  return r.stdout ?? '';
}

async function startRendezvous(): Promise<string> {
  // its log (stderr, shown) only when something is wrong: the demo prints what matters itself
  const child = spawn(
    node,
    [path.join(root, 'src/rendezvous/main.ts'), '--listen', '127.0.0.1:0', '--data', path.join(work, 'rendezvous'), '--log-level', 'warn'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.push(child);
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /listening udp\+tcp (\S+)/.exec(buf);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`rendezvous exited (${code})`)));
    setTimeout(() => reject(new Error('rendezvous did not start')), 15_000);
  });
}

async function main(): Promise<void> {
  // the optional UDP GSO addon, when a fresh checkout has not built it yet (a failed build changes nothing)
  spawnSync(process.execPath, [path.join(root, 'scripts/native-build.js'), '--if-missing'], { stdio: 'inherit' });
  banner('1. rendezvous server (registry + beacon + relay) on one UDP/TCP port');
  const registry = await startRendezvous();
  console.log(`  pilot-rendezvous listening on ${registry}`);

  banner('2. two agents start their daemons and get permanent addresses');
  pilotctl('alpha', [
    'daemon',
    'start',
    '--registry',
    registry,
    '--email',
    'alpha@example.com',
    '--hostname',
    'agent-alpha',
    '--public',
    '--listen',
    '127.0.0.1:0',
  ]);
  pilotctl('beta', ['daemon', 'start', '--registry', registry, '--email', 'beta@example.com', '--hostname', 'agent-beta', '--listen', '127.0.0.1:0']);

  banner('3. beta looks up the public agent-alpha and asks for trust (zero trust by default)');
  pilotctl('beta', ['find', 'agent-alpha']);
  pilotctl('beta', ['send', 'agent-alpha', '1000', '--data', 'before trust'], { allowFail: true });
  pilotctl('beta', ['handshake', 'agent-alpha', 'demo: may I talk to you?']);
  pilotctl('alpha', ['pending']);
  pilotctl('alpha', ['approve', 'agent-beta']);
  pilotctl('beta', ['trust']);

  banner('4. ping over the encrypted tunnel (Noise IK session, echo on virtual port 7)');
  pilotctl('beta', ['ping', 'agent-alpha', '--count', '3', '--interval', '200ms']);

  banner('5. alpha waits for a datagram on virtual port 1000; beta sends one');
  const recv = spawn(node, [path.join(root, 'src/cli/pilotctl.ts'), 'recv', '1000', '--count', '1', '--timeout', '10s'], {
    env: { ...process.env, PILOT_HOME: path.join(work, 'alpha'), PILOT_SOCKET: path.join(work, 'alpha', 'pilot.sock') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const received = new Promise<string>((resolve) => {
    let out = '';
    recv.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    recv.on('exit', () => resolve(out));
  });
  await new Promise((r) => setTimeout(r, 500));
  pilotctl('beta', ['send', 'agent-alpha', '1000', '--data', 'hello from beta']);
  console.log(`\x1b[36m[alpha]$ pilotctl recv 1000 --count 1\x1b[0m\n  ${(await received).trim()}`);

  banner('6. beta opens a stream to alpha’s echo port and gets its message back');
  pilotctl('beta', ['connect', 'agent-alpha', '7', '--message', 'a message that travels both ways']);

  banner('7. a 20 MiB stream through the tunnel (bench to the sink on port 9)');
  pilotctl('beta', ['bench', 'agent-alpha', '20']);

  banner('8. what each side knows about its peers');
  pilotctl('alpha', ['peers']);
  pilotctl('beta', ['peers']);
}

function cleanup(): void {
  for (const agent of ['alpha', 'beta']) {
    if (fs.existsSync(path.join(work, agent, 'pilot.sock'))) pilotctl(agent, ['daemon', 'stop'], { quiet: true, allowFail: true });
  }
  for (const c of children) c.kill('SIGTERM');
  fs.rmSync(work, { recursive: true, force: true });
}

main()
  .then(() => {
    banner('demo complete: stopping everything');
    cleanup();
  })
  .catch((err: unknown) => {
    console.error(`\ndemo failed: ${(err as Error).message}`);
    for (const agent of ['alpha', 'beta']) {
      const log = path.join(work, agent, 'pilot.log');
      if (fs.existsSync(log)) console.error(`--- ${agent} log (tail) ---\n${fs.readFileSync(log, 'utf8').split('\n').slice(-15).join('\n')}`);
    }
    cleanup();
    process.exit(1);
  });
