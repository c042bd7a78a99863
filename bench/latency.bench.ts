// Latency over two real daemons on loopback, each figure next to its raw
// reference measured in the same run:
//  - request/response on an open stream through the SDK (app -> IPC -> daemon
//    -> encrypted UDP -> daemon -> IPC -> app echo, and back), 1 B and 1 KiB,
//    vs the same exchange over one raw TCP connection;
//  - datagram round trip through the SDK (to the peer's echo port 7) and the
//    daemon's own ping (`ping` IPC method, what `pilotctl ping` prints) vs a
//    raw UDP echo;
//  - time to first byte for a new peer: a fresh daemon pair each sample, SDK
//    dial (registry lookup + handshake + punch + stream open) -> first echoed byte.
// Env: BENCH_LAT_N (exchanges per figure, default 1000), BENCH_TTFB_N (fresh pairs, default 5).
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { IpcClient } from '../src/ipc/client.ts';
import { connect, type PilotNode } from '../src/sdk/index.ts';
import { startRendezvous } from '../test/helpers/cluster.ts';
import { startPair } from './daemons.ts';
import { machine, summarize, type Summary } from './stats.ts';

const N = Number(process.env.BENCH_LAT_N ?? 1000);
const WARM = Math.min(100, Math.ceil(N / 10));
const TTFB_N = Number(process.env.BENCH_TTFB_N ?? 5);
const APP_PORT = 5000;
const DG_PORT = 6000;
const ECHO_PORT = 7;

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

/** `n` sequential exchanges of `size` bytes on an echoing byte stream: write, wait for all of it back. */
async function streamRtts(sock: Duplex, size: number, n: number): Promise<number[]> {
  const msg = Buffer.alloc(size, 0x61);
  let got = 0;
  let wake: (() => void) | null = null;
  const onData = (c: Buffer): void => {
    got += c.length;
    if (got >= size && wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  sock.on('data', onData);
  const out: number[] = [];
  for (let i = 0; i < WARM + n; i++) {
    got = 0;
    const t0 = process.hrtime.bigint();
    await new Promise<void>((r) => {
      wake = r;
      sock.write(msg);
    });
    if (got !== size) throw new Error(`echo returned ${got} bytes for ${size}`);
    if (i >= WARM) out.push(ms(t0));
  }
  sock.off('data', onData);
  return out;
}

/** Raw references, echoed by another process (the daemons are processes too: same number of wake-ups). */
interface EchoServer {
  udp: number;
  tcp: number;
  kill(): void;
}

async function startEchoServer(): Promise<EchoServer> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--echo-server'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ports = await new Promise<{ udp: number; tcp: number }>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /udp (\d+) tcp (\d+)/.exec(buf);
      if (m) resolve({ udp: Number(m[1]), tcp: Number(m[2]) });
    });
    child.once('exit', (code) => reject(new Error(`echo server exited ${code}`)));
  });
  return { ...ports, kill: () => child.kill('SIGTERM') };
}

async function echoServerMain(): Promise<void> {
  const udp = dgram.createSocket('udp4');
  udp.on('message', (m, r) => udp.send(m, r.port, r.address));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  const tcp = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  process.stdout.write(`udp ${udp.address().port} tcp ${(tcp.address() as net.AddressInfo).port}\n`);
}

async function tcpRtts(port: number, size: number, n: number): Promise<number[]> {
  const c = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => c.once('connect', () => r()));
  c.setNoDelay(true);
  try {
    return await streamRtts(c, size, n);
  } finally {
    c.destroy();
  }
}

async function udpRtts(port: number, size: number, n: number): Promise<number[]> {
  const client = dgram.createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  const msg = Buffer.alloc(size, 0x61);
  const out: number[] = [];
  try {
    for (let i = 0; i < WARM + n; i++) {
      const t0 = process.hrtime.bigint();
      await new Promise<void>((resolve) => {
        client.once('message', () => resolve());
        client.send(msg, port, '127.0.0.1');
      });
      if (i >= WARM) out.push(ms(t0));
    }
    return out;
  } finally {
    client.close();
  }
}

/** The daemon's own ping (what `pilotctl ping` runs): per-probe RTTs from its 'probe' events. */
async function daemonPing(socket: string, target: string, n: number): Promise<number[]> {
  const c = new IpcClient(socket);
  const out: number[] = [];
  try {
    await c.call('ping', { target, count: n, intervalMs: 0, timeoutMs: 2000 }, (event, data) => {
      const p = data as { ok: boolean; rttMs: number | null };
      if (event === 'probe' && p.ok && p.rttMs !== null) out.push(p.rttMs);
    });
  } finally {
    c.close();
  }
  return out;
}

