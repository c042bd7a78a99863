// CPU per packet at both ends of a transfer (issue 20): on this 2-core box both daemons, the
// routers and the rendezvous share the cores, so what one packet costs each process is what
// limits the NAT-lab throughput. Two daemons on loopback, `pilotctl bench` from beta into
// alpha's sink; per rep: MB/s, each daemon's CPU (utime + stime from /proc: its user and
// kernel work) per datagram, and the receiver's datagrams sent per datagram received (its
// ACKs: each one costs the sender a receive, a decrypt and a parse). Same-run reference: a
// bare node:dgram receiver (a 'message' listener that only counts) fed datagrams of the same
// size, i.e. what Node and the kernel cost per datagram before any Pilot code runs.
//
// Loopback's MTU is 64 KiB, where Pilot sends on-link-sized packets; for packets the size of a
// remote path's run it in a namespace whose lo has a 1280-byte MTU (as the numbers in
// BENCHMARKS.md were taken):
//   ip netns add rxlo && ip netns exec rxlo ip link set lo mtu 1280 up
//   ip netns exec rxlo node bench/rx-cpu.bench.ts; ip netns del rxlo
// Same-run A/B of the batched receive (src/util/udp-receiver.ts): one receiving daemon per mode,
// fed in turn by the same sender, reps interleaved (order flipped every rep): gro (the recvmmsg
// reader with UDP_GRO, the default), batched (the reader, PILOT_UDP_GRO=0), dgram (PILOT_RECVMMSG=0:
// one 'message' per datagram); the bare reference with the reader or with dgram. Mode dgramsend: the
// default reader, but the receiver's lone sends (its ACKs) through dgram's send (PILOT_UDP_SEND1=0)
// instead of the addon's sendOne (src/util/udp-batcher.ts): BENCH_RX_MODES=gro,dgramsend.
// Env: BENCH_RX_MODES (default "gro,batched,dgram"), BENCH_RX_MB (per rep, default 100), BENCH_RX_REPS (default 3),
//      BENCH_RX_PERF=file: `perf record -g` the receiving daemon during the first rep
//      (run with NODE_OPTIONS=--perf-basic-prof to name the JavaScript frames).
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Agent, startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { cpuSeconds } from './stats.ts';
import { UdpBatchReceiver } from '../src/util/udp-receiver.ts';

const MB = Number(process.env.BENCH_RX_MB ?? 100);
const REPS = Number(process.env.BENCH_RX_REPS ?? 3);
interface Counters {
  udpIn: number;
  udpOut: number;
  rxBatches: number;
  rxBatchPackets: number;
}

async function counters(a: Agent): Promise<Counters> {
  const s = await a.ipc<{ daemon: Counters }>('stats');
  return { udpIn: s.daemon.udpIn, udpOut: s.daemon.udpOut, rxBatches: s.daemon.rxBatches ?? 0, rxBatchPackets: s.daemon.rxBatchPackets ?? 0 };
}

const median = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;

/** Child role: a bare dgram receiver that counts (batched with --batched); prints its port, then the count on SIGTERM. */
function bareReceiver(batched: boolean): void {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  let n = 0;
  s.on('message', () => {
    n++;
  });
  s.bind(0, '127.0.0.1', () => {
    if (batched && !UdpBatchReceiver.start(s, () => n++, { log: console })) throw new Error('the batched reader did not start (addon not built?)');
    process.stdout.write(`port ${s.address().port}\n`);
  });
  process.on('SIGTERM', () => {
    process.stdout.write(`count ${n}\n`);
    process.exit(0);
  });
}

