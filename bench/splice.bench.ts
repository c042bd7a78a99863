// The gateway's splice alone (issue 20): what joining a TCP socket and an overlay stream costs,
// with the overlay stream's direct path (src/gateway/splice.ts: Stream.attachSink / writeDirect)
// and with pipe() through the Duplex (the splice's fallback, and what every splice did before),
// interleaved in one process. The chain, all on loopback in this process (one core):
//
//   client -TCP-> gateway-side socket =splice= Stream a ~ two Connections (packets cross a
//   setImmediate link, no crypto, no UDP) ~ Stream b =splice= socket -TCP-> server
//
// Both ends' splices are the same mode. Everything but the splice is the same in both modes, so
// the difference is the splice's: per round trip of a 1-byte TCP ping-pong (CPU and p50), and per
// MB of a bulk transfer each way (client -> server: the server side receives packet by packet;
// server -> client: the gateway side does).
// Env: BENCH_SPLICE_N     ping-pong round trips per measurement (default 5000)
//      BENCH_SPLICE_MB    MiB per bulk transfer (default 64)
//      BENCH_SPLICE_REPS  interleaved reps, median shown (default 5)
//      BENCH_SPLICE_ONLY  'direct' or 'pipe': that mode alone, ping-pong only (for a profiler)
import net from 'node:net';
import { splice } from '../src/gateway/splice.ts';
import { Connection } from '../src/transport/connection.ts';
import type { Stream } from '../src/transport/stream.ts';
import { machine, summarize } from './stats.ts';

const N = Number(process.env.BENCH_SPLICE_N ?? 5000);
const MB = Number(process.env.BENCH_SPLICE_MB ?? 64);
const REPS = Number(process.env.BENCH_SPLICE_REPS ?? 5);
type Mode = 'direct' | 'pipe';

function pair(): { a: Connection; b: Connection } {
  let toB: Buffer[] = [];
  let toA: Buffer[] = [];
  let sched = false;
  const pump = (): void => {
    sched = false;
    const x = toB;
    const y = toA;
    toB = [];
    toA = [];
    for (const p of x) b.receivePacket(p);
    for (const p of y) a.receivePacket(p);
  };
  const kick = (): void => {
    if (!sched) {
      sched = true;
      setImmediate(pump);
    }
  };
  const a: Connection = new Connection({ role: 'low', sendPacket: (p) => (toB.push(p), kick()) });
  const b: Connection = new Connection({ role: 'high', sendPacket: (p) => (toA.push(p), kick()) });
  return { a, b };
}

const listen = (s: net.Server): Promise<number> => new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as net.AddressInfo).port)));

function join(sock: net.Socket, stream: Stream, mode: Mode): void {
  if (mode === 'pipe') (stream as { attachSink: (s: unknown) => boolean }).attachSink = () => false; // the splice falls back to pipe()
  splice(sock, stream);
}

/** Gateway side on one port, expose side dialing `serverPort`; returns the gateway port and a teardown. */
async function chain(mode: Mode, serverPort: number): Promise<{ port: number; close: () => void }> {
  const { a, b } = pair();
  b.on('stream', (s: Stream) => {
    s.on('error', () => {});
    const sock = net.connect({ host: '127.0.0.1', port: serverPort, allowHalfOpen: true, noDelay: true });
    sock.on('error', () => {});
    sock.once('connect', () => join(sock, s, mode));
  });
  const gw = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (sock) => {
    sock.on('error', () => {});
    const s = a.openStream(80);
    s.on('error', () => {});
    join(sock, s, mode);
  });
  const port = await listen(gw);
  return {
    port,
    close: () => {
      gw.close();
      a.close();
      b.close();
    },
  };
}

async function pingPong(mode: Mode, echoPort: number, n: number): Promise<{ p50: number; cpuUs: number }> {
  const c = await chain(mode, echoPort);
  const s = net.connect({ host: '127.0.0.1', port: c.port, noDelay: true });
  await new Promise((r) => s.once('connect', r));
  const one = Buffer.from([0x2a]);
  const rtts: number[] = [];
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < n + 50; i++) {
    if (i === 50) cpu0 = process.cpuUsage(); // the stream is open and the first round trips done
    const t0 = process.hrtime.bigint();
    await new Promise<void>((r) => {
      s.once('data', () => r());
      s.write(one);
    });
    if (i >= 50) rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const cpu = process.cpuUsage(cpu0);
  s.destroy();
  c.close();
  return { p50: summarize(rtts).p50, cpuUs: (cpu.user + cpu.system) / n };
}