/** Datagrams through the SDK: bind a port, send to the peer's echo port, time until it comes back. */
async function sdkDatagramRtts(node: PilotNode, target: string, size: number, n: number): Promise<number[]> {
  const sock = await node.bind(DG_PORT);
  const msg = Buffer.alloc(size, 0x61);
  let wake: (() => void) | null = null;
  sock.on('message', () => {
    const w = wake;
    wake = null;
    w?.();
  });
  const out: number[] = [];
  try {
    for (let i = 0; i < WARM + n; i++) {
      const t0 = process.hrtime.bigint();
      const back = new Promise<boolean>((r) => {
        const timer = setTimeout(() => r(false), 2000);
        wake = () => {
          clearTimeout(timer);
          r(true);
        };
      });
      await sock.send(target, ECHO_PORT, msg);
      if (!(await back)) continue; // lost: counted by the difference to n
      if (i >= WARM) out.push(ms(t0));
    }
    return out;
  } finally {
    await sock.close();
  }
}

/** A fresh daemon pair per sample: dial -> first echoed byte. */
async function ttfb(samples: number): Promise<{ dial: number[]; first: number[] }> {
  const rdv = await startRendezvous();
  const dial: number[] = [];
  const first: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const pair = await startPair('ttfb', { rdv, warm: false });
      const node = await connect({ socket: pair.a.socket });
      try {
        const t0 = process.hrtime.bigint();
        const sock = await node.dial(pair.bName, ECHO_PORT);
        dial.push(ms(t0));
        await new Promise<void>((resolve, reject) => {
          sock.once('data', () => resolve());
          sock.once('error', reject);
          sock.write(Buffer.from([0x61]));
        });
        first.push(ms(t0));
        sock.destroy();
      } finally {
        await node.close();
        await pair.stop();
      }
    }
  } finally {
    await rdv.kill();
  }
  return { dial, first };
}

const f3 = (x: number): string => x.toFixed(3);
const row = (what: string, p: Summary, ref: string, r: Summary): string =>
  `| ${what} | ${f3(p.p50)} / ${f3(p.p99)} / ${f3(p.avg)} | ${ref} | ${f3(r.p50)} / ${f3(r.p99)} / ${f3(r.avg)} | +${f3(p.p50 - r.p50)} / +${f3(p.avg - r.avg)} |`;

async function main(): Promise<void> {
  const rows: string[] = [];
  const echo = await startEchoServer();
  const pair = await startPair('lat');
  const na = await connect({ socket: pair.a.socket });
  const nb = await connect({ socket: pair.b.socket });
  try {
    const srv = await nb.listen(APP_PORT, (s) => {
      s.on('error', () => {}); // the client's destroy() at the end resets it
      s.pipe(s);
    });
    const sock = await na.dial(pair.bName, APP_PORT);
    sock.on('error', () => {});
    for (const size of [1, 1024]) {
      const pilot = summarize(await streamRtts(sock, size, N));
      const tcp = summarize(await tcpRtts(echo.tcp, size, N));
      rows.push(row(`SDK stream req/resp ${size} B (SDK echo on the peer)`, pilot, 'raw TCP req/resp, NODELAY', tcp));
    }
    sock.destroy();
    await srv.close();

    const udp16 = summarize(await udpRtts(echo.udp, 16, N));
    const v = await daemonPing(pair.a.socket, pair.bName, WARM + N);
    const ping = summarize(v.slice(WARM));
    rows.push(row(`daemon ping (\`pilotctl ping\`: 16 B datagram to echo port 7), ${v.length}/${WARM + N}`, ping, 'raw UDP echo 16 B', udp16));

    for (const size of [16, 1024]) {
      const v = await sdkDatagramRtts(na, pair.bName, size, N);
      const dg = summarize(v);
      const udp = size === 16 ? udp16 : summarize(await udpRtts(echo.udp, size, N));
      rows.push(row(`SDK datagram round trip ${size} B (peer echo port 7), ${v.length}/${N} back`, dg, `raw UDP echo ${size} B`, udp));
    }
  } finally {
    await na.close();
    await nb.close();
    await pair.stop();
    echo.kill();
  }

  const t = await ttfb(TTFB_N);
  const dial = summarize(t.dial);
  const first = summarize(t.first);

  console.log(`latency, loopback, two daemons; ${N} exchanges per figure after ${WARM} warm-up; raw references echoed by a separate process; ${machine()}`);
  console.log('');
  console.log('| what | Pilot p50 / p99 / avg ms | reference (same run) | p50 / p99 / avg ms | Pilot - reference (p50 / avg) |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log('');
  console.log(`time to first byte, new peer (fresh daemon pair, ${TTFB_N} samples; registry lookup + handshake + punch + stream open):`);
  console.log(`  SDK dial() resolved:  min ${f3(dial.min)} / p50 ${f3(dial.p50)} / avg ${f3(dial.avg)} ms`);
  console.log(`  first echoed byte:    min ${f3(first.min)} / p50 ${f3(first.p50)} / avg ${f3(first.avg)} ms`);
}

if (process.argv[2] === '--echo-server') await echoServerMain();
else await main();