/** `count` datagrams of `size` bytes into a bare receiver, in bursts of 32 a turn: its CPU µs per datagram received. */
async function bareDgram(size: number, count: number, batched: boolean): Promise<number> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), batched ? '--bare-batched' : '--bare'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  while (!/port (\d+)/.test(out)) await new Promise((r) => setTimeout(r, 10));
  const port = Number(/port (\d+)/.exec(out)![1]);
  const tx = dgram.createSocket({ type: 'udp4', sendBufferSize: 8 << 20 });
  await new Promise<void>((r) => tx.bind(0, '127.0.0.1', () => r()));
  const pkt = Buffer.alloc(size, 0xab);
  const cpu0 = cpuSeconds(child.pid!);
  for (let i = 0; i < count; i += 32) {
    for (let k = 0; k < 32; k++) tx.send(pkt, port, '127.0.0.1');
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 300));
  const cpu = cpuSeconds(child.pid!) - cpu0;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  tx.close();
  const got = Number(/count (\d+)/.exec(out)?.[1] ?? 0);
  return got > 0 ? (cpu * 1e6) / got : Number.NaN;
}

/**
 * batched: the recvmmsg reader without UDP_GRO (PILOT_UDP_GRO=0); dgram: PILOT_RECVMMSG=0; gro: the reader with UDP_GRO (the default);
 * dgramsend: the default, with lone packets sent through dgram (PILOT_UDP_SEND1=0), not the addon's sendOne.
 */
type Mode = 'batched' | 'dgram' | 'gro' | 'dgramsend';
const MODES = (process.env.BENCH_RX_MODES ?? 'gro,batched,dgram').split(',') as Mode[];
const ENV: Record<Mode, Record<string, string>> = {
  batched: { PILOT_UDP_GRO: '0' },
  dgram: { PILOT_RECVMMSG: '0' },
  gro: {},
  dgramsend: { PILOT_UDP_SEND1: '0' },
};
interface Row {
  mbps: number;
  send: number;
  recv: number;
  recvMB: number;
  ackRatio: number;
  bare: number;
  size: number;
  perBatch: number;
}

