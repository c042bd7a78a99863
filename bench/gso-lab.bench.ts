// UDP GSO on vs off in the NAT lab (issue 20), same run, same routers: two cone x cone pairs,
// one pair's daemons started with PILOT_GSO=0, `pilotctl bench` on each pair in turn
// (interleaved reps). Reports MB/s, the CPU each daemon spent per MB moved, the sender's
// smoothed RTT while the transfer runs, and the daemons' GSO counters (packets per sendmsg).
// Root only (network namespaces); prints why and exits 0 otherwise.
// Env: BENCH_GSO_LAB_MB (default 40), BENCH_GSO_LAB_REPS (default 5)
import { Agent, tmpDir } from '../test/helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP } from '../test/helpers/natlab.ts';
import { env, fmt, pilotStream, startLabRendezvous, warm } from './natlab-kit.ts';
import { MiB } from './stats.ts';

const support = natLabSupport();
if (!support.ok) {
  console.log(`gso-lab: skipped (${support.reason})`);
  process.exit(0);
}
const MB = env('BENCH_GSO_LAB_MB', 40);
const REPS = env('BENCH_GSO_LAB_REPS', 5);
const lab = new NatLab();
const work = tmpDir('pilot-gso-lab-');
const agents: Agent[] = [];
const rdv = await startLabRendezvous(lab, work);
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
try {
  const start = async (name: string, gso: boolean): Promise<Agent> => {
    const h = lab.addSite('cone', name).hosts[0]!;
    const a = new Agent(h.name, work, h.ns);
    agents.push(a);
    const saved = process.env.PILOT_GSO;
    process.env.PILOT_GSO = gso ? '1' : '0';
    try {
      await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${name}@example.com`, '--hostname', name, '--listen', '0.0.0.0:0']);
    } finally {
      if (saved === undefined) delete process.env.PILOT_GSO;
      else process.env.PILOT_GSO = saved;
    }
    return a;
  };
  const pairs = [
    { mode: 'GSO on', from: await start('on1', true), to: await start('on2', true) },
    { mode: 'GSO off (PILOT_GSO=0)', from: await start('off1', false), to: await start('off2', false) },
  ];
  for (const p of pairs) await warm(p.from, p.to, 10);
  const results = new Map<string, Array<{ mbps: number; from: number; to: number; srtt: number }>>();
  for (let rep = 0; rep < REPS; rep++) {
    for (const p of rep % 2 === 0 ? pairs : [...pairs].reverse()) {
      // the sender's smoothed RTT to the peer while the transfer runs (idle it is well under 1 ms here)
      const rtts: number[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          await new Promise((res) => setTimeout(res, 150));
          const v = await p.from.ipc<{ peers: Array<{ address: string; rttMs: number }> }>('peers').catch(() => undefined);
          const row = v?.peers.find((x) => x.address === p.to.address);
          if (row && sampling) rtts.push(row.rttMs);
        }
      })();
      const r = await pilotStream(p.from, p.to, rdv, MB * MiB);
      sampling = false;
      await sampler;
      if (r.pathFrom?.path !== undefined && !/direct/.test(JSON.stringify(r.pathFrom))) console.error(`${p.mode}: not direct: ${JSON.stringify(r.pathFrom)}`);
      // CPU % of one core / MB/s = core-seconds per 100 MB
      const srtt = rtts.length ? med(rtts) : Number.NaN;
      results.set(p.mode, [...(results.get(p.mode) ?? []), { mbps: r.mbps, from: (r.cpu.from / r.mbps) * 10, to: (r.cpu.to / r.mbps) * 10, srtt }]);
      console.error(`rep ${rep + 1} ${p.mode}: ${fmt(r.mbps)} MB/s, sender ${r.cpu.from}% receiver ${r.cpu.to}% of a core, srtt ${fmt(srtt)} ms`);
    }
  }
  const counters = await Promise.all(pairs.map((p) => p.from.ipc<{ daemon: { gsoSends: number; gsoPackets: number; udpOut: number } }>('stats')));
  console.log(`NAT lab cone x cone, \`pilotctl bench\` ${MB} MiB, ${REPS} interleaved reps, medians`);
  console.log(
    '| mode | MB/s | sender CPU, core-ms per MB | receiver CPU, core-ms per MB | srtt during the transfer, ms | sender packets per sendmsg (all its sends) |',
  );
  console.log('|---|---|---|---|---|---|');
  pairs.forEach((p, i) => {
    const rs = results.get(p.mode)!;
    const c = counters[i]!.daemon;
    const perCall = c.udpOut / (c.udpOut - c.gsoPackets + c.gsoSends);
    console.log(
      `| ${p.mode} | ${fmt(med(rs.map((r) => r.mbps)))} | ${fmt(med(rs.map((r) => r.from)))} | ${fmt(med(rs.map((r) => r.to)))} | ${fmt(med(rs.map((r) => r.srtt)))} | ${perCall.toFixed(1)} (${c.gsoPackets} of ${c.udpOut} in ${c.gsoSends} GSO sends) |`,
    );
  });
} finally {
  await Promise.all(agents.map((a) => a.stop()));
  await rdv.kill();
  lab.cleanup();
}
