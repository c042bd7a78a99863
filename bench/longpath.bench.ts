// `npm run bench:longpath` (issue 20): one stream over an emulated long, lossy,
// bandwidth-limited path (test/helpers/longpath.ts: A <-> router <-> B, tbf
// BENCH_RATE_MBIT (8) each way with a one-BDP queue, a userspace delay line of
// BENCH_RTT_MS (100) round trip, iptables -m statistic loss each way at
// BENCH_LOSSES (0,1,3) %). Per loss and rep, interleaved: Pilot daemons
// (`pilotctl bench`, encrypted, `--cc` per BENCH_CC, default bbr,cubic) and
// kernel TCP between the same namespaces (iperf3 -C per BENCH_TCP_CC, default
// bbr,cubic). Prints medians and Pilot / kernel-TCP ratios as Markdown.
// Needs root, ip, iptables, tc, iperf3, python3 and /dev/net/tun.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { Agent, startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { LONGPATH_IP_A, LONGPATH_IP_B, LongPath } from '../test/helpers/longpath.ts';
import { Lab, netnsSupport } from '../test/helpers/netns.ts';

const LOSSES = (process.env.BENCH_LOSSES ?? '0,1,3').split(',').map(Number);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const SIZE_MB = Number(process.env.BENCH_LONGPATH_MB ?? 4);
const RTT_MS = Number(process.env.BENCH_RTT_MS ?? 100);
const RATE_MBIT = Number(process.env.BENCH_RATE_MBIT ?? 8);
const CCS = (process.env.BENCH_CC ?? 'bbr,cubic').split(',').filter(Boolean) as ('bbr' | 'cubic' | 'newreno')[];
const TCP_CCS = (process.env.BENCH_TCP_CC ?? 'bbr,cubic').split(',').filter(Boolean);
const IPERF_PORT = 5201;
const REGISTRY_PORT = 9000;

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** One retry, said on stderr: on this shared box a registry lookup or iperf3's control connection sometimes fails outside the measured transfer. */
async function retried<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    console.error(`${what} failed, once more: ${(e as Error).message}`);
    return await fn();
  }
}

async function pilotBench(from: Agent, to: Agent): Promise<number> {
  const r = await from.ctl(['bench', to.address, String(SIZE_MB)], 900_000);
  if (r.code !== 0) throw new Error(`pilotctl bench failed: ${r.stderr}`);
  return r.json.data.mbPerSec as number;
}

/** Kernel TCP b -> a; returns MB/s (10^6 bytes, as pilotctl bench) and the sender's mean RTT. */
function iperfBench(nsB: string, cc: string): { mbPerSec: number; rttMs: number } {
  const r = spawnSync('ip', ['netns', 'exec', nsB, 'iperf3', '-c', LONGPATH_IP_A, '-p', String(IPERF_PORT), '-n', `${SIZE_MB}M`, '-C', cc, '--json'], {
    encoding: 'utf8',
    timeout: 900_000,
  });
  const out = JSON.parse(r.stdout) as {
    error?: string;
    end?: { sum_received?: { bytes: number; seconds: number }; streams?: { sender?: { mean_rtt?: number } }[] };
  };
  const rx = out.end?.sum_received;
  if (r.status !== 0 || rx === undefined) throw new Error(`iperf3 -C ${cc} failed: ${out.error ?? r.stderr}`);
  return { mbPerSec: rx.bytes / 1e6 / rx.seconds, rttMs: (out.end?.streams?.[0]?.sender?.mean_rtt ?? 0) / 1000 };
}

