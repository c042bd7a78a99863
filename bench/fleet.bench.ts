// `npm run bench:fleet` (issue 18): a fleet of agents joining one network with one token.
// Agents are in-process nodes (startNode: the real daemon code, each with its own identity, UDP
// socket, sessions and registry client) against real pilot-rendezvous processes:
//  (1) join: --agents agents start with one join token, --concurrency at a time (a fleet spinning
//      up); each discovers a tag:worker and completes one request to it (dialAny): the time from
//      startNode() to the reply's first byte, p50/p99.
//  (2) churn: --churn agents per second join with an ephemeral token and leave, for --secs
//      seconds, while the agents of (1) each make a request every --every ms. --churn-kind light
//      (default): each churner is a registry client with its own identity and source address
//      (register, join, find tag:worker, deregister: the whole control-plane load of a join and a
//      leave, real signatures); daemon: a whole in-process node that also completes a request to
//      a worker and stops (one process cannot start 100 daemons a second on a 2-core box).
//  (3) the rendezvous: CPU seconds per phase and peak RSS; errors by code. This process's own CPU is
//      printed too: on a 2-core box the load generator and the rendezvous share the cores.
// Runs on SQLite (one instance) and, where PostgreSQL is installed, on two instances sharing it
// (agents and workers alternate between them). --store sqlite|pg|both (default both).
// Quick run: npm run bench:fleet -- --agents 200 --churn 20 --secs 10
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import dgram from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { startNode, type PilotNode } from '../src/sdk/index.ts';
import { RegistryClient } from '../src/registry/client.ts';
import { generateIdentity } from '../src/registry/signing.ts';
import type { NetworkMemberInfo } from '../src/ipc/api-types.ts';
import { pgSkipReason, startPostgres, type PgCluster } from '../test/helpers/postgres.ts';
import { startRendezvousProcess, type RendezvousProcess } from './load/rendezvous-process.ts';
import { cpuSeconds, machine, MiB, rssBytes, summarize, type Summary } from './stats.ts';

const { values: argv } = parseArgs({
  options: {
    agents: { type: 'string', default: '1000' },
    workers: { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '50' },
    churn: { type: 'string', default: '100' },
    secs: { type: 'string', default: '60' },
    every: { type: 'string', default: '10000' },
    store: { type: 'string', default: 'both' },
    json: { type: 'string' },
    'same-source': { type: 'boolean', default: false },
    // The workers in a process of their own (default): in the generator's they share its event loop.
    'workers-inline': { type: 'boolean', default: false },
    'churn-kind': { type: 'string', default: 'light' },
  },
});
const int = (name: 'agents' | 'workers' | 'concurrency' | 'churn' | 'secs' | 'every', min: number): number => {
  const v = Number(argv[name]);
  if (!Number.isInteger(v) || v < min) throw new Error(`--${name} must be an integer >= ${min}, got ${argv[name]}`);
  return v;
};
const AGENTS = int('agents', 1);
const WORKERS = int('workers', 1);
const CONCURRENCY = int('concurrency', 1);
const CHURN = int('churn', 0);
const SECS = int('secs', 0);
const EVERY = int('every', 100);
const PORT = 2000; // the workers' own service (1000-1003 are built-in services)
const NET = 'fleet';
const WORKER = { network: NET, tag: 'worker' };

interface Errors {
  [code: string]: number;
}
const codeOf = (err: unknown): string => (err as { code?: string }).code ?? (err as Error).message.slice(0, 60);
const count = (e: Errors, err: unknown): void => {
  const c = codeOf(err);
  e[c] = (e[c] ?? 0) + 1;
};

/** One request on a fresh stream: write a line, resolve at the reply's first byte. */
async function request(node: PilotNode, members?: NetworkMemberInfo[]): Promise<void> {
  const { socket } = await node.dialAny(WORKER, PORT, { timeoutMs: 10_000, ...(members ? { members } : {}) });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(Object.assign(new Error('no reply in 10 s'), { code: 'TIMEOUT' })), 10_000);
      socket.once('data', () => (clearTimeout(timer), resolve()));
      socket.once('error', (e) => (clearTimeout(timer), reject(e)));
      socket.write('work\n');
    });
  } finally {
    socket.destroy();
  }
}

