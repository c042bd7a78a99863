// Gateway throughput: the same file fetched with curl (a) directly from the
// HTTP server over loopback and (b) through a Pilot gateway (curl -> gateway
// daemon -> encrypted overlay -> serving daemon -> expose -> the same server),
// in one run. Runs without root: the mapping goes into 127.77.0.0/16 on a high
// local port, which is the same proxy code path as 10.4.0.1:80.
// Env: BENCH_GATEWAY_MB (file size, default 50), BENCH_GATEWAY_RUNS (default 3, median reported).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir } from '../test/helpers/cluster.ts';

const MB = 1024 * 1024;
const SIZE_MB = Number(process.env.BENCH_GATEWAY_MB ?? 50);
const RUNS = Number(process.env.BENCH_GATEWAY_RUNS ?? 3);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** One curl fetch: seconds, bytes, and the body's hash (to prove the bytes are right). */
function curl(url: string): { secs: number; bytes: number; hash: string } {
  const r = spawnSync('bash', ['-c', `set -o pipefail; curl -sS --fail -w '%{time_total} %{size_download}\\n' -o >(sha256sum >&2) ${url}`], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`curl ${url} failed: ${r.stderr}`);
  const [secs, bytes] = r.stdout.trim().split(' ').map(Number);
  return { secs: secs!, bytes: bytes!, hash: r.stderr.trim().split(' ')[0] ?? '' };
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  const work = tmpDir('pilot-gwbench-');
  const www = path.join(work, 'www');
  fs.mkdirSync(www);
  const body = crypto.randomBytes(SIZE_MB * MB);
  fs.writeFileSync(path.join(www, 'file.bin'), body);
  const want = crypto.createHash('sha256').update(body).digest('hex');
  const httpPort = await freePort();
  const gwPort = await freePort();
  let py: ChildProcess | undefined;
  const rdv = await startRendezvous();
  const server = new Agent('gwb-server', work);
  const client = new Agent('gwb-client', work);
  try {
    py = spawn('python3', ['-m', 'http.server', String(httpPort), '--bind', '127.0.0.1', '--directory', www], { stdio: 'ignore' });
    for (let i = 0; i < 100 && spawnSync('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${httpPort}/`]).status !== 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    await server.start(['--registry', rdv.addr, '--email', 's@example.com', '--hostname', 'gwb-server', '--listen', '127.0.0.1:0']);
    await client.start(['--registry', rdv.addr, '--email', 'c@example.com', '--hostname', 'gwb-client', '--listen', '127.0.0.1:0']);
    await client.ctl(['handshake', server.address]);
    await server.ctl(['approve', client.address]);
    const ex = await server.ctl(['expose', '80', `127.0.0.1:${httpPort}`]);
    if (ex.code !== 0) throw new Error(`expose failed: ${ex.stderr}`);
    const gw = await client.ctl(['gateway', 'start', '--subnet', '127.77.0.0/16', '--ports', `${gwPort}=80`, server.address]);
    if (gw.code !== 0) throw new Error(`gateway start failed: ${gw.stderr}`);
    const ip = gw.json.data.mappings[0].ip as string;
    curl(`http://${ip}:${gwPort}/file.bin`); // warm: session, direct path, congestion window

    const direct: number[] = [];
    const through: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const d = curl(`http://127.0.0.1:${httpPort}/file.bin`);
      const g = curl(`http://${ip}:${gwPort}/file.bin`);
      if (d.hash !== want || g.hash !== want) throw new Error('hash mismatch');
      direct.push(d.bytes / 1e6 / d.secs);
      through.push(g.bytes / 1e6 / g.secs);
    }
    const dm = median(direct);
    const gm = median(through);
    console.log(`gateway: curl ${SIZE_MB} MiB from python3 http.server, median of ${RUNS} (hashes checked)`);
    console.log(`  direct over loopback:          ${dm.toFixed(1)} MB/s  (runs: ${direct.map((x) => x.toFixed(1)).join(', ')})`);
    console.log(
      `  through the gateway (overlay): ${gm.toFixed(1)} MB/s  (runs: ${through.map((x) => x.toFixed(1)).join(', ')})  = ${((gm / dm) * 100).toFixed(1)}% of direct`,
    );
  } finally {
    py?.kill('SIGKILL');
    await client.ctl(['gateway', 'stop']).catch(() => undefined);
    await client.stop();
    await server.stop();
    await rdv.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
