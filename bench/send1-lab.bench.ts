// Lone packets through the addon's sendOne vs dgram's send (issue 20) in the NAT lab, same run,
// same routers: two cone x cone pairs, one pair's daemons started with PILOT_UDP_SEND1=0 (lone
// packets through dgram, as before), `pilotctl bench` on each pair in turn (interleaved reps, the
// order flipped every rep). Reports MB/s, the CPU each daemon spent per MB moved, and what the
// receiving daemon sent per MB (its ACKs: lone sends, GSO sends), from its stats counters, so a
// CPU difference can be told from a difference in how many packets were sent. Then `pilotctl ping`
// (every probe and reply a lone packet) on each pair in turn: RTT and both daemons' on-CPU time
// per probe (all threads, /proc/<pid>/task/*/schedstat).
// Root only (network namespaces); prints why and exits 0 otherwise.
// Env: BENCH_SEND1_LAB_MB (default 40), BENCH_SEND1_LAB_REPS (default 6), BENCH_SEND1_LAB_PINGS (probes per
//      ping measurement, 2 ms apart, default 300; 0 skips)
import fs from 'node:fs';
import os from 'node:os';
import { Agent, tmpDir } from '../test/helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP } from '../test/helpers/natlab.ts';
import { env, fmt, pilotStream, startLabRendezvous, warm } from './natlab-kit.ts';
import { MiB } from './stats.ts';