/** Sample a set of pids' RSS every 250 ms; peak per pid. */
function rssSampler(pids: number[]): { peak(): number[]; stop(): void } {
  const peak = pids.map(() => 0);
  const t = setInterval(() => {
    pids.forEach((p, i) => {
      try {
        peak[i] = Math.max(peak[i]!, rssBytes(p));
      } catch {
        /* exited */
      }
    });
  }, 250);
  return { peak: () => peak, stop: () => clearInterval(t) };
}

/** The rendezvous processes' database statements so far (PostgreSQL; 0 on SQLite), from /metrics. */
async function dbStatements(rdvs: RendezvousProcess[]): Promise<number> {
  let n = 0;
  for (const r of rdvs) {
    const text = await (await fetch(`http://127.0.0.1:${r.httpPort}/metrics`)).text();
    n += Number(/^pilot_rendezvous_db_statements_total (\S+)$/m.exec(text)?.[1] ?? 0);
  }
  return n;
}

interface PhaseResult {
  /** Database statements per second over the phase (PostgreSQL). */
  dbStatementsPerS: number;
  firstByte: Summary;
  errors: Errors;
  rendezvousCpuS: number[];
  benchCpuS: number;
  seconds: number;
}

interface RunResult {
  store: string;
  instances: number;
  join: PhaseResult;
  churn?: PhaseResult & { started: number; wanted: number; startRate: number; steady: Summary; steadyErrors: Errors; steadyRequests: number };
  rendezvousPeakRssMiB: number[];
}

/** What to stop if the run is interrupted (Ctrl-C, a crash): rendezvous processes, the PostgreSQL cluster. */
const cleanups = new Set<() => unknown>();
const cleanUpAndExit = (code: number) => async (): Promise<void> => {
  for (const c of cleanups) await Promise.resolve(c()).catch(() => {});
  process.exit(code);
};
process.once('SIGINT', cleanUpAndExit(130));
process.once('SIGTERM', cleanUpAndExit(143));
process.once('uncaughtException', (err) => {
  console.error(err);
  void cleanUpAndExit(1)();
});

