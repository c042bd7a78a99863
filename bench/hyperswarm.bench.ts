// Pilot side by side with Hyperswarm (Holepunch's hyperswarm + hyperdht: Noise XX, libsodium
// secretstream over UDX, its own UDP transport with congestion control), in one run:
//
//   loopback  one namespace of its own (only lo): a local HyperDHT testnet as bootstrap, a
//             Hyperswarm sink and a Hyperswarm client; two Pilot daemons and a rendezvous;
//             raw TCP as the reference
//   NAT lab   cone x cone (real netfilter NAT, test/helpers/natlab.ts): the HyperDHT bootstrap
//             on the lab's public bridge, Hyperswarm and Pilot on the same two site hosts, raw
//             TCP through a port forward on the receiver's router; the sending router's iptables
//             byte counters name the path each method took (the peer's router = direct)
//
// Every method moves N MiB one way and stops the clock when the receiving application has
// confirmed the byte count (like `pilotctl bench`, whose sink on port 9 answers the count after
// the sender's FIN): the Hyperswarm and TCP sinks below do the same. The clock starts once the
// connection is up (pilotctl bench: after the dial; here: after the first-byte round trip).
// Connection setup ("first byte"): from the dial until the receiving application's answer to
// one byte came back. Hyperswarm: a fresh client process per rep (every Hyperswarm connection
// is a new DHT lookup, Noise handshake and hole punch); Pilot: a fresh sender daemon per rep,
// trusted but with no session yet (SDK dial to port 9, one byte, FIN, the count back), and the
// same on the warm pair (session up) for comparison; TCP: connect + one byte + answer.
// Reps are interleaved (every method once per rep); medians and ratios are printed.
//
// Env: BENCH_HS_MB       payload per bulk run in MiB (default 64)
//      BENCH_HS_REPS     interleaved reps (default 3)
//      BENCH_HS_WHERE    "loopback,nat" (default both)
//      BENCH_HS_CPU_PROF a directory: the Pilot daemons run under node --cpu-prof; their hottest
//                        functions are printed at the end
//
// Namespaces are named hs<4 hex>-*; every process and namespace is removed at the end, also on
// failure or Ctrl-C. The helper roles (--dht, --hs-sink, --hs-client, --tcp-sink, --tcp-client)
// are this file run again inside a namespace.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { connect as sdkConnect } from '../src/sdk/index.ts';
import { Agent, ROOT, startRendezvous, tmpDir, type Rendezvous } from '../test/helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP, type Router } from '../test/helpers/natlab.ts';
import { Lab } from '../test/helpers/netns.ts';
import { trustPair } from '../test/nat/matrix.ts';
import { topSelfTime } from './load/cpuprofile-top.ts';
import { env, fmt, lastRouter, type PeerView, peerView, pilotStream, runHelper, startHelper, warm } from './natlab-kit.ts';
import { cpuSeconds, machine, MiB } from './stats.ts';

const SELF = fileURLToPath(import.meta.url);
const require = createRequire(import.meta.url);
const DHT_PORT = 49737;
const TCP_PORT = 7009;
const ACK = 0x06;

// ---------------------------------------------------------------- the application on both ends

/**
 * The receiving application: answers the first chunk with one byte (the first-byte probe),
 * counts every byte to the sender's FIN, then answers the count (u64) and closes.
 */
function serveSink(s: Duplex): void {
  let total = 0;
  s.on('data', (c: Buffer) => {
    if (total === 0) s.write(Buffer.from([ACK]));
    total += c.length;
  });
  s.on('end', () => {
    const reply = Buffer.alloc(8);
    reply.writeBigUInt64BE(BigInt(total));
    s.end(reply);
  });
  s.on('error', () => s.destroy());
}

export interface DriveResult {
  /** From `t0` (before the dial) to the sink's answer to the first byte. */
  firstByteMs: number;
  /** From that answer to the sink's count of the bulk payload. */
  seconds: number;
  bytes: number;
  mbps: number;
}

