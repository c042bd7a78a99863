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
// Env: BENCH_RX_MB (per rep, default 100), BENCH_RX_REPS (default 3),
//      BENCH_RX_PERF=file: `perf record -g` the receiving daemon during the first rep
//      (run with NODE_OPTIONS=--perf-basic-prof to name the JavaScript frames).
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Agent, startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { cpuSeconds } from './stats.ts';

const MB = Number(process.env.BENCH_RX_MB ?? 100);
const REPS = Number(process.env.BENCH_RX_REPS ?? 3);
interface Counters {
  udpIn: number;
  udpOut: number;
}

async function counters(a: Agent): Promise<Counters> {
  const s = await a.ipc<{ daemon: Counters }>('stats');
  return { udpIn: s.daemon.udpIn, udpOut: s.daemon.udpOut };
}

const median = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;

/** Child role: a bare dgram receiver that counts; prints its port, then the count on SIGTERM. */
function bareReceiver(): void {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  let n = 0;
  s.on('message', () => {
    n++;
  });
  s.bind(0, '127.0.0.1', () => process.stdout.write(`port ${s.address().port}\n`));
  process.on('SIGTERM', () => {
    process.stdout.write(`count ${n}\n`);
    process.exit(0);
  });
}

/** `count` datagrams of `size` bytes into a bare receiver, in bursts of 32 a turn: its CPU µs per datagram received. */
async function bareDgram(size: number, count: number): Promise<number> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--bare'], { stdio: ['ignore', 'pipe', 'inherit'] });
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

async function main(): Promise<void> {
  const work = tmpDir('pilot-rxcpu-');
  const rdv = await startRendezvous();
  const a = new Agent('alpha', work);
  const b = new Agent('beta', work);
  const rows: { mbps: number; send: number; recv: number; ackRatio: number; bare: number; size: number }[] = [];
  try {
    await a.start(['--registry', rdv.addr, '--email', 'a@example.com', '--hostname', 'rx-alpha', '--listen', '127.0.0.1:0']);
    await b.start(['--registry', rdv.addr, '--email', 'b@example.com', '--hostname', 'rx-beta', '--listen', '127.0.0.1:0']);
    await b.ctl(['handshake', a.address]);
    await a.ctl(['approve', b.address]);
    await b.ctl(['ping', 'rx-alpha', '--count', '2', '--interval', '10ms']);
    await b.ctl(['bench', 'rx-alpha', '10'], 120_000); // warm-up (JIT, windows)
    for (let i = 0; i < REPS; i++) {
      const [ca, cb] = [await counters(a), await counters(b)];
      const [ta, tb] = [cpuSeconds(a.pid), cpuSeconds(b.pid)];
      const perf =
        process.env.BENCH_RX_PERF && i === 0
          ? spawn('perf', ['record', '-F', '999', '-g', '-p', String(a.pid), '-o', process.env.BENCH_RX_PERF], { stdio: 'ignore' })
          : undefined;
      const r = await b.ctl(['bench', 'rx-alpha', String(MB)], 600_000);
      if (perf) {
        perf.kill('SIGINT');
        await new Promise((res) => perf.once('exit', res));
      }
      if (r.code !== 0) throw new Error(`pilotctl bench failed: ${r.stderr}`);
      const [ta2, tb2] = [cpuSeconds(a.pid), cpuSeconds(b.pid)];
      const [ca2, cb2] = [await counters(a), await counters(b)];
      const dataIn = ca2.udpIn - ca.udpIn;
      const size = Math.round((MB * 1024 * 1024) / Math.max(1, dataIn)); // payload per datagram, about
      const bare = await bareDgram(size + 40, Math.min(dataIn, 100_000));
      const row = {
        mbps: r.json.data.mbPerSec as number,
        send: ((tb2 - tb) * 1e6) / Math.max(1, cb2.udpOut - cb.udpOut),
        recv: ((ta2 - ta) * 1e6) / Math.max(1, dataIn),
        ackRatio: (ca2.udpOut - ca.udpOut) / Math.max(1, dataIn),
        bare,
        size,
      };
      rows.push(row);
      process.stderr.write(
        `rep ${i + 1}: ${row.mbps.toFixed(1)} MB/s, ~${size} B/datagram; CPU per datagram: sender ${row.send.toFixed(1)} µs, receiver ${row.recv.toFixed(1)} µs, bare dgram receiver ${bare.toFixed(1)} µs; receiver datagrams out per in ${row.ackRatio.toFixed(3)}\n`,
      );
    }
  } finally {
    await a.stop();
    await b.stop();
    await rdv.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const m = (k: keyof (typeof rows)[0]): number => median(rows.map((r) => r[k]));
  process.stdout.write(
    `| ${MB} MiB x ${REPS}, ~${m('size')} B/datagram, load ${os.loadavg()[0]!.toFixed(1)} | ${m('mbps').toFixed(1)} MB/s | sender ${m('send').toFixed(1)} µs | receiver ${m('recv').toFixed(1)} µs | bare dgram receiver ${m('bare').toFixed(1)} µs | ${m('ackRatio').toFixed(3)} |\n`,
  );
}

if (process.argv[2] === '--bare') bareReceiver();
else await main();
