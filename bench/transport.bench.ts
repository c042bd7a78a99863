// Transport micro-benchmark, one stream of BENCH_TRANSPORT_MB (default 200) MiB:
//  1. two Connections in one process, packets crossing a setImmediate link (no
//     crypto, no sockets): what the transport alone costs, both ends on one core;
//  2. the same over real UDP sockets on loopback, receiver in a worker thread
//     (still no crypto): transport + kernel + node's dgram, one core per end,
//     like two daemons.
// Prints MB/s and packets/s.
import dgram from 'node:dgram';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { Connection } from '../src/transport/connection.ts';
import type { Stream } from '../src/transport/stream.ts';

const MB = 1024 * 1024;
const TOTAL = Number(process.env.BENCH_TRANSPORT_MB ?? 200) * MB;

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
  const a: Connection = new Connection({
    role: 'low',
    sendPacket: (p) => {
      toB.push(p);
      kick();
    },
  });
  const b: Connection = new Connection({
    role: 'high',
    sendPacket: (p) => {
      toA.push(p);
      kick();
    },
  });
  return { a, b };
}

async function run(): Promise<void> {
  const { a, b } = pair();
  const block = Buffer.alloc(64 * 1024, 0x5a);
  let received = 0;
  const done = new Promise<void>((resolve) => {
    b.on('stream', (s: Stream) => {
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        received += d.length;
      });
      s.on('end', () => resolve());
    });
  });
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const s = a.openStream(9, 40000);
  s.on('error', () => {});
  for (let sent = 0; sent < TOTAL; sent += block.length) {
    if (!s.write(block)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  await done;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const sa = a.stats();
  const sb = b.stats();
  if (received !== TOTAL) throw new Error(`received ${received} of ${TOTAL}`);
  const mbps = TOTAL / 1e6 / secs;
  console.log(`transport: ${TOTAL / MB} MiB one stream in ${secs.toFixed(2)} s = ${mbps.toFixed(1)} MB/s`);
  console.log(
    `  data packets ${sa.packetsSent} (${(sa.packetsSent / secs / 1000).toFixed(1)} k/s, ${sa.maxPacketSize} B max), ack packets ${sb.packetsSent} (${(sb.packetsSent / secs / 1000).toFixed(1)} k/s)`,
  );
  console.log(
    `  cpu ${(((cpu.user + cpu.system) / 1e6 / secs) * 100).toFixed(0)}% of one core for both ends; srtt ${sa.srttMs.toFixed(2)} ms, cwnd ${(sa.cwnd / 1024).toFixed(0)} KiB, lost ${sa.packetsLost}`,
  );
  a.close();
  b.close();
}

// ---------- over UDP loopback, receiver in a worker ----------

const SOCKET_BUFFER = 4 * MB;

function udpReceiver(): void {
  const sock = dgram.createSocket('udp4');
  let peerPort = 0;
  const conn = new Connection({ role: 'high', sendPacket: (p) => sock.send(p, peerPort, '127.0.0.1') });
  sock.on('message', (m) => conn.receivePacket(m));
  conn.on('stream', (s: Stream) => {
    let n = 0;
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      n += d.length;
    });
    const elu0 = performance.eventLoopUtilization();
    s.on('end', () => {
      parentPort!.postMessage({ done: n, stats: conn.stats(), elu: performance.eventLoopUtilization(elu0).utilization });
      s.end(); // let the sender finish cleanly
    });
  });
  parentPort!.on('message', (m: { peerPort?: number; quit?: boolean }) => {
    if (m.peerPort) peerPort = m.peerPort;
    if (m.quit) {
      conn.close();
      sock.close();
      parentPort!.close();
    }
  });
  sock.bind(0, '127.0.0.1', () => {
    sock.setRecvBufferSize(SOCKET_BUFFER);
    sock.setSendBufferSize(SOCKET_BUFFER);
    parentPort!.postMessage({ port: sock.address().port });
  });
}

async function runUdp(): Promise<void> {
  const worker = new Worker(new URL(import.meta.url));
  const port = await new Promise<number>((r) => worker.once('message', (m: { port: number }) => r(m.port)));
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  sock.setRecvBufferSize(SOCKET_BUFFER);
  sock.setSendBufferSize(SOCKET_BUFFER);
  worker.postMessage({ peerPort: sock.address().port });
  const a = new Connection({ role: 'low', sendPacket: (p) => sock.send(p, port, '127.0.0.1') });
  sock.on('message', (m) => a.receivePacket(m));
  const done = new Promise<{ done: number; stats: ReturnType<Connection['stats']>; elu: number }>((r) =>
    worker.on('message', (m) => m.done !== undefined && r(m)),
  );
  const block = Buffer.alloc(64 * 1024, 0x5a);
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const s = a.openStream(9, 40000);
  s.on('error', () => {});
  for (let sent = 0; sent < TOTAL; sent += block.length) {
    if (!s.write(block)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  const res = await done;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0).utilization;
  const sa = a.stats();
  if (res.done !== TOTAL) throw new Error(`received ${res.done} of ${TOTAL}`);
  console.log(`udp loopback (no crypto, receiver in a worker): ${TOTAL / MB} MiB in ${secs.toFixed(2)} s = ${(TOTAL / 1e6 / secs).toFixed(1)} MB/s`);
  console.log(
    `  data packets ${sa.packetsSent} (${(sa.packetsSent / secs / 1000).toFixed(1)} k/s), lost ${sa.packetsLost}, ack packets ${res.stats.packetsSent} (${(res.stats.packetsSent / secs / 1000).toFixed(1)} k/s)`,
  );
  console.log(
    `  srtt ${sa.srttMs.toFixed(2)} ms, cwnd ${(sa.cwnd / 1024).toFixed(0)} KiB, congestion events ${sa.congestionEvents}; process cpu ${(((cpu.user + cpu.system) / 1e6 / secs) * 100).toFixed(0)}% of one core; event loop busy: sender ${(elu * 100).toFixed(0)}%, receiver ${(res.elu * 100).toFixed(0)}%`,
  );
  worker.postMessage({ quit: true });
  a.close();
  sock.close();
}

if (isMainThread) {
  await run();
  await runUdp();
} else {
  udpReceiver();
}
