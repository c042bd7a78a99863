// Transport micro-benchmark: one stream moving BENCH_TRANSPORT_MB (default 200) MiB
// between two Connections in one process (no crypto, no sockets; packets cross
// a setImmediate link), so the figure is what the transport alone can do on one
// core that also runs the receiving side. Prints MB/s and packets/s.
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
  const a: Connection = new Connection({ role: 'low', sendPacket: (p) => { toB.push(p); kick(); } });
  const b: Connection = new Connection({ role: 'high', sendPacket: (p) => { toA.push(p); kick(); } });
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
  console.log(`  data packets ${sa.packetsSent} (${(sa.packetsSent / secs / 1000).toFixed(1)} k/s, ${sa.maxPacketSize} B max), ack packets ${sb.packetsSent} (${(sb.packetsSent / secs / 1000).toFixed(1)} k/s)`);
  console.log(`  cpu ${((cpu.user + cpu.system) / 1e6 / secs * 100).toFixed(0)}% of one core for both ends; srtt ${sa.srttMs.toFixed(2)} ms, cwnd ${(sa.cwnd / 1024).toFixed(0)} KiB, lost ${sa.packetsLost}`);
  a.close();
  b.close();
}

await run();