async function main(): Promise<void> {
  const support = netnsSupport();
  if (!support.ok) throw new Error(`bench:longpath needs network namespaces: ${support.reason}`);
  for (const bin of ['tc', 'iperf3', 'python3'])
    if (spawnSync('which', [bin]).status !== 0) throw new Error(`bench:longpath needs ${bin} (apt-get install iproute2 iperf3 python3)`);
  const lab = new Lab();
  const work = tmpDir('pilot-bench-longpath-');
  const agents: Agent[] = [];
  let iperf: ChildProcess | undefined;
  let path: LongPath | undefined;
  try {
    path = await LongPath.create(lab, { delayMs: RTT_MS / 2, rateMbit: RATE_MBIT });
    const { a: nsA, b: nsB } = path;
    const rdv = await startRendezvous({ netns: nsA, listen: `${LONGPATH_IP_A}:${REGISTRY_PORT}` });
    const pairs = Object.fromEntries(CCS.map((cc) => [cc, [new Agent(`a-${cc}`, work, nsA), new Agent(`b-${cc}`, work, nsB)] as const]));
    for (const [cc, [a, b]] of Object.entries(pairs)) {
      agents.push(a, b);
      await a.start([
        '--registry',
        `${LONGPATH_IP_A}:${REGISTRY_PORT}`,
        '--email',
        `a-${cc}@example.com`,
        '--hostname',
        `a-${cc}`,
        '--listen',
        `${LONGPATH_IP_A}:0`,
        '--cc',
        cc,
      ]);
      await b.start([
        '--registry',
        `${LONGPATH_IP_A}:${REGISTRY_PORT}`,
        '--email',
        `b-${cc}@example.com`,
        '--hostname',
        `b-${cc}`,
        '--listen',
        `${LONGPATH_IP_B}:0`,
        '--cc',
        cc,
      ]);
      await b.ctl(['handshake', a.address]);
      await a.ctl(['approve', b.address]);
      await b.ctl(['ping', a.address, '--count', '2', '--interval', '10ms']);
    }
    iperf = spawn('ip', ['netns', 'exec', nsA, 'iperf3', '-s', '-B', LONGPATH_IP_A, '-p', String(IPERF_PORT)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));

    const cols = [...CCS.map((cc) => `Pilot ${cc}`), ...TCP_CCS.map((cc) => `TCP ${cc}`)];
    const rows: string[] = [];
    const rtts: number[] = [];
    for (const loss of LOSSES) {
      path.setLoss(loss, [REGISTRY_PORT]);
      const dropped0 = path.dropped();
      const runs: number[][] = cols.map(() => []);
      for (let rep = 0; rep < REPS; rep++) {
        let i = 0;
        for (const cc of CCS) runs[i++]!.push(await retried(`Pilot ${cc}`, () => pilotBench(pairs[cc]![1], pairs[cc]![0])));
        for (const cc of TCP_CCS) {
          const t = await retried(`iperf3 -C ${cc}`, () => iperfBench(nsB, cc));
          runs[i++]!.push(t.mbPerSec);
          rtts.push(t.rttMs);
        }
        console.error(`loss ${loss}% rep ${rep + 1}: ${cols.map((c, j) => `${c} ${runs[j]!.at(-1)!.toFixed(3)}`).join(', ')}`);
      }
      const med = runs.map(median);
      const ratios: string[] = [];
      for (const [pi, pcc] of CCS.entries())
        for (const [ti, tcc] of TCP_CCS.entries()) if (pcc === 'bbr') ratios.push(`${(med[pi]! / med[CCS.length + ti]!).toFixed(2)}x ${tcc}`);
      rows.push(
        `| ${loss}% | ${med.map((m, j) => `**${m.toFixed(3)}** (${runs[j]!.map((x) => x.toFixed(2)).join(', ')})`).join(' | ')} | ${ratios.join(', ')} | ${path.dropped() - dropped0} |`,
      );
    }
    const line = await path.lineStats();
    await rdv.kill();
    const kernelCc = fs.readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim();
    console.log(
      `\nOne stream B -> A over ${RATE_MBIT} Mbit/s, ${RTT_MS} ms RTT (kernel TCP mean RTT seen ${median(rtts).toFixed(0)} ms), ` +
        `X% loss each way; ${SIZE_MB} MiB per run, MB/s, median (reps, interleaved), ${REPS} reps; host default CC ${kernelCc}; load ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}.\n`,
    );
    console.log(
      `Delay line: ${line.packets} packets carried, ${line.dropped} dropped, left late by up to ${line.lateMaxMs.toFixed(1)} ms (${line.lateOver1ms} over 1 ms).\n`,
    );
    const head = ['loss', ...cols, 'Pilot bbr / TCP', 'drops'];
    console.log([`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows].join('\n'));
  } finally {
    iperf?.kill();
    for (const a of agents) await a.stop();
    path?.close();
    lab.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
