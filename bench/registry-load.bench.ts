// `npm run bench:load`: one real pilot-rendezvous process (default SQLite
// store) under the load of many simulated nodes, each a real Ed25519 identity
// sending real signed registry requests over UDP from one of many 127.77.x.y
// sources (the per-IP request limit stays on, at its default).
//  (a) register --nodes N nodes (closed loop, --concurrency in flight): registrations/s, latency
//  (b) the last --online M of them heartbeat at the daemon's interval (20 s; --interval)
//      for --secs, each from its own socket, while --lookups in-flight resolve calls
//      (by address or hostname) run from online nodes: heartbeats/s, lookups/s, latency
//  (c) the rendezvous process: RSS, CPU seconds (/proc), SQLite files on disk
// --cpu-prof DIR runs the rendezvous under node --cpu-prof and prints its hottest functions.
// Quick run: npm run bench:load -- --nodes 5000 --online 1000 --secs 20
import os from 'node:os';
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import type dgram from 'node:dgram';
import { HeartbeatResult, RegisterResult, ResolveResult } from '../src/registry/protocol.ts';
import type { Identity } from '../src/crypto/identity.ts';
import { cpuSeconds, machine, MiB, rssBytes, summarize, type Summary } from './stats.ts';
import { generateIdentities } from './load/keygen.ts';
import { sourceIp, UdpLoadClient, type Answer } from './load/udp-load-client.ts';
import { startRendezvousProcess } from './load/rendezvous-process.ts';
import { topSelfTime } from './load/cpuprofile-top.ts';

const { values: argv } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100000' },
    online: { type: 'string', default: '10000' },
    secs: { type: 'string', default: '60' },
    interval: { type: 'string', default: '20000' },
    sources: { type: 'string', default: '250' },
    concurrency: { type: 'string', default: '64' },
    lookups: { type: 'string', default: '32' },
    'cpu-prof': { type: 'string' },
  },
});
const int = (name: keyof typeof argv, min: number): number => {
  const v = Number(argv[name]);
  if (!Number.isInteger(v) || v < min) throw new Error(`--${name} must be an integer >= ${min}, got ${argv[name]}`);
  return v;
};
const N = int('nodes', 1);
const M = Math.min(int('online', 0), N);
const SECS = int('secs', 1);
const INTERVAL = int('interval', 100);
const SOURCES = int('sources', 1);
const CONC = int('concurrency', 1);
const LOOKUPS = int('lookups', 0);
/** Online nodes get their own socket each (as real daemons have) up to this many: stays under `ulimit -n`. */
const MAX_DEDICATED = 15_000;

const log = (msg: string): void => void process.stderr.write(`[load] ${msg}\n`);
const fmt = (n: number, d = 0): string => n.toLocaleString('en', { maximumFractionDigits: d, minimumFractionDigits: d });
const lat = (s: Summary): string => `${s.p50.toFixed(2)} / ${s.p99.toFixed(2)} ms`;

/** Runs fn(0..count-1) with at most `conc` running at once. */
async function closedLoop(count: number, conc: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(conc, count) }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}

class Tally {
  readonly ms: number[] = [];
  ok = 0;
  readonly errors = new Map<string, number>();
  add(a: Answer): void {
    if (a.ok) {
      this.ok++;
      this.ms.push(a.ms);
    } else this.errors.set(a.code ?? '?', (this.errors.get(a.code ?? '?') ?? 0) + 1);
  }
  get failed(): number {
    return [...this.errors.values()].reduce((x, y) => x + y, 0);
  }
  errorText(): string {
    return this.errors.size === 0 ? '0' : [...this.errors].map(([c, n]) => `${n} ${c}`).join(', ');
  }
}

/** Datagrams the kernel dropped for a full receive buffer, machine-wide (/proc/net/snmp Udp RcvbufErrors). */
function udpRcvbufErrors(): number {
  const lines = fs
    .readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const i = lines[0]?.split(' ').indexOf('RcvbufErrors') ?? -1;
  return i > 0 ? Number(lines[1]?.split(' ')[i]) : NaN;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^((?:pilot_rendezvous|nodejs)_[a-z_]+(?:\{[^}]*\})?) (\S+)$/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

