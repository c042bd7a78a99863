// Path MTU discovery's effect on a direct path between two NATed agents (cone x
// cone in the NAT lab): `pilotctl bench` with this checkout against the same with
// another checkout (BENCH_PMTU_BASE, e.g. a worktree of the commit before path MTU
// discovery), both pairs in the same two namespaces behind the same routers,
// reps interleaved, and iperf3 (kernel TCP, through a port forward on the far
// router) in the same run as the reference. Also prints each pair's path MTU
// (`peers`: mtu, mtuState).
// Needs root and iperf3; prints why and exits 0 otherwise.
//
// Env: BENCH_PMTU_BASE  checkout to compare against (required; `git worktree add --detach DIR e60f762`)
//      BENCH_PMTU_MB    bytes per transfer in MiB (default 32)
//      BENCH_PMTU_REPS  interleaved reps (default 5)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, run, startRendezvous, tmpDir, type CtlResult } from '../test/helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP } from '../test/helpers/natlab.ts';
import { trustPair } from '../test/nat/matrix.ts';
import { machine } from './stats.ts';

const BASE = process.env.BENCH_PMTU_BASE;
const MB = Number(process.env.BENCH_PMTU_MB ?? 32);
const REPS = Number(process.env.BENCH_PMTU_REPS ?? 5);
const IPERF_PORT = 5201;

/** An agent driven by another checkout's pilotctl (and so its daemon). */
class CheckoutAgent extends Agent {
  private readonly root: string;
  constructor(name: string, work: string, netns: string, root: string) {
    super(name, work, netns);
    this.root = root;
  }
  override ctl(args: string[], timeoutMs?: number): Promise<CtlResult> {
    return run(
      ['ip', 'netns', 'exec', this.netns!, process.execPath, path.join(this.root, 'src/cli/pilotctl.ts'), '--json', ...args],
      { PILOT_HOME: this.home, PILOT_SOCKET: this.socket },
      timeoutMs,
    );
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const support = natLabSupport();
  if (!support.ok) return console.log(`skipped: ${support.reason}`);
  if (spawnSync('which', ['iperf3']).status !== 0) return console.log('skipped: needs iperf3 (apt-get install iperf3)');
  if (!BASE || !fs.existsSync(path.join(BASE, 'src/cli/pilotctl.ts'))) return console.log('skipped: set BENCH_PMTU_BASE to a checkout to compare against');
  const lab = new NatLab();
  const work = tmpDir('pilot-bench-pmtu-');
  const agents: Agent[] = [];
  try {
    const s1 = lab.addSite('cone', 'c1');
    const s2 = lab.addSite('cone', 'c2');
    const [h1, h2] = [s1.hosts[0]!, s2.hosts[0]!];
    const r2 = s2.routers[0]!;
    const rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rdv') });
    const pairs: Record<'new' | 'base', [Agent, Agent]> = {
      new: [new Agent('n1', work, h1.ns), new Agent('n2', work, h2.ns)],
      base: [new CheckoutAgent('b1', work, h1.ns, BASE), new CheckoutAgent('b2', work, h2.ns, BASE)],
    };
    for (const [a, b] of Object.values(pairs)) {
      for (const x of [a, b]) {
        await x.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${x.name}@example.com`, '--hostname', x.name, '--listen', '0.0.0.0:0']);
        agents.push(x);
      }
      await trustPair(a, b);
      // warm up: the path goes direct, and (new code) the path MTU search runs on this traffic
      const w = await b.ctl(['bench', a.address, '8'], 60_000);
      if (w.code !== 0) throw new Error(`warm-up bench: ${w.stderr}`);
    }
    // kernel TCP reference: iperf3 from site 1 to site 2 through a port forward on site 2's router
    lab.sh(r2.ns, `iptables -t nat -A PREROUTING -i ${r2.wan} -p tcp --dport ${IPERF_PORT} -j DNAT --to-destination ${h2.ip}:${IPERF_PORT}`);
    lab.sh(r2.ns, `iptables -I FORWARD 1 -i ${r2.wan} -p tcp -d ${h2.ip} --dport ${IPERF_PORT} -j ACCEPT`);
    const server = lab.spawn(h2.ns, ['iperf3', '-s', '-p', String(IPERF_PORT)]);
    await new Promise((r) => setTimeout(r, 500));

    const rates: Record<string, number[]> = { new: [], base: [], tcp: [] };
    const order: string[][] = [
      ['new', 'base', 'tcp'],
      ['base', 'tcp', 'new'],
      ['tcp', 'new', 'base'],
    ];
    for (let rep = 0; rep < REPS; rep++) {
      for (const what of order[rep % order.length]!) {
        if (what === 'tcp') {
          const r = lab.exec(h1.ns, ['iperf3', '-c', r2.wanIp, '-p', String(IPERF_PORT), '-n', `${MB}M`, '-J']);
          const j = JSON.parse(r) as { end: { sum_received: { bits_per_second: number } } };
          rates.tcp!.push(j.end.sum_received.bits_per_second / 8 / 1e6);
          continue;
        }
        const [a, b] = pairs[what as 'new' | 'base'];
        let r = await b.ctl(['bench', a.address, String(MB)], 120_000);
        if (r.code !== 0) {
          // the shared box stalls sometimes (a registry lookup timing out at load 12+): one retry, said out loud
          console.log(`# ${what} rep ${rep}: ${r.json?.code ?? r.code}, retried`);
          await new Promise((res) => setTimeout(res, 1000));
          r = await b.ctl(['bench', a.address, String(MB)], 120_000);
        }
        if (r.code !== 0) throw new Error(`${what} bench: ${r.stderr}`);
        rates[what]!.push(r.json.data.mbPerSec as number);
      }
    }
    server.kill();
    const peerRow = async (from: Agent, to: Agent): Promise<Record<string, unknown> | undefined> =>
      ((await from.ipc<{ peers: Record<string, unknown>[] }>('peers')).peers ?? []).find((p) => p.address === to.address);
    const rowNew = await peerRow(pairs.new[1], pairs.new[0]);
    const rowBase = await peerRow(pairs.base[1], pairs.base[0]);
    const [mNew, mBase, mTcp] = [median(rates.new!), median(rates.base!), median(rates.tcp!)];
    const f = (xs: number[]): string => xs.map((x) => x.toFixed(1)).join(' / ');
    console.log(
      `# path MTU: cone x cone direct, ${MB} MiB x ${REPS} interleaved, ${machine()}, load ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    );
    console.log(`new:  path ${rowNew?.path}, mtu ${rowNew?.mtu} (${rowNew?.mtuState})`);
    console.log(`base: path ${rowBase?.path} (packets 1253 bytes on the wire)`);
    console.log('| what | MB/s (reps) | median | vs kernel TCP |');
    console.log('|---|---|---|---|');
    console.log(`| Pilot, path MTU discovery (this checkout) | ${f(rates.new!)} | ${mNew.toFixed(1)} | ${(mNew / mTcp).toFixed(2)}x |`);
    console.log(`| Pilot, fixed 1253-byte packets (${path.basename(BASE)}) | ${f(rates.base!)} | ${mBase.toFixed(1)} | ${(mBase / mTcp).toFixed(2)}x |`);
    console.log(`| kernel TCP (iperf3) | ${f(rates.tcp!)} | ${mTcp.toFixed(1)} | 1.00x |`);
    console.log(`new / base: ${(mNew / mBase).toFixed(2)}x`);
    await rdv.kill();
  } finally {
    for (const x of agents) await x.stop().catch(() => {});
    lab.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
