// This tree against another checkout (the base commit) in the same NAT lab under random loss
// (issue 20): two cone x cone pairs side by side, one pair's daemons run from this tree, the
// other's from BENCH_LOSSY_AB_BASE (e.g. `git archive <commit> | tar -x -C dir`, with node_modules
// and build/ linked or copied in). Each pair sends iperf3 through `pilotctl expose` + `pilotctl
// gateway` (the bench:peers gateway row) and `pilotctl bench`; the pairs take turns (interleaved
// reps) at each loss rate, so the box's load hits both alike. Reports medians, the ratio, both
// daemons' CPU per MB, and the senders' loss-recovery counters.
// Root only (network namespaces); prints why and exits 0 otherwise.
// Env: BENCH_LOSSY_AB_BASE  the other checkout (required)
//      BENCH_LOSSY_AB_LOSS  loss percentages, default 0,1,5 (dropped at the sending site's router, both directions)
//      BENCH_LOSSY_AB_REPS  default 5;  BENCH_LOSSY_AB_SECS  iperf3 seconds, default 3
//      BENCH_LOSSY_AB_MB    `pilotctl bench` MiB, default 15 (0: skip)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, tmpDir } from '../test/helpers/cluster.ts';
import { type Host, NatLab, natLabSupport, RENDEZVOUS_IP } from '../test/helpers/natlab.ts';
import { env, fmt, lastRouter, must, pilotStream, RootAgent, startLabRendezvous, warm } from './natlab-kit.ts';
import { MiB } from './stats.ts';

const support = natLabSupport();
const BASE = process.env.BENCH_LOSSY_AB_BASE ? path.resolve(process.env.BENCH_LOSSY_AB_BASE) : '';
if (!support.ok || !BASE || spawnSync('which', ['iperf3']).status !== 0) {
  console.log(`lossy-ab: skipped (${!support.ok ? support.reason : !BASE ? 'set BENCH_LOSSY_AB_BASE to the other checkout' : 'needs iperf3'})`);
  process.exit(0);
}
const LOSSES = (process.env.BENCH_LOSSY_AB_LOSS ?? '0,1,5').split(',').map(Number);
const REPS = env('BENCH_LOSSY_AB_REPS', 5);
const SECS = env('BENCH_LOSSY_AB_SECS', 3);
const MB = env('BENCH_LOSSY_AB_MB', 15);
const IPERF_PORT = 5201;

const cpuSeconds = (pid: number): number => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