/** `bytes` through the chain, client -> server ('up') or server -> client ('down'); MB/s and CPU ms per MB. */
async function bulk(mode: Mode, dir: 'up' | 'down', bytes: number): Promise<{ mbps: number; cpuMsPerMB: number }> {
  const block = Buffer.alloc(64 * 1024, 0x5a);
  const send = (sock: net.Socket): void => {
    let left = bytes;
    const more = (): void => {
      while (left > 0) {
        left -= block.length;
        if (!sock.write(block)) return void sock.once('drain', more);
      }
      sock.end();
    };
    more();
  };
  const count = (sock: net.Socket, done: (n: number) => void): void => {
    let n = 0;
    sock.on('data', (d: Buffer) => (n += d.length));
    sock.on('end', () => {
      done(n);
      sock.end();
    });
  };
  let onDone!: (n: number) => void;
  const finished = new Promise<number>((r) => (onDone = r));
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on('error', () => {});
    if (dir === 'up') count(sock, onDone);
    else {
      sock.resume();
      send(sock);
    }
  });
  const serverPort = await listen(server);
  const c = await chain(mode, serverPort);
  const s = net.connect({ host: '127.0.0.1', port: c.port, allowHalfOpen: true, noDelay: true });
  await new Promise((r) => s.once('connect', r));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  if (dir === 'up') {
    s.resume();
    send(s);
  } else {
    s.write('go'); // the far side learns of the stream
    count(s, onDone);
  }
  const got = await finished;
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (got !== bytes) throw new Error(`${mode} ${dir}: ${got} of ${bytes} bytes`);
  s.destroy();
  c.close();
  server.close();
  const mb = bytes / 2 ** 20;
  return { mbps: bytes / 1e6 / secs, cpuMsPerMB: (cpu.user + cpu.system) / 1000 / mb };
}

async function main(): Promise<void> {
  const only = process.env.BENCH_SPLICE_ONLY as Mode | undefined;
  const echo = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.on('data', (d) => sock.write(d));
  });
  const echoPort = await listen(echo);
  const bytes = MB * 2 ** 20;
  if (only !== undefined) {
    const r = await pingPong(only, echoPort, N);
    console.log(`${only}: ${N} round trips, p50 ${r.p50.toFixed(3)} ms, ${r.cpuUs.toFixed(1)} µs CPU per round trip`);
    echo.close();
    return;
  }
  // warm-up: both modes' code compiled before anything is measured
  for (const mode of ['direct', 'pipe'] as Mode[]) {
    await pingPong(mode, echoPort, Math.min(N, 5000));
    await bulk(mode, 'up', Math.min(bytes, 16 * 2 ** 20));
    await bulk(mode, 'down', Math.min(bytes, 16 * 2 ** 20));
  }
  const rows = new Map<string, number[]>();
  const add = (k: string, v: number): void => void rows.set(k, [...(rows.get(k) ?? []), v]);
  for (let rep = 0; rep < REPS; rep++) {
    const order: Mode[] = rep % 2 === 0 ? ['direct', 'pipe'] : ['pipe', 'direct'];
    for (const mode of order) {
      const pp = await pingPong(mode, echoPort, N);
      add(`${mode} rt p50`, pp.p50);
      add(`${mode} rt cpu`, pp.cpuUs);
    }
    for (const dir of ['up', 'down'] as const)
      for (const mode of order) {
        const b = await bulk(mode, dir, bytes);
        add(`${mode} ${dir} mbps`, b.mbps);
        add(`${mode} ${dir} cpu`, b.cpuMsPerMB);
      }
    console.error(
      `rep ${rep + 1}: ping-pong CPU/RT direct ${rows.get('direct rt cpu')!.at(-1)!.toFixed(1)} µs, pipe ${rows.get('pipe rt cpu')!.at(-1)!.toFixed(1)} µs; ` +
        `up CPU/MB ${rows.get('direct up cpu')!.at(-1)!.toFixed(2)} / ${rows.get('pipe up cpu')!.at(-1)!.toFixed(2)} ms; down ${rows.get('direct down cpu')!.at(-1)!.toFixed(2)} / ${rows.get('pipe down cpu')!.at(-1)!.toFixed(2)} ms`,
    );
  }
  echo.close();
  const med = (k: string): number => {
    const v = [...(rows.get(k) ?? [])].sort((x, y) => x - y);
    return v[Math.floor((v.length - 1) / 2)] ?? NaN;
  };
  const row = (what: string, k: string, digits: number): string => {
    const d = med(`direct ${k}`);
    const p = med(`pipe ${k}`);
    return `| ${what} | ${d.toFixed(digits)} | ${p.toFixed(digits)} | ${(d / p).toFixed(2)}x |`;
  };
  console.log(`\n${machine()}; ${REPS} interleaved reps (median), ping-pong ${N} round trips, bulk ${MB} MiB each way; one process, both splices\n`);
  console.log('| splice | direct path | pipe() | direct / pipe |');
  console.log('|---|---|---|---|');
  console.log(row('1-byte ping-pong, CPU per round trip (whole chain), µs', 'rt cpu', 1));
  console.log(row('1-byte ping-pong p50, ms', 'rt p50', 3));
  console.log(row('bulk client -> server, MB/s', 'up mbps', 0));
  console.log(row('bulk client -> server, CPU ms per MiB', 'up cpu', 2));
  console.log(row('bulk server -> client, MB/s', 'down mbps', 0));
  console.log(row('bulk server -> client, CPU ms per MiB', 'down cpu', 2));
}

await main();