async function main(): Promise<void> {
  const work = tmpDir('pilot-rxcpu-');
  const rdv = await startRendezvous();
  const rx: Record<Mode, Agent> = {
    batched: new Agent('alpha', work),
    dgram: new Agent('alpha0', work),
    gro: new Agent('alphagro', work),
    dgramsend: new Agent('alphads', work),
  };
  const b = new Agent('beta', work);
  const rows: Record<Mode, Row[]> = { batched: [], dgram: [], gro: [], dgramsend: [] };
  try {
    for (const mode of MODES) {
      Object.assign(process.env, ENV[mode]); // inherited by the daemon pilotctl starts
      try {
        await rx[mode].start(['--registry', rdv.addr, '--email', `${mode}@example.com`, '--hostname', `rx-${mode}`, '--listen', '127.0.0.1:0']);
      } finally {
        for (const k of Object.keys(ENV[mode])) delete process.env[k];
      }
    }
    await b.start(['--registry', rdv.addr, '--email', 'b@example.com', '--hostname', 'rx-beta', '--listen', '127.0.0.1:0']);
    for (const mode of MODES) {
      const a = rx[mode];
      const name = `rx-${mode}`;
      await b.ctl(['handshake', a.address]);
      await a.ctl(['approve', b.address]);
      await b.ctl(['ping', name, '--count', '2', '--interval', '10ms']);
      await b.ctl(['bench', name, '10'], 120_000); // warm-up (JIT, windows)
    }
    for (let i = 0; i < REPS; i++) {
      // interleaved, the order flipped every rep: load drifts hit both modes alike
      for (const mode of i % 2 === 0 ? MODES : [...MODES].reverse()) {
        const a = rx[mode];
        const name = `rx-${mode}`;
        const [ca, cb] = [await counters(a), await counters(b)];
        const [ta, tb] = [cpuSeconds(a.pid), cpuSeconds(b.pid)];
        const perf =
          process.env.BENCH_RX_PERF && i === 0
            ? spawn('perf', ['record', '-F', '999', '-g', '-p', String(a.pid), '-o', `${process.env.BENCH_RX_PERF}.${mode}`], { stdio: 'ignore' })
            : undefined;
        const r = await b.ctl(['bench', name, String(MB)], 600_000);
        if (perf) {
          perf.kill('SIGINT');
          await new Promise((res) => perf.once('exit', res));
        }
        if (r.code !== 0) throw new Error(`pilotctl bench failed: ${r.stderr}`);
        const [ta2, tb2] = [cpuSeconds(a.pid), cpuSeconds(b.pid)];
        const [ca2, cb2] = [await counters(a), await counters(b)];
        const dataIn = ca2.udpIn - ca.udpIn;
        const size = Math.round((MB * 1024 * 1024) / Math.max(1, dataIn)); // payload per datagram, about
        const bare = await bareDgram(size + 40, Math.min(dataIn, 100_000), mode !== 'dgram');
        const row: Row = {
          mbps: r.json.data.mbPerSec as number,
          send: ((tb2 - tb) * 1e6) / Math.max(1, cb2.udpOut - cb.udpOut),
          recv: ((ta2 - ta) * 1e6) / Math.max(1, dataIn),
          recvMB: ((ta2 - ta) * 1e3) / MB,
          ackRatio: (ca2.udpOut - ca.udpOut) / Math.max(1, dataIn),
          bare,
          size,
          perBatch: (ca2.rxBatchPackets - ca.rxBatchPackets) / Math.max(1, ca2.rxBatches - ca.rxBatches),
        };
        rows[mode].push(row);
        process.stderr.write(
          `rep ${i + 1} ${mode}: ${row.mbps.toFixed(1)} MB/s, ~${size} B/datagram; CPU per datagram: sender ${row.send.toFixed(1)} µs, receiver ${row.recv.toFixed(1)} µs (${row.recvMB.toFixed(2)} ms/MB), bare receiver ${bare.toFixed(1)} µs; receiver datagrams out per in ${row.ackRatio.toFixed(3)}; packets per batch ${row.perBatch.toFixed(1)}\n`,
        );
      }
    }
  } finally {
    for (const mode of MODES) await rx[mode].stop();
    await b.stop();
    await rdv.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write(
    `| mode (${MB} MiB x ${REPS}, load ${os.loadavg()[0]!.toFixed(1)}) | MB/s | sender µs/datagram | receiver µs/datagram | receiver ms/MB | bare receiver µs/datagram | packets per batch |\n|---|---|---|---|---|---|---|\n`,
  );
  for (const mode of MODES) {
    const m = (k: keyof Row): number => median(rows[mode].map((r) => r[k]));
    const all = (k: keyof Row, d: number): string => rows[mode].map((r) => r[k].toFixed(d)).join(' / ');
    process.stdout.write(
      `| ${mode}, ~${m('size')} B/datagram | ${m('mbps').toFixed(1)} (${all('mbps', 1)}) | ${m('send').toFixed(1)} | ${m('recv').toFixed(1)} (${all('recv', 1)}) | ${m('recvMB').toFixed(2)} | ${m('bare').toFixed(2)} (${all('bare', 2)}) | ${m('perBatch').toFixed(1)} |\n`,
    );
  }
  const ratio = (x: Mode, k: keyof Row, ref: Mode = 'dgram'): string => (median(rows[x].map((r) => r[k])) / median(rows[ref].map((r) => r[k]))).toFixed(2);
  for (const mode of MODES.filter((m) => m !== 'dgram' && m !== 'dgramsend' && MODES.includes('dgram')))
    process.stdout.write(
      `${mode} / dgram: receiver CPU per datagram ${ratio(mode, 'recv')}x, bare receiver ${ratio(mode, 'bare')}x, MB/s ${ratio(mode, 'mbps')}x\n`,
    );
  if (MODES.includes('gro') && MODES.includes('dgramsend'))
    process.stdout.write(
      `gro (lone sends through sendOne) / dgramsend: receiver CPU per datagram ${ratio('gro', 'recv', 'dgramsend')}x, receiver ms/MB ${ratio('gro', 'recvMB', 'dgramsend')}x, MB/s ${ratio('gro', 'mbps', 'dgramsend')}x\n`,
    );
}

if (process.argv[2] === '--bare' || process.argv[2] === '--bare-batched') bareReceiver(process.argv[2] === '--bare-batched');
else await main();