const lab = new NatLab();
const work = tmpDir('pilot-lossy-ab-');
const agents: Agent[] = [];
const rdv = await startLabRendezvous(lab, work);
try {
  const start = async (name: string, root: string): Promise<[Agent, Host]> => {
    const h = lab.addSite('cone', name).hosts[0]!;
    const a = root === '' ? new Agent(h.name, work, h.ns) : new RootAgent(h.name, work, h.ns, root);
    agents.push(a);
    await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${name}@example.com`, '--hostname', name, '--listen', '0.0.0.0:0']);
    return [a, h];
  };
  const pairs = [];
  for (const [mode, root] of [
    ['this tree', ''],
    ['base', BASE],
  ] as const) {
    const [from, fh] = await start(`${mode === 'base' ? 'b' : 't'}1`, root);
    const [to, th] = await start(`${mode === 'base' ? 'b' : 't'}2`, root);
    await warm(from, to, 10);
    lab.spawn(th.ns, ['iperf3', '-s', '-p', String(IPERF_PORT)]);
    must(await to.ctl(['expose', String(IPERF_PORT), `127.0.0.1:${IPERF_PORT}`]), 'expose iperf3');
    const gw = must(
      await from.ctl(['gateway', 'start', '--subnet', mode === 'base' ? '10.231.0.0/24' : '10.232.0.0/24', '--ports', String(IPERF_PORT), to.address]),
      'gateway start',
    );
    const ip = (gw.json.data.mappings as { ip: string }[])[0]!.ip;
    pairs.push({ mode, from, to, fh, ip });
    console.error(`${mode}: sender ${from.name} pid ${from.pid}, receiver ${to.name} pid ${to.pid}`);
  }
  await new Promise((r) => setTimeout(r, 500));
  type Row = { mbps: number; cpuPerMB: number };
  const rows = new Map<string, Row[]>();
  const add = (k: string, r: Row): void => void rows.set(k, [...(rows.get(k) ?? []), r]);
  for (const loss of LOSSES) {
    for (const p of pairs) lab.setLoss(lastRouter(p.fh), loss / 100);
    for (let rep = 0; rep < REPS; rep++) {
      for (const p of rep % 2 === 0 ? pairs : [...pairs].reverse()) {
        const pids = [p.from.pid, p.to.pid];
        const c0 = pids.map(cpuSeconds);
        let r = spawnSync('true', { encoding: 'utf8' });
        let j: { end?: { sum_received?: { bytes: number; seconds: number } }; error?: string } = {};
        // the server may still be closing the last test (it serves one at a time): retry a few times
        for (let attempt = 0; attempt < 5; attempt++) {
          const argv = ['netns', 'exec', p.fh.ns, 'iperf3', '-c', p.ip, '-p', String(IPERF_PORT), '-t', String(SECS), '--json'];
          r = spawnSync('ip', argv, { encoding: 'utf8', timeout: (SECS + 30) * 1000 });
          j = JSON.parse(String(r.stdout) || '{}') as typeof j;
          if (!/busy/.test(j.error ?? '')) break;
          await new Promise((res) => setTimeout(res, 1000));
        }
        if (!j.end?.sum_received) throw new Error(`iperf3 ${p.mode}: ${j.error ?? r.stderr}`);
        const mb = j.end.sum_received.bytes / 1e6;
        const gwRow = { mbps: mb / j.end.sum_received.seconds, cpuPerMB: (pids.map(cpuSeconds).reduce((a, x, i) => a + x - c0[i]!, 0) * 1000) / mb };
        add(`${loss}|gateway|${p.mode}`, gwRow);
        let line = `loss ${loss}% rep ${rep + 1} ${p.mode}: gateway ${fmt(gwRow.mbps)} MB/s (${fmt(gwRow.cpuPerMB)} ms/MB)`;
        if (MB > 0) {
          const s = await pilotStream(p.from, p.to, rdv, MB * MiB);
          const cpu = ((s.cpu.from + s.cpu.to) / 100) * s.seconds * 1000;
          add(`${loss}|bench|${p.mode}`, { mbps: s.mbps, cpuPerMB: cpu / (s.bytes / 1e6) });
          line += `, bench ${fmt(s.mbps)} MB/s`;
        }
        console.error(line);
      }
    }
    for (const p of pairs) lab.setLoss(lastRouter(p.fh), 0);
  }
  console.log(
    `NAT lab cone x cone, this tree vs ${BASE}; ${REPS} interleaved reps, medians; iperf3 ${SECS} s through the gateway; pilotctl bench ${MB} MiB; load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  );
  console.log('| loss | what | this tree MB/s | base MB/s | ratio | CPU per MB (both daemons), this / base, ms |');
  console.log('|---|---|---|---|---|---|');
  for (const loss of LOSSES)
    for (const what of MB > 0 ? ['gateway', 'bench'] : ['gateway']) {
      const t = rows.get(`${loss}|${what}|this tree`) ?? [];
      const b = rows.get(`${loss}|${what}|base`) ?? [];
      if (!t.length || !b.length) continue;
      const tm = med(t.map((x) => x.mbps));
      const bm = med(b.map((x) => x.mbps));
      console.log(
        `| ${loss}% | ${what} | ${fmt(tm)} | ${fmt(bm)} | ${(tm / bm).toFixed(2)}x | ${fmt(med(t.map((x) => x.cpuPerMB)))} / ${fmt(med(b.map((x) => x.cpuPerMB)))} |`,
      );
    }
} finally {
  await Promise.all(agents.map((a) => a.stop()));
  await rdv.kill();
  lab.cleanup();
}