async function runOnce(store: 'sqlite' | 'pg'): Promise<RunResult> {
  let pg: PgCluster | undefined;
  const rdvs: RendezvousProcess[] = [];
  let workerProc: ChildProcess | undefined;
  const cleanup = (): void => {
    workerProc?.kill('SIGKILL');
    for (const r of rdvs) r.proc.kill('SIGKILL');
    pg?.stop();
  };
  cleanups.add(cleanup);
  // The agents' homes go to tmpfs where there is one (as a container's often are): their start
  // writes keys and state with fsync, and in one process those block every agent's event loop.
  const work = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'pilot-fleet-bench-'));
  const nodes: PilotNode[] = [];
  try {
    if (store === 'pg') {
      pg = startPostgres();
      for (let i = 0; i < 2; i++) rdvs.push(await startRendezvousProcess({ args: ['--store', pg.url] }));
    } else {
      rdvs.push(await startRendezvousProcess({}));
    }
    const rss = rssSampler(rdvs.map((r) => r.pid));
    const registryOf = (i: number): string => `127.0.0.1:${rdvs[i % rdvs.length]!.port}`;
    let homes = 0;
    const start = (i: number, extra: { join?: string; hostname?: string } = {}): Promise<PilotNode> =>
      startNode({
        home: path.join(work, `n${homes++}`),
        registry: registryOf(i),
        email: `agent${i}@example.com`,
        // Each agent on its own loopback address, as agents on their own hosts are: the rendezvous
        // limits requests per source address (500/s), and one address for the whole fleet would
        // measure that limit (see --same-source).
        listen: argv['same-source'] ? '127.0.0.1:0' : `${agentIp(homes)}:0`,
        logger: 'silent',
        ...extra,
      });

    // The admin, the network, three invites; the workers answer each request with one line.
    const admin = await start(0, { hostname: 'fleet-admin' });
    nodes.push(admin);
    await admin.networks.create(NET);
    const workerToken = (await admin.networks.invite(NET, { tags: ['worker'], uses: WORKERS, expires: '1h' })).token;
    const agentToken = (await admin.networks.invite(NET, { tags: ['agent'], expires: '1h' })).token;
    const churnToken = (await admin.networks.invite(NET, { tags: ['agent'], expires: '1h', ephemeral: true })).token;
    if (argv['workers-inline']) {
      for (let i = 0; i < WORKERS; i++) {
        const w = await start(i, { join: workerToken, hostname: `worker-${i}` });
        nodes.push(w);
        await w.listen(PORT, (s) => {
          s.once('data', () => s.end('done\n'));
          s.on('error', () => {});
        });
      }
    } else {
      const workers = Array.from({ length: WORKERS }, (_, i) => ({
        home: path.join(work, `n${homes++}`),
        registry: registryOf(i),
        listen: argv['same-source'] ? '127.0.0.1:0' : `${agentIp(homes)}:0`,
        email: `worker${i}@example.com`,
        hostname: `worker-${i}`,
      }));
      workerProc = spawn(
        process.execPath,
        [path.join(import.meta.dirname, 'load', 'fleet-workers.ts'), JSON.stringify({ token: workerToken, port: PORT, workers })],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      const lines = readline.createInterface({ input: workerProc.stdout! });
      await new Promise<void>((resolve, reject) => {
        lines.on('line', (l) => l === 'ready' && resolve());
        workerProc!.once('exit', (code) => reject(new Error(`the workers' process exited (${code})`)));
      });
    }

    // (1) join: AGENTS agents, CONCURRENCY at a time.
    const cpu0 = rdvs.map((r) => cpuSeconds(r.pid));
    const db0 = await dbStatements(rdvs);
    const me0 = process.cpuUsage();
    const t0 = performance.now();
    const joinTimes: number[] = [];
    const joinErrors: Errors = {};
    /** Where a join's time goes: the node's start (register, join) and its first request (discover, dial, reply). */
    const startTimes: number[] = [];
    const requestTimes: number[] = [];
    const agents: PilotNode[] = [];
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < AGENTS) {
        const i = next++;
        const s = performance.now();
        // A join that never ends (it did once, at load 15) counts as an error, with the stage it hung in,
        // instead of stalling the run.
        let stage = 'start';
        let timer: NodeJS.Timeout | undefined;
        const stuck = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error(`stuck in ${stage} for 60 s`), { code: `STUCK_${stage.toUpperCase()}` })), 60_000);
        });
        try {
          const n = await Promise.race([start(i, { join: agentToken }), stuck]);
          agents.push(n);
          nodes.push(n);
          stage = 'request';
          const started = performance.now();
          await Promise.race([request(n), stuck]);
          joinTimes.push(performance.now() - s);
          startTimes.push(started - s);
          requestTimes.push(performance.now() - started);
        } catch (err) {
          count(joinErrors, err);
        } finally {
          clearTimeout(timer);
        }
        if (++done % 100 === 0) process.stderr.write(`  ${store}: ${done}/${AGENTS} agents joined\n`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const me1 = process.cpuUsage(me0);
    const join: PhaseResult = {
      firstByte: summarize(joinTimes),
      errors: joinErrors,
      rendezvousCpuS: rdvs.map((r, i) => cpuSeconds(r.pid) - cpu0[i]!),
      dbStatementsPerS: ((await dbStatements(rdvs)) - db0) / ((performance.now() - t0) / 1000),
      benchCpuS: (me1.user + me1.system) / 1e6,
      seconds: (performance.now() - t0) / 1000,
    };
    console.log(
      `${store}: ${AGENTS} agents joined in ${join.seconds.toFixed(1)} s; join-to-first-byte ${fmt(join.firstByte)}; errors ${JSON.stringify(joinErrors)}; database ${join.dbStatementsPerS.toFixed(0)} statements/s`,
    );
    console.log(
      `${store}:   of which the node's start (register, join) ${fmt(summarize(startTimes))}; its first request (discover, dial, reply) ${fmt(summarize(requestTimes))}`,
    );

    // (2) churn: CHURN ephemeral agents/s join, work once and leave, while the agents keep working.
    let churn: RunResult['churn'];
    if (CHURN > 0 && SECS > 0) {
      const members = await agents[0]!.discover(WORKER);
      const cpu1 = rdvs.map((r) => cpuSeconds(r.pid));
      const db1 = await dbStatements(rdvs);
      const me2 = process.cpuUsage();
      const t1 = performance.now();
      const end = t1 + SECS * 1000;
      const steady: number[] = [];
      const steadyErrors: Errors = {};
      let steadyRequests = 0;
      const keepWorking = async (n: PilotNode, i: number): Promise<void> => {
        await sleep((i * EVERY) / agents.length); // spread over the period
        while (performance.now() < end) {
          const s = performance.now();
          steadyRequests++;
          try {
            await request(n, members);
            steady.push(performance.now() - s);
          } catch (err) {
            count(steadyErrors, err);
          }
          await sleep(Math.max(0, Math.min(EVERY - (performance.now() - s), end - performance.now())));
        }
      };
      const churnTimes: number[] = [];
      const churnErrors: Errors = {};
      let started = 0;
      let startRate = 0;
      const inFlight = new Set<Promise<void>>();
      const lightChurner = async (i: number): Promise<void> => {
        const s = performance.now();
        const sock = dgram.createSocket('udp4');
        const rdv = rdvs[i % rdvs.length]!;
        const client = new RegistryClient({ identity: generateIdentity(), send: (pkt) => sock.send(pkt, rdv.port, '127.0.0.1'), timeoutMs: 1000, retries: 3 });
        sock.on('message', (msg) => client.handlePacket(msg));
        try {
          await new Promise<void>((r) => sock.bind(0, agentIp(AGENTS + WORKERS + 10 + i), () => r()));
          await client.register({ email: `churn${i}@example.com`, ephemeral: true });
          const j = await client.networks.join(churnToken);
          await client.networks.find({ tag: 'worker', net: j.net, online: true });
          churnTimes.push(performance.now() - s);
          await client.deregister();
        } catch (err) {
          count(churnErrors, err);
        } finally {
          client.close();
          sock.close();
        }
      };
      const oneChurner = async (i: number): Promise<void> => {
        const s = performance.now();
        let n: PilotNode | undefined;
        try {
          n = await start(AGENTS + i, { join: churnToken });
          const started = performance.now();
          await request(n);
          churnTimes.push(performance.now() - s);
          if (process.env.FLEET_DEBUG && performance.now() - s > 2000)
            process.stderr.write(`  slow churner ${i}: start ${(started - s).toFixed(0)} ms, request ${(performance.now() - started).toFixed(0)} ms\n`);
        } catch (err) {
          count(churnErrors, err);
        } finally {
          await n?.close().catch((err: unknown) => count(churnErrors, err));
        }
      };
      const steadyAll = Promise.all(agents.map(keepWorking));
      // churners at a fixed rate; a tick that finds 4 s of churners still in flight is skipped
      // (the generator cannot keep up) and shows as started < wanted
      const wanted = CHURN * SECS;
      // Every churner due by now starts in the same tick: one timer per churner would fall behind
      // the schedule whenever the generator's event loop is busy (each wait is at least a timer
      // tick), and the rate reached would be less than the rate asked. The rate reached is printed.
      let lastStart = t1;
      for (let k = 0; k < wanted; ) {
        await sleep(Math.max(0, t1 + (k * 1000) / CHURN - performance.now()));
        const now = performance.now();
        for (; k < wanted && t1 + (k * 1000) / CHURN <= now; k++) {
          if (inFlight.size >= CHURN * 4) continue;
          started++;
          lastStart = now;
          const p = (argv['churn-kind'] === 'daemon' ? oneChurner(k) : lightChurner(k)).finally(() => inFlight.delete(p));
          inFlight.add(p);
          if (k % CHURN === 0 && k > 0) process.stderr.write(`  ${store}: churn ${k / CHURN}/${SECS} s, ${inFlight.size} in flight\n`);
        }
      }
      startRate = started / Math.max(1, (lastStart - t1) / 1000);
      await Promise.all([steadyAll, ...inFlight]);
      const me3 = process.cpuUsage(me2);
      churn = {
        firstByte: summarize(churnTimes),
        errors: churnErrors,
        rendezvousCpuS: rdvs.map((r, i) => cpuSeconds(r.pid) - cpu1[i]!),
        dbStatementsPerS: ((await dbStatements(rdvs)) - db1) / ((performance.now() - t1) / 1000),
        benchCpuS: (me3.user + me3.system) / 1e6,
        seconds: (performance.now() - t1) / 1000,
        started,
        wanted,
        startRate,
        steady: summarize(steady),
        steadyErrors,
        steadyRequests,
      };
      console.log(
        `${store}: churn ${started}/${wanted} ephemeral agents (started at ${startRate.toFixed(1)}/s) in ${churn.seconds.toFixed(1)} s; their join-to-first-byte ${fmt(churn.firstByte)}; errors ${JSON.stringify(churnErrors)}; database ${churn.dbStatementsPerS.toFixed(0)} statements/s`,
      );
      console.log(
        `${store}: meanwhile ${steadyRequests} requests from the ${agents.length} agents: ${fmt(churn.steady)}; errors ${JSON.stringify(steadyErrors)}`,
      );
    }
    rss.stop();
    return { store, instances: rdvs.length, join, ...(churn ? { churn } : {}), rendezvousPeakRssMiB: rss.peak().map((b) => b / MiB) };
  } finally {
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    if (workerProc && workerProc.exitCode === null) {
      const gone = new Promise((r) => workerProc!.once('exit', r));
      workerProc.kill('SIGTERM');
      await gone;
    }
    for (const r of rdvs) await r.stop();
    pg?.stop();
    cleanups.delete(cleanup);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** 127.3.x.y: a loopback address per agent (Linux routes all of 127/8 to lo). */
const agentIp = (n: number): string => `127.3.${Math.floor(n / 250) % 250}.${1 + (n % 250)}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fmt = (s: Summary): string => `p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms (n=${s.n})`;
const cpu = (p: PhaseResult): string =>
  `rendezvous CPU ${p.rendezvousCpuS.map((c) => `${c.toFixed(1)} s (${((c / p.seconds) * 100).toFixed(0)}%)`).join(' + ')}, bench ${p.benchCpuS.toFixed(1)} s`;

console.log(`# fleet bench: ${machine()}`);
console.log(
  `# ${AGENTS} agents (${CONCURRENCY} joining at a time), ${WORKERS} workers; churn ${CHURN}/s for ${SECS} s (${argv['churn-kind']}), steady request every ${EVERY} ms per agent`,
);
const stores: ('sqlite' | 'pg')[] = argv.store === 'both' ? ['sqlite', 'pg'] : [argv.store as 'sqlite' | 'pg'];
const results: RunResult[] = [];
for (const s of stores) {
  if (s === 'pg' && pgSkipReason()) {
    console.log(`# PostgreSQL: skipped (${pgSkipReason()})`);
    continue;
  }
  results.push(await runOnce(s));
}
console.log(
  '\n| store | join-to-first-byte p50 / p99 | join errors | churn: started / wanted (rate reached), p50 / p99, errors | steady requests p50 / p99, errors | rendezvous CPU (join; churn) | rendezvous peak RSS |',
);
console.log('|---|---|---|---|---|---|---|');
for (const r of results) {
  const c = r.churn;
  console.log(
    `| ${r.store === 'pg' ? 'PostgreSQL, 2 instances' : 'SQLite, 1 instance'} | ${r.join.firstByte.p50.toFixed(0)} / ${r.join.firstByte.p99.toFixed(0)} ms | ${JSON.stringify(r.join.errors)} | ${
      c
        ? `${c.started} / ${c.wanted} (${c.startRate.toFixed(0)}/s), ${c.firstByte.p50.toFixed(0)} / ${c.firstByte.p99.toFixed(0)} ms, ${JSON.stringify(c.errors)}`
        : 'n/a'
    } | ${c ? `${c.steady.p50.toFixed(0)} / ${c.steady.p99.toFixed(0)} ms (n=${c.steadyRequests}), ${JSON.stringify(c.steadyErrors)}` : 'n/a'} | ${cpu(r.join)}${c ? `; ${cpu(c)}` : ''} | ${r.rendezvousPeakRssMiB.map((m) => `${m.toFixed(0)} MiB`).join(' + ')} |`,
  );
}
if (argv.json) fs.writeFileSync(argv.json, JSON.stringify(results, null, 2));
process.exit(0);