/** One byte, the sink's answer, then `bytes` and FIN, the sink's count; checks the count. */
async function drive(s: Duplex, bytes: number, t0: bigint): Promise<DriveResult> {
  let got = Buffer.alloc(0);
  let want = 1;
  let wake: (() => void) | undefined;
  let failed: Error | undefined;
  s.on('data', (c: Buffer) => {
    got = Buffer.concat([got, c]);
    if (got.length >= want) wake?.();
  });
  s.on('error', (err: Error) => {
    failed = err;
    wake?.();
  });
  s.on('close', () => {
    failed ??= new Error(`closed after ${got.length} of ${want} reply bytes`);
    wake?.();
  });
  const reply = (n: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      want = n;
      wake = () => (failed ? reject(failed) : got.length >= want ? resolve() : undefined);
      wake();
    });
  s.write(Buffer.from([0x2a]));
  await reply(1);
  const t1 = process.hrtime.bigint();
  const block = crypto.randomBytes(64 * 1024);
  for (let sent = 0; sent < bytes; ) {
    const n = Math.min(block.length, bytes - sent);
    sent += n;
    if (!s.write(n === block.length ? block : block.subarray(0, n)))
      await new Promise<void>((resolve, reject) => {
        const done = (): void => {
          s.off('drain', done);
          if (failed) reject(failed);
          else resolve();
        };
        s.on('drain', done);
        if (failed) done();
      });
  }
  s.end();
  await reply(9);
  const t2 = process.hrtime.bigint();
  const count = Number(got.readBigUInt64BE(1));
  if (count !== bytes + 1) throw new Error(`sink confirmed ${count} of ${bytes + 1} bytes`);
  const seconds = Number(t2 - t1) / 1e9;
  return { firstByteMs: Number(t1 - t0) / 1e6, seconds, bytes, mbps: bytes / 1e6 / seconds };
}

// ---------------------------------------------------------------- Hyperswarm roles (CommonJS, untyped)

interface HsConn extends Duplex {
  /** The UDX stream under the secretstream: its path MTU and loss recovery counters. */
  rawStream?: { remoteHost?: string; remotePort?: number; mtu?: number; retransmits?: number; rtoCount?: number; fastRecoveries?: number };
}
interface HsSwarm {
  dht: {
    fullyBootstrapped(): Promise<void>;
    connect(key: Buffer): HsConn;
    host: string | null;
    port: number;
    firewalled: boolean;
    randomized: boolean;
    stats: { punches: unknown };
  };
  on(ev: 'connection', fn: (c: HsConn) => void): void;
  listen(): Promise<void>;
  joinPeer(key: Buffer): void;
  destroy(): Promise<void>;
}
type HsCtor = new (opts: { keyPair?: unknown; bootstrap: string[] }) => HsSwarm;
const hyperswarm = (): { Hyperswarm: HsCtor; keyPair: (seed: Buffer) => { publicKey: Buffer } } => ({
  Hyperswarm: require('hyperswarm') as HsCtor,
  keyPair: (require('hyperdht') as { keyPair(seed: Buffer): { publicKey: Buffer } }).keyPair,
});

/**
 * A HyperDHT testnet whose first node is the bootstrap at host:port. Ten nodes (the testnet's
 * default): a hole punch classifies its NAT from at least 3 DHT nodes' view of its socket, and
 * skips the 5 newest nodes when it knows 8 or more; with 3 nodes every punch through the lab's
 * routers aborted (HOLEPUNCH_ABORTED, the sockets had sampled only 2 nodes).
 */
async function dhtRole(host: string, port: number): Promise<void> {
  const createTestnet = require('hyperdht/testnet') as (n: number, o: { host: string; port: number }) => Promise<unknown>;
  await createTestnet(10, { host, port });
  process.stdout.write('ready\n');
}

async function hsSinkRole(bootstrap: string, seedHex: string): Promise<void> {
  const { Hyperswarm, keyPair } = hyperswarm();
  const swarm = new Hyperswarm({ keyPair: keyPair(Buffer.from(seedHex, 'hex')), bootstrap: [bootstrap] });
  swarm.on('connection', (c) => serveSink(c));
  await swarm.dht.fullyBootstrapped();
  await swarm.listen();
  process.stdout.write('ready\n');
  const d = swarm.dht;
  setTimeout(() => console.error(`sink node ${d.host}:${d.port} firewalled ${d.firewalled} randomized ${d.randomized}`), 3000);
}

