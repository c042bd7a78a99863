// Loopback single stream with a data-path switch on and off (issue 20: no regression allowed),
// the first row of `npm run bench` (two daemons on 127.0.0.1, `pilotctl bench`) with its same-run
// raw TCP loopback reference and both daemons' CPU per MiB, a fresh rendezvous and pair per run,
// modes alternating.
// Env: BENCH_GSO_LOOP_MB (default 200), BENCH_GSO_LOOP_REPS (default 3),
//      BENCH_GSO_LOOP_SWITCH the variable set to 1 / 0 (default PILOT_GSO; PILOT_NATIVE_AEAD,
//      PILOT_RECVMMSG... compare the other switches)
import fs from 'node:fs';
import { Agent, startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { cpuSeconds } from './stats.ts';
import { tcpLoopbackSeconds } from './tcp-loopback.ts';

const MB = 1024 * 1024;
const N = Number(process.env.BENCH_GSO_LOOP_MB ?? 200);
const REPS = Number(process.env.BENCH_GSO_LOOP_REPS ?? 3);
const SWITCH = process.env.BENCH_GSO_LOOP_SWITCH ?? 'PILOT_GSO';

async function tcpLoopback(bytes: number): Promise<number> {
  return bytes / MB / (await tcpLoopbackSeconds(bytes));
}

const rows = new Map<string, Array<{ pilot: number; tcp: number; cpu: number }>>();
for (let rep = 0; rep < REPS; rep++) {
  for (const gso of rep % 2 === 0 ? ['1', '0'] : ['0', '1']) {
    const saved = process.env[SWITCH];
    process.env[SWITCH] = gso;
    const work = tmpDir('pilot-gso-loop-');
    const rdv = await startRendezvous();
    const a = new Agent('alpha', work);
    const b = new Agent('beta', work);
    try {
      await a.start(['--registry', rdv.addr, '--email', 'a@example.com', '--hostname', 'bench-alpha', '--listen', '127.0.0.1:0']);
      await b.start(['--registry', rdv.addr, '--email', 'b@example.com', '--hostname', 'bench-beta', '--listen', '127.0.0.1:0']);
      await b.ctl(['handshake', a.address]);
      await a.ctl(['approve', b.address]);
      await b.ctl(['ping', 'bench-alpha', '--count', '2', '--interval', '10ms']);
      const tcp = await tcpLoopback(N * MB);
      const cpu0 = cpuSeconds(a.pid) + cpuSeconds(b.pid);
      const bench = await b.ctl(['bench', 'bench-alpha', String(N)], 600_000);
      if (bench.code !== 0) throw new Error(`pilotctl bench failed: ${bench.stderr}`);
      const cpu = ((cpuSeconds(a.pid) + cpuSeconds(b.pid) - cpu0) * 1000) / N;
      const pilot = bench.json.data.mbPerSec as number;
      const mode = gso === '1' ? `${SWITCH} on` : `${SWITCH}=0`;
      rows.set(mode, [...(rows.get(mode) ?? []), { pilot, tcp, cpu }]);
      console.error(`rep ${rep + 1} ${mode}: pilot ${pilot.toFixed(1)} MB/s, ${cpu.toFixed(2)} ms CPU/MiB, raw TCP ${tcp.toFixed(1)} MB/s`);
    } finally {
      await a.stop();
      await b.stop();
      await rdv.kill();
      fs.rmSync(work, { recursive: true, force: true });
      if (saved === undefined) delete process.env[SWITCH];
      else process.env[SWITCH] = saved;
    }
  }
}
const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)]!;
console.log(`loopback single stream, ${N} MiB, ${REPS} alternating reps, medians (MiB/s, as \`npm run bench\`)`);
console.log('| mode | Pilot | raw TCP loopback, same runs | Pilot / raw TCP (median of per-run ratios) | both daemons, ms CPU per MiB |');
console.log('|---|---|---|---|---|');
for (const [mode, rs] of rows)
  console.log(
    `| ${mode} | ${med(rs.map((r) => r.pilot)).toFixed(1)} | ${med(rs.map((r) => r.tcp)).toFixed(1)} | ${(med(rs.map((r) => r.pilot / r.tcp)) * 100).toFixed(1)}% | ${med(rs.map((r) => r.cpu)).toFixed(2)} |`,
  );
