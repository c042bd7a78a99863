// Many concurrent streams between two real daemons on loopback: 1 / 8 / 64
// streams opened through the SDK (app -> IPC -> daemon -> encrypted UDP ->
// daemon's discard sink, port 9, which answers the byte count), aggregate MB/s,
// vs the same number of raw TCP connections to a sink in another process.
// Env: BENCH_STREAMS_MB (total MiB per run, default 64), BENCH_STREAMS (default "1,8,64").
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import { connect, type PilotNode } from '../src/sdk/index.ts';
import { startPair } from './daemons.ts';
import { machine, MiB } from './stats.ts';
import { createCountingSink } from './tcp-sink.ts';

const TOTAL = Number(process.env.BENCH_STREAMS_MB ?? 64) * MiB;
const COUNTS = (process.env.BENCH_STREAMS ?? '1,8,64').split(',').map(Number);
const SINK_PORT = 9;
const block = Buffer.alloc(64 * 1024, 0x5a);

/** Write `bytes` then end; resolve when the sink's reply (or the peer's end) arrives. */
async function pump(s: Duplex, bytes: number): Promise<void> {
  const ended = new Promise<void>((resolve, reject) => {
    s.on('data', () => {});
    s.once('end', () => resolve());
    s.once('error', reject);
  });
  for (let n = 0; n < bytes; n += block.length) {
    const chunk = block.subarray(0, Math.min(block.length, bytes - n));
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  await ended;
}

async function pilotRun(node: PilotNode, target: string, n: number): Promise<number> {
  const socks = await Promise.all(Array.from({ length: n }, () => node.dial(target, SINK_PORT)));
  const per = Math.floor(TOTAL / n);
  const t0 = performance.now();
  await Promise.all(socks.map((s) => pump(s, per)));
  return (per * n) / 1e6 / ((performance.now() - t0) / 1000);
}

async function tcpRun(port: number, n: number): Promise<number> {
  const socks = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Socket>((r) => {
          const c = net.connect(port, '127.0.0.1', () => r(c));
        }),
    ),
  );
  const per = Math.floor(TOTAL / n);
  const t0 = performance.now();
  await Promise.all(socks.map((s) => pump(s, per)));
  return (per * n) / 1e6 / ((performance.now() - t0) / 1000);
}

/** Like the daemon's sink: read to the end, answer the count, close. Own process, as the daemons are. */
function sinkServerMain(): void {
  const srv = createCountingSink();
  srv.listen(0, '127.0.0.1', () => process.stdout.write(`tcp ${(srv.address() as net.AddressInfo).port}\n`));
  // stdin closes when the parent dies, even by SIGKILL or a timeout: do not outlive it
  process.stdin.on('end', () => process.exit(0)).resume();
}

async function main(): Promise<void> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--sink'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const tcpPort = await new Promise<number>((resolve) => child.stdout!.on('data', (c: Buffer) => resolve(Number(/tcp (\d+)/.exec(c.toString())![1]))));
  const pair = await startPair('streams');
  const node = await connect({ socket: pair.a.socket });
  const rows: string[] = [];
  try {
    for (const n of COUNTS) {
      const pilot = await pilotRun(node, pair.bName, n);
      const tcp = await tcpRun(tcpPort, n);
      rows.push(`| ${n} | ${pilot.toFixed(1)} | ${tcp.toFixed(1)} | ${((pilot / tcp) * 100).toFixed(1)}% |`);
    }
  } finally {
    await node.close();
    await pair.stop();
    child.kill('SIGTERM');
  }
  console.log(`concurrent streams, ${TOTAL / MiB} MiB in total per run split evenly, loopback; Pilot = SDK (IPC) -> daemon -> daemon sink; ${machine()}`);
  console.log('');
  console.log('| streams | Pilot aggregate MB/s | raw TCP connections MB/s | Pilot vs TCP |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(r);
}

if (process.argv[2] === '--sink') sinkServerMain();
else await main();