async function main(): Promise<void> {
  const profDir = argv['cpu-prof'] ? path.resolve(argv['cpu-prof']) : undefined;
  if (profDir) fs.mkdirSync(profDir, { recursive: true });
  const t00 = performance.now();
  let t = performance.now();
  const ids: Identity[] = await generateIdentities(N);
  const keygenSecs = (performance.now() - t) / 1000;
  log(`${fmt(N)} identities in ${keygenSecs.toFixed(1)} s`);

  const rdv = await startRendezvousProcess({ cpuProfDir: profDir });
  const client = new UdpLoadClient({ host: '127.0.0.1', port: rdv.port, serverKey: rdv.serverKey });
  let peakRss = rssBytes(rdv.pid);
  const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(rdv.pid))), 500);
  const report: string[] = [];
  try {
    // Sockets: offline nodes share one per source address; online nodes own one each.
    const shared: dgram.Socket[] = [];
    for (let s = 0; s < SOURCES; s++) shared.push(await client.socket(sourceIp(s)));
    const firstOnline = N - M;
    const dedicated: dgram.Socket[] = [];
    for (let k = 0; k < Math.min(M, MAX_DEDICATED); k++) dedicated.push(await client.socket(sourceIp(k % SOURCES)));
    const sockOf = (i: number): dgram.Socket => (i >= firstOnline ? dedicated[(i - firstOnline) % dedicated.length]! : shared[i % SOURCES]!);
    const lan = (i: number): string[] => [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:4000`];
    const addresses: string[] = new Array<string>(N);

    // ---- (a) registrations: offline nodes first, the online ones last (still online at (b)) ----
    const reg = new Tally();
    const cpuA0 = cpuSeconds(rdv.pid);
    const selfA0 = process.cpuUsage();
    t = performance.now();
    let lastLog = t;
    await closedLoop(N, CONC, async (i) => {
      const a = await client.request(
        ids[i]!,
        sockOf(i),
        'register',
        { email: `load${i}@bench.example`, hostname: `load-${i}`, public: i % 2 === 0, lanEndpoints: lan(i) },
        RegisterResult,
      );
      reg.add(a);
      if (a.ok) addresses[i] = a.result!.address;
      if (performance.now() - lastLog > 5000) {
        lastLog = performance.now();
        log(`registered ${fmt(reg.ok)} / ${fmt(N)} (${fmt(reg.ok / ((lastLog - t) / 1000))}/s)`);
      }
    });
    const regSecs = (performance.now() - t) / 1000;
    const cpuA = cpuSeconds(rdv.pid) - cpuA0;
    const selfA = process.cpuUsage(selfA0);
    const rssA = rssBytes(rdv.pid);
    const dbA = rdv.dbBytes();
    const regSum = summarize(reg.ms);
    log(`(a) ${fmt(reg.ok)} registered in ${regSecs.toFixed(1)} s, errors: ${reg.errorText()}`);

    // ---- (b) heartbeats at the daemon's interval + lookups, for SECS ----
    const hb = new Tally();
    const look = new Tally();
    const cpuB0 = cpuSeconds(rdv.pid);
    const selfB0 = process.cpuUsage();
    const sentB0 = client.counters.sent;
    const retransB0 = client.counters.retransmits;
    const rcvbufB0 = udpRcvbufErrors();
    const online = Array.from({ length: M }, (_, k) => ({ i: firstOnline + k, offset: Math.random() * INTERVAL, beats: 0 })).sort(
      (x, y) => x.offset - y.offset,
    );
    const inflight = new Set<Promise<void>>();
    const track = (p: Promise<void>): void => {
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    };
    t = performance.now();
    const end = t + SECS * 1000;
    let round = 0;
    let cursor = 0;
    const beat = (): void => {
      const now = performance.now();
      while (M > 0 && now < end) {
        const n = online[cursor]!;
        if (t + round * INTERVAL + n.offset > now) break;
        n.beats++;
        // What a daemon sends: its LAN endpoints and its self-report (NAT class, paths, punch counters).
        const params = { lanEndpoints: lan(n.i), nat: 'eim', paths: { direct: 2, relay: 1 }, punches: { tried: n.beats, succeeded: n.beats } };
        if (addresses[n.i]) track(client.request(ids[n.i]!, sockOf(n.i), 'heartbeat', params, HeartbeatResult).then((a) => hb.add(a)));
        if (++cursor === online.length) (cursor = 0), round++;
      }
    };
    const beater = setInterval(beat, 5);
    const registered = addresses.map((a, i) => (a ? i : -1)).filter((i) => i >= 0);
    const lookers = registered.filter((i) => i >= firstOnline);
    let k = 0;
    const lookupLoop = Promise.all(
      Array.from({ length: lookers.length > 0 ? LOOKUPS : 0 }, async () => {
        while (performance.now() < end) {
          const from = lookers[k++ % lookers.length]!;
          const target = registered[Math.floor(Math.random() * registered.length)]!;
          // Hostnames resolve for public nodes only (private ones are not enumerable); addresses for all.
          const q = target % 2 === 0 && Math.random() < 0.5 ? { hostname: `load-${target}` } : { address: addresses[target]! };
          const a = await client.request(ids[from]!, sockOf(from), 'resolve', q, ResolveResult);
          look.add(a.ok && a.result!.address !== addresses[target] ? { ok: false, code: 'WRONG_ANSWER', ms: a.ms } : a);
        }
      }),
    );
    let lastB = t;
    while (performance.now() < end) {
      await new Promise((r) => setTimeout(r, 250));
      if (performance.now() - lastB > 10_000) {
        lastB = performance.now();
        log(`(b) ${fmt((lastB - t) / 1000)} s: ${fmt(hb.ok)} heartbeats, ${fmt(look.ok)} lookups`);
      }
    }
    clearInterval(beater);
    const bSecs = (performance.now() - t) / 1000;
    await lookupLoop;
    await Promise.all([...inflight]);
    const cpuB = cpuSeconds(rdv.pid) - cpuB0;
    const selfB = process.cpuUsage(selfB0);
    const metrics = await scrape(rdv.httpPort);
    const hbSum = summarize(hb.ms);
    const lookSum = summarize(look.ms);
    log(`(b) ${fmt(hb.ok)} heartbeats, ${fmt(look.ok)} lookups in ${bSecs.toFixed(1)} s`);

    // ---- (c) the rendezvous process ----
    const rssEnd = rssBytes(rdv.pid);
    const cpuTotal = cpuSeconds(rdv.pid);
    const dbEnd = rdv.dbBytes();
    const selfCpu = (u: NodeJS.CpuUsage, secs: number) => `${(((u.user + u.system) / 1e6 / secs) * 100).toFixed(0)}%`;
    const m = (k: string) => metrics.get(k) ?? NaN;

    report.push(
      `registry load: ${fmt(N)} nodes, ${fmt(M)} online, one pilot-rendezvous process (SQLite, WAL), UDP on loopback from ${SOURCES} source addresses`,
      machine(),
      '',
      `| phase | figure | value |`,
      `|---|---|---|`,
      `| setup | Ed25519 identities generated (${os.cpus().length} worker threads) | ${fmt(N)} in ${keygenSecs.toFixed(1)} s |`,
      `| (a) register | registrations/s (${CONC} in flight) | **${fmt(reg.ok / regSecs)}** (${fmt(reg.ok)} in ${regSecs.toFixed(1)} s) |`,
      `| (a) register | latency p50 / p99 (max ${regSum.n ? Math.max(...reg.ms).toFixed(0) : '-'} ms) | ${lat(regSum)} |`,
      `| (a) register | errors | ${reg.errorText()} |`,
      `| (a) register | rendezvous CPU / load generator CPU | ${(cpuA).toFixed(1)} s (${((cpuA / regSecs) * 100).toFixed(0)}% of a core) / ${selfCpu(selfA, regSecs)} |`,
      `| (b) ${SECS} s | heartbeats/s (${fmt(M)} nodes every ${INTERVAL / 1000} s, own socket each${M > MAX_DEDICATED ? ` up to ${fmt(MAX_DEDICATED)}` : ''}) | **${fmt(hb.ok / bSecs)}** (${fmt(hb.ok)}) |`,
      `| (b) ${SECS} s | heartbeat latency p50 / p99 | ${lat(hbSum)} |`,
      `| (b) ${SECS} s | lookups/s (resolve, ${LOOKUPS} in flight) | **${fmt(look.ok / bSecs)}** (${fmt(look.ok)}) |`,
      `| (b) ${SECS} s | lookup latency p50 / p99 | ${lat(lookSum)} |`,
      `| (b) ${SECS} s | errors heartbeats / lookups | ${hb.errorText()} / ${look.errorText()} |`,
      `| (b) ${SECS} s | retransmissions (of ${fmt(client.counters.sent - sentB0)} sent) | ${fmt(client.counters.retransmits - retransB0)} |`,
      `| (b) ${SECS} s | kernel UDP receive-buffer drops (machine-wide) | ${fmt(udpRcvbufErrors() - rcvbufB0)} |`,
      `| (b) ${SECS} s | rendezvous CPU / load generator CPU | ${cpuB.toFixed(1)} s (${((cpuB / bSecs) * 100).toFixed(0)}% of a core) / ${selfCpu(selfB, bSecs)} |`,
      `| (b) end | /metrics online_nodes / registrations_total / rate_limited_total | ${fmt(m('pilot_rendezvous_online_nodes'))} / ${fmt(m('pilot_rendezvous_registrations_total'))} / ${fmt(m('pilot_rendezvous_rate_limited_total'))} |`,
      `| (c) rendezvous | RSS after (a) / after (b) / peak | ${fmt(rssA / MiB)} / ${fmt(rssEnd / MiB)} / ${fmt(peakRss / MiB)} MiB |`,
      `| (c) rendezvous | V8 heap used / external + array buffers (at the end of (b)) | ${fmt(m('nodejs_heap_size_used_bytes') / MiB)} / ${fmt(m('nodejs_external_memory_bytes') / MiB)} MiB |`,
      `| (c) rendezvous | CPU seconds, whole run (start included) | ${cpuTotal.toFixed(1)} s |`,
      `| (c) rendezvous | SQLite files (db + wal + shm) after (a) / at end | ${fmt(dbA / MiB, 1)} / ${fmt(dbEnd / MiB, 1)} MiB |`,
      `| total | bench duration | ${((performance.now() - t00) / 1000).toFixed(0)} s |`,
    );
  } finally {
    clearInterval(rssTimer);
    client.close();
    await rdv.stop();
  }
  console.log(report.join('\n'));
  if (profDir) {
    const profs = fs
      .readdirSync(profDir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => path.join(profDir, f));
    const newest = profs.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
    if (newest) console.log(`\nrendezvous CPU profile (${newest}):\n\n${topSelfTime(newest)}`);
  }
}

await main();
