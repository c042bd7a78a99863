// `npm run bench`: every Pilot figure next to a reference measured in the same run.
//  - stream throughput daemon->daemon on loopback vs raw TCP on loopback
//  - ping RTT over the overlay vs a raw UDP echo
//  - the micro-benchmarks of the layers (crypto, transport) if present
//  - cold start and footprint (bench/startup.bench.ts: daemon start, idle RSS, pilotctl info, startNode())
// Prints a Markdown table; with --write, replaces the "Latest run" block of BENCHMARKS.md.
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, ROOT, startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { tcpLoopbackSeconds } from './tcp-loopback.ts';

const MB = 1024 * 1024;
const STREAM_MB = Number(process.env.BENCH_STREAM_MB ?? 200);
const PINGS = Number(process.env.BENCH_PINGS ?? 200);

async function tcpLoopback(bytes: number): Promise<number> {
  return bytes / 1e6 / (await tcpLoopbackSeconds(bytes));
}

async function udpEchoRtt(count: number): Promise<{ avg: number; p50: number; p99: number }> {
  const server = dgram.createSocket('udp4');
  server.on('message', (m, r) => server.send(m, r.port, r.address));
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
  const port = server.address().port;
  const client = dgram.createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  const rtts: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      client.once('message', () => resolve());
      client.send(Buffer.alloc(16), port, '127.0.0.1');
    });
    rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  client.close();
  server.close();
  return summarize(rtts);
}

function summarize(v: number[]): { avg: number; p50: number; p99: number } {
  const s = [...v].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { avg: v.reduce((a, b) => a + b, 0) / v.length, p50: q(0.5), p99: q(0.99) };
}

function runSub(file: string): string {
  if (!fs.existsSync(path.join(ROOT, file))) return '';
  const r = spawnSync(process.execPath, [path.join(ROOT, file)], { encoding: 'utf8', timeout: 900_000 });
  return (r.stdout ?? '') + (r.status === 0 ? '' : `\n(${file} exited ${r.status}: ${r.stderr?.slice(-500)})`);
}

async function main(): Promise<void> {
  const rows: string[] = [];
  const work = tmpDir('pilot-bench-');
  const rdv = await startRendezvous();
  const a = new Agent('alpha', work);
  const b = new Agent('beta', work);
  try {
    await a.start(['--registry', rdv.addr, '--email', 'a@example.com', '--hostname', 'bench-alpha', '--listen', '127.0.0.1:0']);
    await b.start(['--registry', rdv.addr, '--email', 'b@example.com', '--hostname', 'bench-beta', '--listen', '127.0.0.1:0']);
    await b.ctl(['handshake', a.address]); // zero trust: agree first
    await a.ctl(['approve', b.address]);
    await b.ctl(['ping', 'bench-alpha', '--count', '2', '--interval', '10ms']); // warm the session

    const tcp = await tcpLoopback(STREAM_MB * MB);
    const bench = await b.ctl(['bench', 'bench-alpha', String(STREAM_MB)], 600_000);
    if (bench.code !== 0) throw new Error(`pilotctl bench failed: ${bench.stderr}`);
    const pilot = bench.json.data.mbPerSec as number;
    rows.push(
      `| stream throughput, ${STREAM_MB} MiB, loopback | Pilot daemon→daemon (\`pilotctl bench\`) | ${pilot.toFixed(1)} MB/s | raw TCP loopback | ${tcp.toFixed(1)} MB/s | ${((pilot / tcp) * 100).toFixed(1)}% |`,
    );

    const udp = await udpEchoRtt(PINGS);
    const ping = await b.ctl(['ping', 'bench-alpha', '--count', String(PINGS), '--interval', '0']);
    if (ping.code !== 0) throw new Error(`pilotctl ping failed: ${ping.stderr}`);
    const p = ping.json.data;
    rows.push(
      `| RTT, ${PINGS} probes, loopback | \`pilotctl ping\` (echo port 7, encrypted) | avg ${p.avgMs.toFixed(3)} ms (min ${p.minMs.toFixed(3)}) | raw UDP echo (node dgram) | avg ${udp.avg.toFixed(3)} ms (p50 ${udp.p50.toFixed(3)}) | +${(p.avgMs - udp.avg).toFixed(3)} ms |`,
    );
  } finally {
    await a.stop();
    await b.stop();
    await rdv.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`;
  const table = ['| what | Pilot | figure | reference (same run) | figure | Pilot vs reference |', '|---|---|---|---|---|---|', ...rows].join('\n');
  const micro = [
    'bench/crypto.bench.ts',
    'bench/transport.bench.ts',
    'bench/relay.bench.ts',
    'bench/gateway.bench.ts',
    'bench/latency.bench.ts',
    'bench/streams.bench.ts',
    'bench/scale.bench.ts',
    'bench/startup.bench.ts',
  ].map((f) => {
    const out = runSub(f).trim();
    return out ? `\n${f}:\n\n\`\`\`\n${out}\n\`\`\`\n` : '';
  });
  const report = `Measured ${new Date().toISOString()} on ${machine}.\n\n${table}\n${micro.join('')}`;
  console.log(report);
  if (process.argv.includes('--write')) {
    const file = path.join(ROOT, 'BENCHMARKS.md');
    const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
    const start = '<!-- latest-run:start -->';
    const end = '<!-- latest-run:end -->';
    const block = `${start}\n${report}\n${end}`;
    const next = old.includes(start)
      ? old.replace(new RegExp(`${start}[\\s\\S]*${end}`), block)
      : `${old.trimEnd()}\n\n## Latest run (\`npm run bench\`)\n\n${block}\n`;
    fs.writeFileSync(file, next);
  }
}

await main();
