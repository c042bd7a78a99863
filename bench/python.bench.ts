// The Python package (python/pilot) next to the TypeScript SDK, same daemons,
// same run, reps interleaved: one stream upload to the peer's discard sink
// (port 9, which answers the byte count) through the blocking API, pilot.aio
// and the TypeScript SDK; and IPC request round trips (info) one after another.
// Debian's /usr/bin/python3 runs the Python side, started once per rep (its
// start is not timed: each side times its own loop).
// Env: BENCH_PY_MB (MiB per upload, default 64), BENCH_PY_REPS (default 5), BENCH_PY_CALLS (default 2000).
//   node bench/python.bench.ts
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { connect } from '../src/sdk/index.ts';
import { ROOT } from '../test/helpers/cluster.ts';
import { startPair } from './daemons.ts';
import { machine, MiB, summarize } from './stats.ts';

const BYTES = Number(process.env.BENCH_PY_MB ?? 64) * MiB;
const REPS = Number(process.env.BENCH_PY_REPS ?? 5);
const CALLS = Number(process.env.BENCH_PY_CALLS ?? 2000);
const PYTHON = '/usr/bin/python3';
const SINK = 9;

const PY_SYNC = `
import sys, time, pilot
sock, target, size, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
node = pilot.connect(sock)
if calls:
    t0 = time.perf_counter()
    for _ in range(calls): node.info()
    print(calls / (time.perf_counter() - t0)); sys.exit()
block = b"Z" * 65536
s = node.dial(target, ${SINK})
t0 = time.perf_counter()
left = size
while left > 0:
    n = min(left, len(block)); s.sendall(block[:n]); left -= n
s.shutdown()
s.makefile("rb").read()
print(size / 1e6 / (time.perf_counter() - t0))
`;

const PY_AIO = `
import sys, time, asyncio, pilot.aio
async def main(sock, target, size):
    node = await pilot.aio.connect(sock)
    reader, writer = await node.dial(target, ${SINK})
    block = b"Z" * 65536
    t0 = time.perf_counter()
    left = size
    while left > 0:
        n = min(left, len(block)); writer.write(block[:n]); left -= n
        await writer.drain()
    writer.write_eof()
    await reader.read()
    print(size / 1e6 / (time.perf_counter() - t0))
    writer.close(); await node.close()
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
`;

function python(code: string, args: string[]): number {
  const r = spawnSync(PYTHON, ['-c', code, ...args], { env: { ...process.env, PYTHONPATH: path.join(ROOT, 'python') }, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

const pair = await startPair('py');
const node = await connect({ socket: pair.a.socket });
try {
  const block = Buffer.alloc(64 * 1024, 0x5a);
  const tsUpload = async (): Promise<number> => {
    const s = await node.dial(pair.bName, SINK);
    const ended = new Promise<void>((resolve, reject) => {
      s.on('data', () => {});
      s.once('end', resolve);
      s.once('error', reject);
    });
    const t0 = performance.now();
    for (let n = 0; n < BYTES; n += block.length)
      if (!s.write(block.subarray(0, Math.min(block.length, BYTES - n)))) await new Promise((r) => s.once('drain', r));
    s.end();
    await ended;
    return BYTES / 1e6 / ((performance.now() - t0) / 1000);
  };
  const tsCalls = async (): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < CALLS; i++) await node.info();
    return CALLS / ((performance.now() - t0) / 1000);
  };
  const up = { ts: [] as number[], sync: [] as number[], aio: [] as number[] };
  const calls = { ts: [] as number[], py: [] as number[] };
  for (let i = 0; i < REPS; i++) {
    up.ts.push(await tsUpload());
    up.sync.push(python(PY_SYNC, [pair.a.socket, pair.bName, String(BYTES), '0']));
    up.aio.push(python(PY_AIO, [pair.a.socket, pair.bName, String(BYTES)]));
    calls.ts.push(await tsCalls());
    calls.py.push(python(PY_SYNC, [pair.a.socket, pair.bName, '0', String(CALLS)]));
  }
  const med = (v: number[]): number => summarize(v).p50;
  console.log(`# Python package vs TypeScript SDK (${machine()}; ${REPS} reps interleaved, medians)`);
  console.log('| what | TypeScript SDK | Python (pilot) | Python (pilot.aio) | Python / TS |');
  console.log('|---|---|---|---|---|');
  console.log(
    `| ${BYTES / MiB} MiB upload to the peer's sink, MB/s | ${med(up.ts).toFixed(1)} | ${med(up.sync).toFixed(1)} | ${med(up.aio).toFixed(1)} | ${(med(up.sync) / med(up.ts)).toFixed(2)} / ${(med(up.aio) / med(up.ts)).toFixed(2)} |`,
  );
  console.log(
    `| info() round trips a second (one at a time) | ${med(calls.ts).toFixed(0)} | ${med(calls.py).toFixed(0)} | - | ${(med(calls.py) / med(calls.ts)).toFixed(2)} |`,
  );
} finally {
  await node.close();
  await pair.stop();
}