const support = natLabSupport();
if (!support.ok) {
  console.log(`send1-lab: skipped (${support.reason})`);
  process.exit(0);
}
const MB = env('BENCH_SEND1_LAB_MB', 40);
const REPS = env('BENCH_SEND1_LAB_REPS', 6);
const PINGS = env('BENCH_SEND1_LAB_PINGS', 300);
/** On-CPU time of every thread of `pid`, in µs (schedstat: ns, unlike stat's 10 ms ticks). */
function cpuUs(pid: number): number {
  let ns = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended
    }
  }
  return ns / 1e3;
}
const lab = new NatLab();
const work = tmpDir('pilot-send1-lab-');
const agents: Agent[] = [];
const rdv = await startLabRendezvous(lab, work);
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
interface Counters {
  udpIn: number;
  udpOut: number;
  gsoSends: number;
  gsoPackets: number;
}
const counters = async (a: Agent): Promise<Counters> => (await a.ipc<{ daemon: Counters }>('stats')).daemon;
try {
  const start = async (name: string, send1: boolean): Promise<Agent> => {
    const h = lab.addSite('cone', name).hosts[0]!;
    const a = new Agent(h.name, work, h.ns);
    agents.push(a);
    const saved = process.env.PILOT_UDP_SEND1;
    process.env.PILOT_UDP_SEND1 = send1 ? '1' : '0';
    try {
      await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${name}@example.com`, '--hostname', name, '--listen', '0.0.0.0:0']);
    } finally {
      if (saved === undefined) delete process.env.PILOT_UDP_SEND1;
      else process.env.PILOT_UDP_SEND1 = saved;
    }
    return a;
  };
  const pairs = [
    { mode: 'sendOne (default)', from: await start('one1', true), to: await start('one2', true) },
    { mode: 'dgram (PILOT_UDP_SEND1=0)', from: await start('dg1', false), to: await start('dg2', false) },
  ];
  for (const p of pairs) await warm(p.from, p.to, 10);
  type Row = { mbps: number; from: number; to: number; lonePerMB: number; gsoPerMB: number; outPerIn: number };
  const results = new Map<string, Row[]>();
  const load0 = os.loadavg()[0]!;
  for (let rep = 0; rep < REPS; rep++) {
    for (const p of rep % 2 === 0 ? pairs : [...pairs].reverse()) {
      const c0 = await counters(p.to);
      const r = await pilotStream(p.from, p.to, rdv, MB * MiB);
      const c1 = await counters(p.to);
      if (r.pathFrom?.path !== undefined && !/direct/.test(JSON.stringify(r.pathFrom))) console.error(`${p.mode}: not direct: ${JSON.stringify(r.pathFrom)}`);
      const mb = r.bytes / 1e6;
      const out = c1.udpOut - c0.udpOut;
      const gsoPackets = c1.gsoPackets - c0.gsoPackets;
      const row: Row = {
        mbps: r.mbps,
        // CPU % of one core / MB/s = core-seconds per 100 MB
        from: (r.cpu.from / r.mbps) * 10,
        to: (r.cpu.to / r.mbps) * 10,
        lonePerMB: (out - gsoPackets) / mb,
        gsoPerMB: (c1.gsoSends - c0.gsoSends) / mb,
        outPerIn: out / Math.max(1, c1.udpIn - c0.udpIn),
      };
      results.set(p.mode, [...(results.get(p.mode) ?? []), row]);
      console.error(
        `rep ${rep + 1} ${p.mode}: ${fmt(r.mbps)} MB/s, CPU per MB sender ${fmt(row.from)} receiver ${fmt(row.to)} ms; receiver sent ${fmt(row.lonePerMB)} lone packets and ${fmt(row.gsoPerMB)} GSO batches per MB (${row.outPerIn.toFixed(3)} out per in)`,
      );
    }
  }
  console.log(
    `NAT lab cone x cone, \`pilotctl bench\` ${MB} MiB, ${REPS} interleaved reps, medians (load ${load0.toFixed(1)} -> ${os.loadavg()[0]!.toFixed(1)})`,
  );
  console.log(
    '| mode | MB/s | sender CPU, core-ms per MB | receiver CPU, core-ms per MB (each rep) | receiver: lone packets per MB | receiver: GSO sends per MB |',
  );
  console.log('|---|---|---|---|---|---|');
  for (const p of pairs) {
    const rs = results.get(p.mode)!;
    const m = (k: keyof Row): number => med(rs.map((r) => r[k]));
    console.log(
      `| ${p.mode} | ${fmt(m('mbps'))} | ${fmt(m('from'))} | ${fmt(m('to'))} (${rs.map((r) => fmt(r.to)).join(' / ')}) | ${fmt(m('lonePerMB'))} | ${fmt(m('gsoPerMB'))} |`,
    );
  }
  const [a, b] = pairs.map((p) => results.get(p.mode)!);
  const ratio = (k: keyof Row): string => (med(a!.map((r) => r[k])) / med(b!.map((r) => r[k]))).toFixed(2);
  console.log(`sendOne / dgram: receiver CPU per MB ${ratio('to')}x, sender CPU per MB ${ratio('from')}x, MB/s ${ratio('mbps')}x`);
  if (PINGS > 0) {
    const pings = new Map<string, Array<{ avg: number; cpu: number }>>();
    for (let rep = 0; rep < REPS; rep++) {
      for (const p of rep % 2 === 0 ? pairs : [...pairs].reverse()) {
        const c0 = cpuUs(p.from.pid) + cpuUs(p.to.pid);
        const r = await p.from.ctl(['ping', p.to.address, '--count', String(PINGS), '--interval', '2ms', '--timeout', '3s'], 120_000);
        const c1 = cpuUs(p.from.pid) + cpuUs(p.to.pid);
        if (r.code !== 0) throw new Error(`ping failed: ${r.stderr}`);
        const row = { avg: r.json.data.avgMs as number, cpu: (c1 - c0) / PINGS };
        pings.set(p.mode, [...(pings.get(p.mode) ?? []), row]);
        console.error(`ping rep ${rep + 1} ${p.mode}: avg ${row.avg.toFixed(3)} ms, ${row.cpu.toFixed(0)} µs CPU per probe (both daemons)`);
      }
    }
    console.log(`\n\`pilotctl ping --count ${PINGS} --interval 2ms\`, ${REPS} interleaved reps, medians (load ${os.loadavg()[0]!.toFixed(1)})`);
    console.log('| mode | RTT avg, ms (each rep) | both daemons on-CPU µs per probe (each rep) |');
    console.log('|---|---|---|');
    for (const p of pairs) {
      const rs = pings.get(p.mode)!;
      console.log(
        `| ${p.mode} | ${med(rs.map((r) => r.avg)).toFixed(3)} (${rs.map((r) => r.avg.toFixed(3)).join(' / ')}) | ${med(rs.map((r) => r.cpu)).toFixed(0)} (${rs.map((r) => r.cpu.toFixed(0)).join(' / ')}) |`,
      );
    }
    const [pa, pb] = pairs.map((p) => pings.get(p.mode)!);
    console.log(
      `sendOne / dgram: RTT ${(med(pa!.map((r) => r.avg)) / med(pb!.map((r) => r.avg))).toFixed(2)}x, CPU per probe ${(med(pa!.map((r) => r.cpu)) / med(pb!.map((r) => r.cpu))).toFixed(2)}x`,
    );
  }
} finally {
  await Promise.all(agents.map((a) => a.stop()));
  await rdv.kill();
  lab.cleanup();
}
