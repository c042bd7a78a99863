// Roaming back to direct (issue 19): a host moves to a new NAT in the middle of a
// stream, again and again, and each time the pair must go direct again (both
// sides report direct, the fixed side at the mover's new public address) with the
// stream intact. One lab for every trial: a fixed peer behind a port-restricted
// cone NAT, and a mover that walks between three cone routers (a fresh mapping at
// each arrival). Used by test/nat/roaming-direct.test.ts (a few trials) and by
// bench/roaming.bench.ts (10 + 10).
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { Agent, ROOT, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { NatLab, RENDEZVOUS_IP, type Router } from '../helpers/natlab.ts';
import { RoamingHost } from '../helpers/roam-lab.ts';
import { trustPair } from './matrix.ts';

const MiB = 1024 * 1024;
const ECHO_SCRIPT = path.join(ROOT, 'test/helpers/echo-transfer.ts');

export interface Trial {
  mover: 'sender' | 'receiver';
  /** Router index moved to, and its public address. */
  to: number;
  publicIp: string;
  /** ms from the move until both sides reported direct (the fixed side at the new address); Infinity: not within the limit. */
  directMs: number;
  /** ms from the move until the fixed side first reported the relay (Infinity: never seen). */
  relayMs: number;
  intact: boolean;
  bytes: number;
  /**
   * UDP bytes the fixed side's router counted in live flows with the mover's new public
   * address: the kernel's word that the path is direct, independent of the daemons.
   */
  kernelBytes: number;
  /** The local interface the mover's daemon says its direct path leaves by (`peers`: via). */
  via: string | null;
  /** Both sides' views when the trial ended, and log tails on failure. */
  views: string;
  detail?: string;
}

export interface RoamOptions {
  /** How long a trial may take to go direct again (ms). */
  directLimitMs?: number;
  streamBytes?: number;
  log?: (line: string) => void;
}

interface PeerRow {
  address: string;
  pathType: string;
  endpoint: string | null;
  via?: string | null;
}

export class RoamTrials {
  readonly lab = new NatLab();
  private readonly work = tmpDir('pilot-roam2-');
  private rdv: Rendezvous | undefined;
  mover!: Agent;
  fixed!: Agent;
  host!: RoamingHost;
  private peerRouter!: Router;
  private readonly opts: Required<Pick<RoamOptions, 'directLimitMs' | 'streamBytes'>> & RoamOptions;

  constructor(opts: RoamOptions = {}) {
    this.opts = { directLimitMs: 15_000, streamBytes: 16 * MiB, ...opts };
  }

  async start(): Promise<void> {
    const peerSite = this.lab.addSite('cone', 'fix');
    this.peerRouter = peerSite.routers[0]!;
    const sites = [this.lab.addSite('cone', 'wa'), this.lab.addSite('cone', 'wb'), this.lab.addSite('cone', 'wc')];
    // The sites' own hosts are not used; the mover gets a veth into each site's LAN.
    this.host = new RoamingHost(this.lab, 'mv', sites);
    this.host.moveTo(0);
    this.rdv = await startRendezvous({ netns: this.lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(this.work, 'rendezvous') });
    const start = async (name: string, ns: string): Promise<Agent> => {
      const a = new Agent(name, this.work, ns);
      await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${name}@example.com`, '--hostname', name, '--listen', '0.0.0.0:0']);
      return a;
    };
    this.mover = await start('mv', this.host.ns);
    this.fixed = await start('fix', peerSite.hosts[0]!.ns);
    await trustPair(this.mover, this.fixed);
  }

  async stop(): Promise<void> {
    for (const a of [this.mover, this.fixed]) await a?.stop();
    await this.rdv?.kill();
    this.lab.cleanup();
    fs.rmSync(this.work, { recursive: true, force: true });
  }

  /** a's view of b: "direct 1.2.3.4:5", "relay", "none". */
  async view(a: Agent, b: Agent): Promise<string> {
    try {
      const r = await a.ipc<{ peers: PeerRow[] }>('peers');
      const p = r.peers.find((x) => x.address === b.address);
      return p ? `${p.pathType}${p.endpoint ? ` ${p.endpoint}` : ''}` : 'none';
    } catch (err) {
      return `error ${(err as Error).message}`;
    }
  }

  /** Wait until both sides report direct (the fixed side at `publicIp` if given). ms waited, or Infinity. */
  async waitDirect(limitMs: number, publicIp?: string, onView?: (fixedView: string, at: number) => void): Promise<number> {
    const t0 = Date.now();
    while (Date.now() - t0 < limitMs) {
      const [f, m] = await Promise.all([this.view(this.fixed, this.mover), this.view(this.mover, this.fixed)]);
      onView?.(f, Date.now() - t0);
      if (f.startsWith('direct') && m.startsWith('direct') && (publicIp === undefined || f.startsWith(`direct ${publicIp}:`))) return Date.now() - t0;
      await new Promise((r) => setTimeout(r, 100));
    }
    return Infinity;
  }

  /** One trial: a stream between the two, the mover moves to router `to` after 1 MiB came back. */
  trial(mover: 'sender' | 'receiver', to: number): Promise<Trial> {
    return this.trialWith(mover, to, 'moved to router', () => this.host.moveTo(to, [this.peerRouter]));
  }

  /**
   * The mover stays put but its NAT gets a new public address (an ISP renumbering, a CGNAT
   * moving the mapping): no interface changes, so only a dead path can tell the mover.
   */
  snatTrial(mover: 'sender' | 'receiver'): Promise<Trial> {
    return this.trialWith(mover, this.host.at, 'stayed, its NAT renumbered: router', () => this.lab.changeSnat(this.host.router(this.host.at)));
  }

  private async trialWith(mover: 'sender' | 'receiver', to: number, what: string, move: () => string): Promise<Trial> {
    const [from, dst] = mover === 'sender' ? [this.mover, this.fixed] : [this.fixed, this.mover];
    // Each trial starts direct (the previous one's outcome does not leak into this one's count).
    await this.waitDirect(20_000);
    let moved: { at: number; ip: string } | undefined;
    let resolveMoved: () => void = () => {};
    const movedP = new Promise<void>((r) => (resolveMoved = r));
    const echo = this.echo(from, dst, MiB, () => {
      moved = { at: Date.now(), ip: move() };
      resolveMoved();
    });
    await Promise.race([movedP, echo]);
    if (!moved) {
      const e = await echo;
      return {
        mover,
        to,
        publicIp: '',
        directMs: Infinity,
        relayMs: Infinity,
        intact: false,
        bytes: e.bytes,
        kernelBytes: 0,
        via: null,
        views: '',
        detail: `the stream never reached 1 MiB: ${e.stderr}`,
      };
    }
    const m = moved as { at: number; ip: string };
    let relayMs = Infinity;
    const waited = await this.waitDirect(this.opts.directLimitMs, m.ip, (f, at) => {
      if (relayMs === Infinity && f.startsWith('relay')) relayMs = at;
    });
    const directMs = waited === Infinity ? Infinity : Date.now() - m.at;
    const e = await echo;
    const kernelBytes = this.lab.udpBytesWith(this.peerRouter, m.ip);
    // `via` comes from the daemon's copy of the route table, re-read at most once a second
    // (local-interfaces.ts): just after a move it may still name the old interface for that second.
    let via: string | null = null;
    for (const end = Date.now() + 2_500; ; await new Promise((r) => setTimeout(r, 250))) {
      const row = (await this.mover.ipc<{ peers: PeerRow[] }>('peers').catch(() => ({ peers: [] as PeerRow[] }))).peers.find(
        (x) => x.address === this.fixed.address,
      );
      via = row?.via ?? null;
      if (via === `e${to}` || Date.now() > end) break;
    }
    const views = `fix sees mv at ${await this.view(this.fixed, this.mover)}; mv sees fix at ${await this.view(this.mover, this.fixed)}`;
    const t: Trial = { mover, to, publicIp: m.ip, directMs, relayMs, intact: e.intact, bytes: e.bytes, kernelBytes, via, views };
    if (directMs === Infinity || !e.intact) {
      const tail = (a: Agent): string => `--- ${a.name} log\n${a.log().split('\n').slice(-40).join('\n')}`;
      t.detail = `${e.stderr
        .split('\n')
        .filter((l) => !l.startsWith('progress'))
        .join('\n')}\n${tail(this.mover)}\n${tail(this.fixed)}`;
    }
    this.opts.log?.(
      `# ${mover} ${what} ${to} (${m.ip}): ${directMs === Infinity ? 'NOT direct again' : `direct again after ${directMs} ms`}` +
        ` (fixed side on the relay after ${relayMs === Infinity ? '-' : `${relayMs} ms`}); stream ${e.intact ? 'intact' : `BROKEN at ${e.bytes} bytes`};` +
        ` fixed router: ${kernelBytes} UDP bytes with ${m.ip}; mover's path via ${via ?? '-'}; ${views}`,
    );
    return t;
  }

  /** `count` trials with the given mover, walking between the three routers. */
  async run(mover: 'sender' | 'receiver', count: number): Promise<Trial[]> {
    const out: Trial[] = [];
    for (let i = 0; i < count; i++) out.push(await this.trial(mover, (this.host.at + 1) % 3));
    return out;
  }

  private echo(from: Agent, to: Agent, atBytes: number, action: () => void): Promise<{ intact: boolean; bytes: number; stderr: string }> {
    const total = this.opts.streamBytes;
    return new Promise((resolve) => {
      const p = spawn('ip', ['netns', 'exec', from.netns!, process.execPath, ECHO_SCRIPT, from.socket, to.address, String(total)], {
        env: { ...process.env, ECHO_PROGRESS_BYTES: String(MiB / 4) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let acted = false;
      p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      readline.createInterface({ input: p.stderr }).on('line', (l) => {
        stderr += `${l}\n`;
        const n = Number(/^progress (\d+)/.exec(l)?.[1] ?? Number.NaN);
        if (!acted && n >= atBytes) {
          acted = true;
          action();
        }
      });
      const timer = setTimeout(() => p.kill('SIGKILL'), 120_000);
      p.on('close', () => {
        clearTimeout(timer);
        let out = { bytes: 0, sentHash: '', echoHash: 'x' };
        try {
          out = JSON.parse(stdout.trim().split('\n').pop() ?? '');
        } catch {
          /* no result line: failed */
        }
        resolve({ intact: out.bytes === total && out.sentHash === out.echoHash, bytes: out.bytes, stderr });
      });
    });
  }
}

/** p50 and max of the finite values (ms), for reports. */
export function summary(ms: number[]): { n: number; ok: number; p50: number | null; max: number | null } {
  const ok = ms.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return { n: ms.length, ok: ok.length, p50: ok.length ? ok[Math.floor((ok.length - 1) / 2)]! : null, max: ok.length ? ok[ok.length - 1]! : null };
}