/** One cold Hyperswarm connection to `pubHex`, then the bulk run; prints one JSON line. */
async function hsClientRole(bootstrap: string, pubHex: string, bytes: number): Promise<void> {
  const { Hyperswarm } = hyperswarm();
  const swarm = new Hyperswarm({ bootstrap: [bootstrap] });
  await swarm.dht.fullyBootstrapped();
  const t0 = process.hrtime.bigint();
  const conn = await new Promise<HsConn>((resolve, reject) => {
    // Hyperswarm retries a failed joinPeer quietly: on a timeout, one HyperDHT connect (what
    // joinPeer does underneath) says why (PEER_NOT_FOUND, HOLEPUNCH_ABORTED, ...).
    const timer = setTimeout(() => {
      const probe = swarm.dht.connect(Buffer.from(pubHex, 'hex'));
      const d = swarm.dht;
      const me = `this node ${d.host}:${d.port} firewalled ${d.firewalled} randomized ${d.randomized}, punches ${JSON.stringify(d.stats.punches)}`;
      const why = (what: string): void => reject(new Error(`no Hyperswarm connection after 30 s (${me}); a HyperDHT connect then: ${what}`));
      probe.on('error', (err: Error & { code?: string }) => why(`${err.code ?? ''} ${err.message}`));
      probe.on('open', () => why(`opened (${probe.rawStream?.remoteHost}:${probe.rawStream?.remotePort})`));
      setTimeout(() => why('no answer in 20 s'), 20_000);
    }, 30_000);
    swarm.on('connection', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
    swarm.joinPeer(Buffer.from(pubHex, 'hex'));
  });
  const connectMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const c0 = process.cpuUsage();
  const r = await drive(conn, bytes, t0);
  const cpu = process.cpuUsage(c0);
  const u = conn.rawStream;
  const remote = `${u?.remoteHost}:${u?.remotePort}`;
  const udx = `UDX mtu ${u?.mtu}, ${u?.retransmits} retransmits, ${u?.fastRecoveries} fast recoveries, ${u?.rtoCount} RTOs`;
  process.stdout.write(`${JSON.stringify({ ...r, connectMs, remote, udx, cpuPct: Math.round(((cpu.user + cpu.system) / 1e6 / r.seconds) * 100) })}\n`);
  await swarm.destroy().catch(() => undefined);
  process.exit(0);
}

// ---------------------------------------------------------------- TCP roles

function tcpSinkRole(port: number): void {
  net.createServer({ allowHalfOpen: true }, (s) => serveSink(s)).listen(port, '0.0.0.0', () => process.stdout.write('ready\n'));
}

async function tcpClientRole(host: string, port: number, bytes: number): Promise<void> {
  const t0 = process.hrtime.bigint();
  const s = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  const r = await drive(s, bytes, t0);
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------- Pilot first byte

/** SDK dial from `from` to `to`:9 (the sink), one byte, FIN, the count back: ms from before the dial. */
async function pilotFirstByte(from: Agent, to: Agent): Promise<number> {
  const node = await sdkConnect({ socket: from.socket });
  try {
    const t0 = process.hrtime.bigint();
    const s = await node.dial(to.address, 9, { timeoutMs: 20_000 });
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      s.on('data', (c: Buffer) => parts.push(c));
      s.on('end', () => resolve(Buffer.concat(parts)));
      s.on('error', reject);
      s.end(Buffer.from([0x2a]));
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (reply.length !== 8 || reply.readBigUInt64BE(0) !== 1n) throw new Error(`pilot sink answered ${reply.toString('hex')}`);
    return ms;
  } finally {
    await node.close();
  }
}

// ---------------------------------------------------------------- one place (loopback or the lab)

interface Place {
  name: string;
  /** Sender and receiver namespaces. */
  fromNs: string;
  toNs: string;
  /** Where the TCP client connects (the receiver, or its router's port forward). */
  tcpTarget: string;
  bootstrap: string;
  a: Agent;
  b: Agent;
  rdv: Rendezvous;
  /** The sending router and the remotes to name in the path column; absent on loopback. */
  router?: Router;
  toRouter?: Router;
  remotes?: Record<string, string>;
  hsPub: string;
  hsSinkPid: number;
}

interface Sample {
  mbps: number;
  firstByteMs: number;
  extra: string;
  path: string;
}

type Method = 'tcp' | 'pilot' | 'hyperswarm';
const METHODS: Method[] = ['tcp', 'pilot', 'hyperswarm'];

async function main(): Promise<void> {
  const support = natLabSupport();
  if (!support.ok) {
    console.log(`bench:hyperswarm skipped: ${support.reason}`);
    return;
  }
  const mb = env('BENCH_HS_MB', 64);
  const bytes = Math.round(mb * MiB);
  const reps = Math.max(1, Math.round(env('BENCH_HS_REPS', 3)));
  const where = (process.env.BENCH_HS_WHERE ?? 'loopback,nat').split(',');
  const T0 = performance.now();
  const log = (s: string): void => console.error(`[${((performance.now() - T0) / 1000).toFixed(1)}s] ${s}`);
  const profDir = process.env.BENCH_HS_CPU_PROF ? path.resolve(process.env.BENCH_HS_CPU_PROF) : undefined;
  if (profDir) fs.mkdirSync(profDir, { recursive: true });
  // Only the two measured daemons run under the profiler (`pilotctl daemon start` passes its
  // environment on); the Hyperswarm and TCP helpers, pilotctl and the rendezvous do not.
  const startMeasured = async (x: Agent, args: string[]): Promise<void> => {
    const before = process.env.NODE_OPTIONS;
    if (profDir) process.env.NODE_OPTIONS = `${before ?? ''} --cpu-prof --cpu-prof-dir=${profDir}`.trim();
    try {
      await x.start(args);
    } finally {
      if (before === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = before;
    }
  };
  const work = tmpDir('pilot-hs-');
  process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
  const labs: Lab[] = [];
  const agents: Agent[] = [];
  const rdvs: Rendezvous[] = [];
  const procs: ChildProcess[] = [];
  const results = new Map<string, Sample[]>(); // `${place}|${method}`
  const pilotCold = new Map<string, number[]>();
  const pilotWarmFirst = new Map<string, number[]>();
  const loads: string[] = [];
  const placesDone: Place[] = [];
  try {
    const places: (() => Promise<Place>)[] = [];
    if (where.includes('loopback'))
      places.push(async () => {
        const lab = new Lab('hs');
        labs.push(lab);
        const ns = lab.ns('lo');
        const rdv = await startRendezvous({ netns: ns, listen: '127.0.0.1:9000', dataDir: path.join(work, 'rdv-lo') });
        rdvs.push(rdv);
        const a = new Agent('lo-a', work, ns);
        const b = new Agent('lo-b', work, ns);
        agents.push(a, b);
        for (const x of [a, b])
          await startMeasured(x, ['--registry', rdv.addr, '--email', `${x.name}@example.com`, '--hostname', x.name, '--listen', '127.0.0.1:0']);
        return { name: 'loopback', fromNs: ns, toNs: ns, tcpTarget: '127.0.0.1', bootstrap: `127.0.0.1:${DHT_PORT}`, a, b, rdv, hsPub: '', hsSinkPid: 0 };
      });
    if (where.includes('nat'))
      places.push(async () => {
        const lab = new NatLab(new Lab('hs'));
        labs.push(lab.lab);
        const dhtHost = lab.addSite('public', 'dht').hosts[0]!;
        const cone1 = lab.addSite('cone', 'cone1').hosts[0]!;
        const cone2 = lab.addSite('cone', 'cone2').hosts[0]!;
        const rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rdv-nat') });
        rdvs.push(rdv);
        const a = new Agent('cone1', work, cone1.ns);
        const b = new Agent('cone2', work, cone2.ns);
        agents.push(a, b);
        for (const x of [a, b])
          await startMeasured(x, ['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${x.name}@example.com`, '--hostname', x.name, '--listen', '0.0.0.0:0']);
        const r2 = lastRouter(cone2);
        lab.forwardTcp(r2, cone2, [TCP_PORT]);
        const router = lastRouter(cone1);
        lab.countBytesWith(router, [r2.publicIp, RENDEZVOUS_IP, dhtHost.ip]);
        procs.push(await startHelper(lab, SELF, dhtHost.ns, ['--dht', dhtHost.ip, String(DHT_PORT)]));
        return {
          name: 'NAT lab cone x cone',
          fromNs: cone1.ns,
          toNs: cone2.ns,
          tcpTarget: r2.publicIp,
          bootstrap: `${dhtHost.ip}:${DHT_PORT}`,
          a,
          b,
          rdv,
          router,
          toRouter: r2,
          remotes: { [r2.publicIp]: 'direct', [RENDEZVOUS_IP]: 'rendezvous relay', [dhtHost.ip]: 'DHT node' },
          hsPub: '',
          hsSinkPid: 0,
          lab,
        } as Place & { lab: NatLab };
      });

    for (const mk of places) {
      const place = (await mk()) as Place & { lab?: NatLab };
      placesDone.push(place);
      const spawnIn = (ns: string, args: string[]): Promise<ChildProcess> => (place.lab ? startHelper(place.lab, SELF, ns, args) : startHelperNs(ns, args));
      if (!place.lab) procs.push(await spawnIn(place.toNs, ['--dht', '127.0.0.1', String(DHT_PORT)]));
      const seed = crypto.randomBytes(32);
      place.hsPub = hyperswarm().keyPair(seed).publicKey.toString('hex');
      const sink = await spawnIn(place.toNs, ['--hs-sink', place.bootstrap, seed.toString('hex')]);
      procs.push(sink);
      sink.stderr!.on('data', (c: Buffer) => log(`${place.name} Hyperswarm sink: ${c.toString().trim()}`));
      place.hsSinkPid = sink.pid!;
      procs.push(await spawnIn(place.toNs, ['--tcp-sink', String(TCP_PORT)]));
      await warm(place.a, place.b, 10);
      log(`${place.name}: DHT, Hyperswarm sink, TCP sink, Pilot pair (trusted, warm) up`);

      const counters = (): Record<string, number> => (place.router && place.lab ? place.lab.countedBytes(place.router) : {});
      const pathOf = (b0: Record<string, number>): string => {
        if (!place.router) return 'loopback';
        const b1 = counters();
        const d = Object.entries(b1)
          .map(([k, v]) => [k, v - (b0[k] ?? 0)] as [string, number])
          .filter(([, v]) => v > 0);
        const total = d.reduce((x, [, v]) => x + v, 0);
        const top = d.sort((x, y) => y[1] - x[1])[0];
        if (!top || top[1] < 100_000) return '?';
        const [proto, ip] = top[0].split(' ') as [string, string];
        return `${place.remotes?.[ip] ?? ip} (${proto}, ${Math.round((top[1] / total) * 100)}%)`;
      };
      const measure = async (m: Method, rep: number): Promise<Sample> => {
        const b0 = counters();
        if (m === 'tcp') {
          const [r] = await runHelper<DriveResult>(SELF, place.fromNs, ['--tcp-client', place.tcpTarget, String(TCP_PORT), String(bytes)], 120_000);
          return { mbps: r!.mbps, firstByteMs: r!.firstByteMs, extra: '', path: pathOf(b0) };
        }
        if (m === 'hyperswarm') {
          const s0 = cpuSeconds(place.hsSinkPid);
          const [r] = await runHelper<DriveResult & { connectMs: number; remote: string; udx: string; cpuPct: number }>(
            SELF,
            place.fromNs,
            ['--hs-client', place.bootstrap, place.hsPub, String(bytes)],
            180_000,
          ).catch((err: Error) => {
            const b1 = counters();
            const moved = Object.entries(b1)
              .map(([k, v]) => `${k} ${v - (b0[k] ?? 0)} B`)
              .join(', ');
            const drops = place.lab
              ? `; WAN drops: sender router ${place.lab.wanDrops(place.router!)}, receiver router ${place.lab.wanDrops(place.toRouter!)}`
              : '';
            if (process.env.BENCH_HS_DEBUG && place.lab)
              for (const r of [place.router!, place.toRouter!]) log(`conntrack ${r.ns}:\n${place.lab.exec(r.ns, ['conntrack', '-L', '-p', 'udp'])}`);
            throw new Error(`${err.message}; sending router counters over the attempt: ${moved}${drops}`);
          });
          const sinkPct = Math.round(((cpuSeconds(place.hsSinkPid) - s0) / r!.seconds) * 100);
          return {
            mbps: r!.mbps,
            firstByteMs: r!.firstByteMs,
            extra: `connected in ${r!.connectMs.toFixed(0)} ms to ${r!.remote}; ${r!.udx}; CPU sender ${r!.cpuPct}% receiver <=${sinkPct}%`,
            path: pathOf(b0),
          };
        }
        // Pilot: first byte on a cold pair (a fresh sender daemon, trusted, no session yet), then bulk on the warm pair.
        const c = new Agent(`${place.a.name}-c${rep}`, work, place.fromNs);
        agents.push(c);
        await c.start([
          '--registry',
          place.name === 'loopback' ? place.rdv.addr : `${RENDEZVOUS_IP}:9000`,
          '--email',
          `${c.name}@example.com`,
          '--hostname',
          c.name,
          '--listen',
          place.name === 'loopback' ? '127.0.0.1:0' : '0.0.0.0:0',
        ]);
        await trustPair(c, place.b, 20_000);
        const before = await peerView(c, place.b);
        const cold = await pilotFirstByte(c, place.b);
        await c.stop();
        pilotCold.set(place.name, [...(pilotCold.get(place.name) ?? []), cold]);
        const warmFirst = await pilotFirstByte(place.a, place.b);
        pilotWarmFirst.set(place.name, [...(pilotWarmFirst.get(place.name) ?? []), warmFirst]);
        const b1 = counters();
        const r = await pilotStream(place.a, place.b, place.rdv, bytes);
        const size = r.pathFrom as (PeerView & { mtu?: number; mtuState?: string }) | undefined;
        return {
          mbps: r.mbps,
          firstByteMs: cold,
          extra: `cold pair had path ${before?.pathType ?? 'none'} before the dial; warm first byte ${warmFirst.toFixed(1)} ms; CPU sender ${r.cpu.from}% receiver ${r.cpu.to}%; path ${r.pathFrom?.pathType}, packet size ${size?.mtu} (${size?.mtuState})`,
          path: pathOf(b1),
        };
      };
      for (let rep = 0; rep < reps; rep++) {
        const order = rep % 2 ? [...METHODS].reverse() : METHODS;
        const line: string[] = [];
        for (const m of order) {
          const s = await measure(m, rep).catch((err: Error) => {
            log(`${place.name} ${m} rep ${rep + 1}: ${err.message}`);
            return undefined;
          });
          if (!s) continue;
          const k = `${place.name}|${m}`;
          results.set(k, [...(results.get(k) ?? []), s]);
          line.push(`${m} ${fmt(s.mbps)} MB/s, first byte ${s.firstByteMs.toFixed(1)} ms (${s.path}${s.extra ? `; ${s.extra}` : ''})`);
        }
        log(`${place.name} rep ${rep + 1}: ${line.join(' | ')}`);
      }
      loads.push(`${place.name}: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    }

    // ------------------------------------------------------------ report
    const median = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor((v.length - 1) / 2)] ?? NaN;
    const med = (place: string, m: Method, f: (s: Sample) => number): number | undefined => {
      const v = results.get(`${place}|${m}`);
      return v?.length ? median(v.map(f)) : undefined;
    };
    const cell = (x: number | undefined): string => (x === undefined ? 'n/a' : fmt(x));
    const ms = (x: number | undefined): string => (x === undefined ? 'n/a' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
    const ratio = (x: number | undefined, y: number | undefined): string => (x === undefined || y === undefined ? 'n/a' : `${(x / y).toFixed(2)}x`);
    const ver = (pkg: string): string =>
      (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
    console.log(`# Pilot side by side with Hyperswarm (${new Date().toISOString()})`);
    console.log('');
    console.log(`${machine()}; hyperswarm ${ver('hyperswarm')}, hyperdht ${ver('hyperdht')}, udx-native ${ver('udx-native')}`);
    console.log(
      `${reps} interleaved reps (median shown), ${mb} MiB per bulk run, MB/s = 10^6 bytes/s received and confirmed by the receiving application; load (1/5/15 min) after each place: ${loads.join('; ')}`,
    );
    console.log('');
    console.log('| where | Pilot `pilotctl bench` | Hyperswarm | raw TCP | Pilot / Hyperswarm | Pilot / TCP | Hyperswarm / TCP |');
    console.log('|---|---|---|---|---|---|---|');
    for (const p of placesDone) {
      const [t, pi, h] = (['tcp', 'pilot', 'hyperswarm'] as const).map((m) => med(p.name, m, (s) => s.mbps));
      console.log(`| ${p.name} | ${cell(pi)} MB/s | ${cell(h)} MB/s | ${cell(t)} MB/s | ${ratio(pi, h)} | ${ratio(pi, t)} | ${ratio(h, t)} |`);
    }
    console.log('');
    console.log('Connection setup, ms from the dial to the receiving application answering the first byte (median):');
    console.log('');
    console.log('| where | Pilot, new pair (no session) | Pilot, session up | Hyperswarm (new connection: lookup, Noise, punch) | raw TCP |');
    console.log('|---|---|---|---|---|');
    for (const p of placesDone) {
      const cold = pilotCold.get(p.name);
      const w = pilotWarmFirst.get(p.name);
      console.log(
        `| ${p.name} | ${ms(cold && median(cold))} | ${ms(w && median(w))} | ${ms(med(p.name, 'hyperswarm', (s) => s.firstByteMs))} | ${ms(med(p.name, 'tcp', (s) => s.firstByteMs))} |`,
      );
    }
    console.log('');
    console.log('Runs (path from the sending router iptables counters in the NAT lab):');
    for (const p of placesDone)
      for (const m of METHODS) {
        const v = results.get(`${p.name}|${m}`) ?? [];
        for (const s of v)
          console.log(`- ${p.name} ${m}: ${fmt(s.mbps)} MB/s, first byte ${s.firstByteMs.toFixed(1)} ms, ${s.path}${s.extra ? `; ${s.extra}` : ''}`);
      }
    console.log(`\nrun took ${((performance.now() - T0) / 1000).toFixed(0)} s`);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    const pids = new Map<number, string>(agents.map((a) => [a.pid, `daemon ${a.name}`] as [number, string]));
    await Promise.all(agents.map((a) => a.stop()));
    await Promise.all(rdvs.map((r) => r.kill()));
    if (profDir) {
      await new Promise((r) => setTimeout(r, 1000)); // profiles are written at exit
      for (const f of fs.readdirSync(profDir)) {
        // CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile; the others are `pilotctl daemon start` itself.
        const who = pids.get(Number(f.split('.')[3]));
        if (who) console.log(`\n## CPU profile: ${who}\n\n${topSelfTime(path.join(profDir, f), 25)}`);
      }
    }
    for (const l of labs) l.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** startHelper for a plain namespace (no NatLab): this file in a role inside `ns`, until it prints "ready". */
function startHelperNs(ns: string, args: string[]): Promise<ChildProcess> {
  const inNs = { spawn: (n: string, argv: string[]) => spawn('ip', ['netns', 'exec', n, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] }) };
  return startHelper(inNs, SELF, ns, args);
}

/** A helper role's failure as its last stderr line (what runHelper reports), not Node's version banner. */
const roleFailed = (err: Error): never => {
  console.error(err.stack);
  console.error(`${err.name}: ${err.message}${(err as { code?: string }).code ? ` (${(err as { code?: string }).code})` : ''}`);
  process.exit(1);
};
const [role, ...args] = process.argv.slice(2);
if (role === '--dht') await dhtRole(args[0]!, Number(args[1])).catch(roleFailed);
else if (role === '--hs-sink') await hsSinkRole(args[0]!, args[1]!).catch(roleFailed);
else if (role === '--hs-client') await hsClientRole(args[0]!, args[1]!, Number(args[2])).catch(roleFailed);
else if (role === '--tcp-sink') tcpSinkRole(Number(args[0]));
else if (role === '--tcp-client') await tcpClientRole(args[0]!, Number(args[1]), Number(args[2])).catch(roleFailed);
else if (role === undefined) {
  await main();
  process.exit(process.exitCode ?? 0);
} else {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
