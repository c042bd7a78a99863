// Pieces the NAT-lab benchmarks share (bench/natlab-throughput.bench.ts, bench/peers.bench.ts,
// bench/gateway-latency.bench.ts): helper processes inside a namespace, `pilotctl bench` with CPU
// and path, warm-up, medians, the TCP ping-pong roles.
import { spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { Agent, type CtlResult, type Rendezvous, run, startRendezvous } from '../test/helpers/cluster.ts';
import { type Host, type NatLab, RENDEZVOUS_IP } from '../test/helpers/natlab.ts';
import { trustPair } from '../test/nat/matrix.ts';
import { cpuSeconds, MiB, summarize } from './stats.ts';

export const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a non-negative number`);
  return v;
};

export function must(res: CtlResult, what: string): CtlResult {
  if (res.code !== 0) throw new Error(`${what}: ${res.json?.code ?? `exit ${res.code}`} ${res.json?.message ?? res.stderr.trim().split('\n').pop() ?? ''}`);
  return res;
}

/** `script` (a bench file run in a helper role) inside `ns`, long-running; resolves once it printed "ready". */
export async function startHelper(lab: Pick<NatLab, 'spawn'>, script: string, ns: string, args: string[]): Promise<ChildProcess> {
  const p = lab.spawn(ns, [process.execPath, script, ...args]);
  let err = '';
  p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${args[0]} not ready: ${err}`)), 10_000);
    p.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    p.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited ${code}: ${err}`));
    });
  });
  return p;
}

/** `script` in a helper role inside `ns`, to completion; its stdout lines as JSON. */
export async function runHelper<T>(script: string, ns: string, args: string[], timeoutMs: number): Promise<T[]> {
  const r = await run(['ip', 'netns', 'exec', ns, process.execPath, script, ...args], {}, timeoutMs);
  if (r.code !== 0) throw new Error(`${args[0]} exit ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
  return r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as T);
}

/** The rendezvous relay counters from its /metrics (inside its namespace). */
export function relayCounters(lab: NatLab, http: string): Record<string, number> {
  const r = spawnSync('ip', ['netns', 'exec', lab.rendezvous.ns, 'curl', '-s', '--max-time', '3', `http://${http}/metrics`], { encoding: 'utf8' });
  const out: Record<string, number> = {};
  if (r.status !== 0) return out;
  for (const line of r.stdout.split('\n')) {
    const m = /^pilot_rendezvous_relay_(packets_total|bytes_total|dropped_total)(?:\{reason="([^"]+)"\})? (\S+)$/.exec(line);
    if (m) out[m[2] ? `dropped:${m[2]}` : m[1]!] = Number(m[3]);
  }
  return out;
}

export interface PeerView {
  address: string;
  path: string;
  pathType: 'direct' | 'relay' | 'none';
  endpoint: string | null;
  relay: string | null;
  rttMs: number;
}

export async function peerView(from: Agent, to: Agent): Promise<PeerView | undefined> {
  const r = must(await from.ctl(['peers'], 10_000), 'peers');
  return (r.json.data.peers as PeerView[]).find((p) => p.address === to.address);
}

export interface StreamResult {
  mbps: number;
  seconds: number;
  bytes: number;
  /** CPU of sender / receiver daemon (and the rendezvous) over the transfer, in % of one core. */
  cpu: { from: number; to: number; rdv: number };
  pathFrom?: PeerView;
  pathTo?: PeerView;
}

/** `pilotctl bench` from -> to (warm: session and path already up). */
export async function pilotStream(from: Agent, to: Agent, rdv: Rendezvous, bytes: number): Promise<StreamResult> {
  const pids = [from.pid, to.pid, rdv.proc.pid!];
  const c0 = pids.map(cpuSeconds);
  const r = must(await from.ctl(['bench', to.address, String(bytes / MiB)], 150_000), `bench ${from.name} -> ${to.name}`);
  const c1 = pids.map(cpuSeconds);
  const d = r.json.data as { bytes: number; seconds: number };
  // Over the transfer itself (pilotctl's own start-up costs the daemons nothing); the dial and
  // the IPC call are in the numerator, negligible next to a multi-second transfer.
  const pct = (i: number): number => Math.round(((c1[i]! - c0[i]!) / d.seconds) * 100);
  const [pathFrom, pathTo] = await Promise.all([peerView(from, to), peerView(to, from)]);
  return { mbps: d.bytes / 1e6 / d.seconds, seconds: d.seconds, bytes: d.bytes, cpu: { from: pct(0), to: pct(1), rdv: pct(2) }, pathFrom, pathTo };
}

/** Trust, then a bench of `mb` MiB so the session, path, windows and JIT are warm; then the idle RTT (ms, ping avg). */
export async function warm(from: Agent, to: Agent, mb: number): Promise<number> {
  await trustPair(from, to, 20_000);
  must(await from.ctl(['bench', to.address, String(mb)], 60_000), `warm-up bench ${from.name} -> ${to.name}`);
  const pg = must(await from.ctl(['ping', to.address, '--count', '5', '--interval', '100ms', '--timeout', '3s'], 20_000), `ping ${from.name} -> ${to.name}`);
  return pg.json.data.avgMs as number;
}

/** The run with the median MB/s (the lower middle one for an even count). */
export function median<T extends { mbps: number }>(runs: T[]): T {
  return [...runs].sort((a, b) => a.mbps - b.mbps)[Math.floor((runs.length - 1) / 2)]!;
}

export const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
export const lastRouter = (h: Host) => h.site.routers.at(-1)!;

/** Echoes every byte back (the far end of the ping-pong). */
export function tcpEchoServer(port: number): void {
  net
    .createServer((s) => {
      s.setNoDelay(true);
      s.on('data', (c) => s.write(c));
      s.on('error', () => s.destroy());
    })
    .listen(port, '0.0.0.0', () => process.stdout.write('ready\n'));
}

/** `n` 1-byte request/responses on one connection (after 30 unmeasured); prints the RTTs' summary in ms. */
export async function tcpPingPong(host: string, port: number, n: number): Promise<void> {
  const s = net.connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  const one = Buffer.from([0x2a]);
  const rtts: number[] = [];
  for (let i = 0; i < n + 30; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      s.once('data', () => resolve());
      s.once('error', reject);
      s.write(one);
    });
    s.removeAllListeners('error');
    if (i >= 30) rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  s.destroy();
  process.stdout.write(`${JSON.stringify(summarize(rtts))}\n`);
}

/** The lab's rendezvous on port 9000 with its relay limit lifted (the relay is measured, not its per-node limit). */
export function startLabRendezvous(lab: NatLab, work: string): Promise<Rendezvous> {
  return startRendezvous({
    netns: lab.rendezvous.ns,
    listen: `${RENDEZVOUS_IP}:9000`,
    dataDir: path.join(work, 'rendezvous'),
    args: ['--relay-rate', '1e9'],
  });
}

/** An agent whose pilotctl (and so its daemon) comes from another checkout (A/B benches against a base commit). */
export class RootAgent extends Agent {
  private readonly root: string;
  constructor(name: string, work: string, netns: string, root: string) {
    super(name, work, netns);
    this.root = root;
  }
  override ctl(args: string[], timeoutMs?: number): Promise<CtlResult> {
    const argv = [process.execPath, path.join(this.root, 'src/cli/pilotctl.ts'), '--json', ...args];
    return run(['ip', 'netns', 'exec', this.netns!, ...argv], { PILOT_HOME: this.home, PILOT_SOCKET: this.socket }, timeoutMs);
  }
}
