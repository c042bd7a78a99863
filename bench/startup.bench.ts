// Cold start and footprint (issue 17), each figure next to a reference taken in
// the same run: a bare `node -e ''` and `node -e "require('net')"` start.
// For the source entries (src/, type-stripped) and, when `npm run build` has
// made it, the compiled dist/ (what the published package runs):
//  - `pilotctl daemon start` until it printed "Daemon running", against a
//    loopback rendezvous: first start (new identity) and restart (same home)
//  - the idle daemon's RSS, 2 s after it reported ready
//  - `pilotctl info` against a running daemon
//  - `startNode()` (embedded node) until ready, in a fresh process, after the SDK import
// BENCH_STARTUP_RUNS (default 10) runs per figure; p50 / p90 / min.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startRendezvous, tmpDir, type Rendezvous } from '../test/helpers/cluster.ts';
import { machine, rssBytes } from './stats.ts';

const N = Number(process.env.BENCH_STARTUP_RUNS ?? 10);
const NODE = process.execPath;

interface Q {
  p50: number;
  p90: number;
  min: number;
}

function quantiles(v: number[]): Q {
  const s = [...v].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return { p50: q(0.5), p90: q(0.9), min: s[0] ?? NaN };
}

const fmt = (q: Q, digits = 0): string => `${q.p50.toFixed(digits)} / ${q.p90.toFixed(digits)} / ${q.min.toFixed(digits)}`;

