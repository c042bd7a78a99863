// Latency over two real daemons on loopback, each figure next to its raw
// reference measured in the same run:
//  - request/response on an open stream through the SDK (app -> IPC -> daemon
//    -> encrypted UDP -> daemon -> IPC -> app echo, and back), 1 B and 1 KiB,
//    vs the same exchange over one raw TCP connection;
//  - datagram round trip through the SDK (to the peer's echo port 7) and the
//    daemon's own ping (`ping` IPC method, what `pilotctl ping` prints) vs a
//    raw UDP echo;
//  - the same request/response between two embedded nodes (startNode: the
//    daemon inside the application's process, no IPC hop at all), one in this
//    process and one in a child process, so each exchange still crosses two
//    processes as the raw TCP reference does;
//  - CPU per exchange (user + system of every process on the path, from /proc),
//    which a shared box's load disturbs much less than wall-clock latency;
//  - time to first byte for a new peer: a fresh daemon pair each sample, SDK
//    dial (registry lookup + handshake + punch + stream open) -> first echoed byte.
// Env: BENCH_LAT_N (exchanges per figure, default 1000), BENCH_TTFB_N (fresh pairs, default 5),
// BENCH_LAT_ONLY=embedded (only the embedded figures).
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { IpcClient } from '../src/ipc/client.ts';
import { connect, startNode, type PilotNode } from '../src/sdk/index.ts';
import { startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { startPair } from './daemons.ts';
import { cpuSeconds, machine, summarize, type Summary } from './stats.ts';

const N = Number(process.env.BENCH_LAT_N ?? 1000);
const WARM = Math.min(100, Math.ceil(N / 10));
const TTFB_N = Number(process.env.BENCH_TTFB_N ?? 5);
/** BENCH_LAT_ONLY=embedded: the embedded figures alone (no daemons, e.g. under --trace-deopt). */
const ONLY_EMBEDDED = process.env.BENCH_LAT_ONLY === 'embedded';
const APP_PORT = 5000;
const DG_PORT = 6000;
const ECHO_PORT = 7;

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

/** CPU (user + system) this process and `pids` use while `run` goes: microseconds per exchange. */
async function withCpu<T>(pids: number[], exchanges: number, run: () => Promise<T>): Promise<{ result: T; cpuUs: number }> {
  const own0 = process.cpuUsage();
  const c0 = pids.map(cpuSeconds);
  const result = await run();
  const own = process.cpuUsage(own0);
  const others = pids.reduce((sum, p, i) => sum + (cpuSeconds(p) - c0[i]!) * 1e6, 0);
  return { result, cpuUs: (own.user + own.system + others) / exchanges };
}

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
  pid: number;
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
  return { ...ports, pid: child.pid!, kill: () => child.kill('SIGTERM') };
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

/** The child's half of the embedded measurement: an embedded node whose SDK echoes APP_PORT. */
async function embeddedPeerMain(registry: string, home: string, hostname: string): Promise<void> {
  const node = await startNode({
    home,
    registry,
    email: `${hostname}@example.com`,
    hostname,
    listen: '127.0.0.1:0',
    socket: path.join(home, 'pilot.sock'),
    logger: 'silent',
  });
  await node.listen(APP_PORT, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  process.stdout.write(`ready ${node.address}\n`);
  process.once('SIGTERM', () => void node.close().then(() => process.exit(0)));
}

/** Two embedded nodes (this process and a child), trusting each other: stream request/response, no IPC. */
async function embeddedRtts(sizes: number[], n: number): Promise<{ size: number; s: Summary; cpuUs: number }[]> {
  const rdv = await startRendezvous();
  const work = tmpDir('pilot-bench-embedded-');
  const tag = `lat-em-${process.pid % 10000}`;
  const bHome = path.join(work, 'b');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--embedded-peer', rdv.addr, bHome, `${tag}-b`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let node: PilotNode | undefined;
  let viaB: PilotNode | undefined;
  try {
    const bAddress = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        const m = /ready (\S+)/.exec(buf);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`embedded peer exited ${code}`)));
    });
    node = await startNode({
      home: path.join(work, 'a'),
      registry: rdv.addr,
      email: `${tag}-a@example.com`,
      hostname: `${tag}-a`,
      listen: '127.0.0.1:0',
      logger: 'silent',
    });
    await node.handshake(bAddress);
    viaB = await connect({ socket: path.join(bHome, 'pilot.sock') });
    await viaB.approve(node.address);
    for (let i = 0; !(await node.trusted()).some((t) => t.peer === bAddress); i++) {
      if (i > 100) throw new Error('the embedded peers did not come to trust each other');
      await new Promise((r) => setTimeout(r, 50));
    }
    const sock = await node.dial(bAddress, APP_PORT);
    sock.on('error', () => {});
    await streamRtts(sock, 1024, N); // warm-up pass (JIT), not counted
    const out: { size: number; s: Summary; cpuUs: number }[] = [];
    for (const size of sizes) {
      const { result, cpuUs } = await withCpu([child.pid!], WARM + n, () => streamRtts(sock, size, n));
      out.push({ size, s: summarize(result), cpuUs });
    }
    sock.destroy();
    return out;
  } finally {
    await viaB?.close();
    await node?.close();
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
    await rdv.kill();
    fs.rmSync(work, { recursive: true, force: true });
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
const cpuNote = (pilot: number | undefined, ref: number | undefined): string =>
  pilot === undefined || ref === undefined ? '' : `${pilot.toFixed(0)} µs vs ${ref.toFixed(0)} µs`;
const row = (what: string, p: Summary, ref: string, r: Summary, cpu?: [number, number]): string =>
  `| ${what} | ${f3(p.p50)} / ${f3(p.p99)} / ${f3(p.avg)} | ${ref} | ${f3(r.p50)} / ${f3(r.p99)} / ${f3(r.avg)} | +${f3(p.p50 - r.p50)} / +${f3(p.avg - r.avg)} | ${cpuNote(cpu?.[0], cpu?.[1])} |`;

/** Two daemons, the applications on their IPC: streams, the daemon's ping, datagrams. */
async function ipcFigures(rows: string[]): Promise<void> {
  const echo = await startEchoServer();
  const pair = await startPair('lat').catch((err: unknown) => {
    echo.kill(); // a daemon that did not start must not leave the echo process behind
    throw err;
  });
  const na = await connect({ socket: pair.a.socket });
  const nb = await connect({ socket: pair.b.socket });
  try {
    const srv = await nb.listen(APP_PORT, (s) => {
      s.on('error', () => {}); // the client's destroy() at the end resets it
      s.pipe(s);
    });
    const sock = await na.dial(pair.bName, APP_PORT);
    sock.on('error', () => {});
    const daemonPids = [(await na.info()).pid, (await nb.info()).pid];
    await streamRtts(sock, 1024, N); // a pass to warm up (JIT) every process on the path, not counted
    for (const size of [1, 1024]) {
      const pilot = await withCpu(daemonPids, WARM + N, () => streamRtts(sock, size, N));
      const tcp = await withCpu([echo.pid], WARM + N, () => tcpRtts(echo.tcp, size, N));
      rows.push(
        row(`SDK stream req/resp ${size} B (SDK echo on the peer)`, summarize(pilot.result), 'raw TCP req/resp, NODELAY', summarize(tcp.result), [
          pilot.cpuUs,
          tcp.cpuUs,
        ]),
      );
    }
    sock.destroy();
    await srv.close();

    const udp = await withCpu([echo.pid], WARM + N, () => udpRtts(echo.udp, 16, N));
    const udp16 = summarize(udp.result);
    const v = await withCpu(daemonPids, WARM + N, () => daemonPing(pair.a.socket, pair.bName, WARM + N));
    const ping = summarize(v.result.slice(WARM));
    rows.push(
      row(`daemon ping (\`pilotctl ping\`: 16 B datagram to echo port 7), ${v.result.length}/${WARM + N}`, ping, 'raw UDP echo 16 B', udp16, [
        v.cpuUs,
        udp.cpuUs,
      ]),
    );

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
}

function printTable(rows: string[]): void {
  console.log(`latency, loopback; ${N} exchanges per figure after ${WARM} warm-up; raw references echoed by a separate process; ${machine()}`);
  console.log('');
  console.log(
    '| what | Pilot p50 / p99 / avg ms | reference (same run) | p50 / p99 / avg ms | Pilot - reference (p50 / avg) | CPU per exchange, all processes: Pilot vs reference |',
  );
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log('');
}

async function main(): Promise<void> {
  const rows: string[] = [];
  if (!ONLY_EMBEDDED) await ipcFigures(rows);

  // Embedded nodes, with the raw TCP reference measured again right after (same load).
  const echo2 = await startEchoServer();
  try {
    for (const e of await embeddedRtts([1, 1024], N)) {
      const tcp = await withCpu([echo2.pid], WARM + N, () => tcpRtts(echo2.tcp, e.size, N));
      rows.push(
        row(`embedded nodes (startNode, no IPC) stream req/resp ${e.size} B`, e.s, 'raw TCP req/resp, NODELAY', summarize(tcp.result), [e.cpuUs, tcp.cpuUs]),
      );
    }
  } finally {
    echo2.kill();
  }

  if (ONLY_EMBEDDED) return printTable(rows);
  const t = await ttfb(TTFB_N);
  const dial = summarize(t.dial);
  const first = summarize(t.first);

  printTable(rows);
  console.log(`time to first byte, new peer (fresh daemon pair, ${TTFB_N} samples; registry lookup + handshake + punch + stream open):`);
  console.log(`  SDK dial() resolved:  min ${f3(dial.min)} / p50 ${f3(dial.p50)} / avg ${f3(dial.avg)} ms`);
  console.log(`  first echoed byte:    min ${f3(first.min)} / p50 ${f3(first.p50)} / avg ${f3(first.avg)} ms`);
}

if (process.argv[2] === '--echo-server') await echoServerMain();
else if (process.argv[2] === '--embedded-peer') await embeddedPeerMain(process.argv[3]!, process.argv[4]!, process.argv[5]!);
else await main();