interface Run {
  ms: number;
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Wall time of one child process, start to exit, in ms. */
function timeRun(argv: string[], env: NodeJS.ProcessEnv = {}): Run {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ms, status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * The references, sampled next to the measured runs (one before each), so that they
 * see the same machine load as the figure they are compared with (the box is shared).
 */
const bareSamples: number[] = [];
const netSamples: number[] = [];

function mustRun(argv: string[], env: NodeJS.ProcessEnv = {}, ref: 'bare' | 'net' = 'bare'): Run {
  if (ref === 'bare') bareSamples.push(timeRun([NODE, '-e', '']).ms);
  else netSamples.push(timeRun([NODE, '-e', "require('net')"]).ms);
  const r = timeRun(argv, env);
  if (r.status !== 0) throw new Error(`${argv.slice(1).join(' ')} exited ${r.status}: ${r.stderr.slice(-400)}`);
  return r;
}

function times(n: number, argv: string[], env: NodeJS.ProcessEnv = {}, ref: 'bare' | 'net' = 'bare'): Q {
  const v: number[] = [];
  for (let i = 0; i < n; i++) v.push(mustRun(argv, env, ref).ms);
  return quantiles(v);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Entry {
  label: string;
  ctl: string;
  sdk: string;
}

interface Figures {
  first: Q;
  restart: Q;
  rss: Q;
  info: Q;
  sdkImport: Q;
  sdkFirst: Q;
  sdkAgain: Q;
}

async function measure(e: Entry, rdv: Rendezvous, work: string): Promise<Figures> {
  const first: number[] = [];
  const restart: number[] = [];
  const rss: number[] = [];
  const envOf = (home: string): NodeJS.ProcessEnv => ({ PILOT_HOME: home, PILOT_SOCKET: path.join(home, 'pilot.sock') });
  let infoHome = '';
  for (let i = 0; i < N; i++) {
    const home = path.join(work, `${e.label}-d${i}`);
    const env = envOf(home);
    const host = `startup-${e.label}-${process.pid}-${i}`;
    const r1 = mustRun(
      [NODE, e.ctl, '--json', 'daemon', 'start', '--registry', rdv.addr, '--email', `${host}@example.com`, '--hostname', host, '--listen', '127.0.0.1:0'],
      env,
    );
    first.push(r1.ms);
    const pid = JSON.parse(r1.stdout.trim().split('\n').pop()!).data.pid as number;
    await sleep(2000); // idle: registered, NAT class known, first heartbeat scheduled
    rss.push(rssBytes(pid) / 2 ** 20);
    mustRun([NODE, e.ctl, '--json', 'daemon', 'stop'], env);
    restart.push(mustRun([NODE, e.ctl, '--json', 'daemon', 'start'], env).ms);
    if (i === 0) infoHome = home;
    else mustRun([NODE, e.ctl, '--json', 'daemon', 'stop'], env);
  }
  const info = times(N, [NODE, e.ctl, 'info'], envOf(infoHome), 'net');
  mustRun([NODE, e.ctl, '--json', 'daemon', 'stop'], envOf(infoHome));

  // startNode() in a fresh process: the SDK import, then start until ready (first start and again).
  const script = `
    const t0 = performance.now();
    const { startNode } = await import(${JSON.stringify(e.sdk)});
    const t1 = performance.now();
    const node = await startNode({ home: process.argv[1], registry: ${JSON.stringify(rdv.addr)}, email: 'sdk@example.com', hostname: process.argv[2], listen: '127.0.0.1:0', logger: 'silent' });
    const t2 = performance.now();
    await node.close();
    console.log(JSON.stringify({ importMs: t1 - t0, startMs: t2 - t1 }));
    process.exit(0);`;
  const imp: number[] = [];
  const sdkFirst: number[] = [];
  const sdkAgain: number[] = [];
  for (let i = 0; i < N; i++) {
    const home = path.join(work, `${e.label}-sdk${i}`);
    for (const into of [sdkFirst, sdkAgain]) {
      const r = mustRun([NODE, '--input-type=module', '-e', script, home, `sdk-${e.label}-${process.pid}-${i}`]);
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { importMs: number; startMs: number };
      into.push(j.startMs);
      if (into === sdkFirst) imp.push(j.importMs);
    }
  }
  return {
    first: quantiles(first),
    restart: quantiles(restart),
    rss: quantiles(rss),
    info,
    sdkImport: quantiles(imp),
    sdkFirst: quantiles(sdkFirst),
    sdkAgain: quantiles(sdkAgain),
  };
}

async function main(): Promise<void> {
  const work = tmpDir('pilot-bench-startup-');
  const rdv = await startRendezvous();
  const entries: Entry[] = [{ label: 'src', ctl: path.join(ROOT, 'src/cli/pilotctl.ts'), sdk: path.join(ROOT, 'src/sdk/index.ts') }];
  if (fs.existsSync(path.join(ROOT, 'dist/cli/pilotctl.js')))
    entries.push({ label: 'dist', ctl: path.join(ROOT, 'dist/cli/pilotctl.js'), sdk: path.join(ROOT, 'dist/sdk/index.js') });
  const rows: string[] = [];
  try {
    const bareRss = Number(mustRun([NODE, '-e', 'console.log(process.memoryUsage.rss())']).stdout) / 2 ** 20;
    for (const e of entries) {
      bareSamples.length = 0;
      netSamples.length = 0;
      const f = await measure(e, rdv, work);
      const bare = quantiles(bareSamples);
      const net = quantiles(netSamples);
      const row = (what: string, q: Q, ref: string, rq: Q): void => {
        const d = q.p50 - rq.p50;
        rows.push(`| ${what} | ${fmt(q)} | ${ref} | ${fmt(rq)} | ${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(0)} |`);
      };
      const tag = e.label === 'src' ? 'source (`src/`, type-stripped)' : 'compiled (`dist/`)';
      row(`${tag}: \`pilotctl daemon start\` to "Daemon running", new identity, loopback rendezvous`, f.first, "`node -e ''`", bare);
      row(`${tag}: \`pilotctl daemon start\` to "Daemon running", existing home`, f.restart, "`node -e ''`", bare);
      rows.push(
        `| ${tag}: idle daemon RSS 2 s after ready (MiB) | ${fmt(f.rss, 1)} | \`node -e\` RSS (MiB) | ${bareRss.toFixed(1)} | +${(f.rss.p50 - bareRss).toFixed(1)} |`,
      );
      row(`${tag}: \`pilotctl info\``, f.info, '`node -e "require(\'net\')"`', net);
      row(`${tag}: SDK import (in process)`, f.sdkImport, "`node -e ''` (whole process)", bare);
      row(`${tag}: \`startNode()\` ready after import, new identity`, f.sdkFirst, "`node -e ''` (whole process)", bare);
      row(`${tag}: \`startNode()\` ready after import, existing home`, f.sdkAgain, "`node -e ''` (whole process)", bare);
    }
  } finally {
    for (const d of fs.readdirSync(work)) {
      const home = path.join(work, d);
      const pidFile = path.join(home, 'daemon.pid');
      if (fs.existsSync(pidFile)) {
        try {
          process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM');
        } catch {
          /* gone */
        }
      }
    }
    await rdv.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(`start and footprint, ${N} runs each (p50 / p90 / min); each reference run right before a measured one; ${machine()}`);
  console.log('');
  console.log('| what | Pilot ms | reference (same run) | ms | Pilot - reference (p50) |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

await main();
