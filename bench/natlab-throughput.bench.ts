// Throughput across the NAT lab (real netfilter NAT in network namespaces), with
// the references measured in the same run on the same namespaces and routers:
//   1. Pilot stream, direct path: agent behind a cone NAT (MASQUERADE) -> agent on
//      the public bridge (`pilotctl bench`: the daemon streams into the peer's sink, port 9)
//   2. raw TCP, same two namespaces, same router, same byte count (NATed side connects out)
//   3. raw UDP, same two namespaces, same router: 1200-byte datagrams blasted for a fixed
//      time, no congestion control; sent vs received and loss
//   4. Pilot stream relayed by the rendezvous: symmetric x symmetric (MASQUERADE
//      --random-fully: no punch, relay over the UDP uplink) and udp-blocked x udp-blocked
//      (routers drop forwarded UDP: relay over the TCP uplink). The rendezvous runs with
//      a high --relay-rate so the figure is the relay's, not its per-node limiter's.
// Needs root (network namespaces, iptables, conntrack); prints why and exits 0 otherwise.
// Everything runs inside namespaces this run creates; they are removed at the end, on
// failure, and on SIGINT/SIGTERM (test/helpers/netns.ts).
//
// Env: BENCH_NATLAB_MB       stream / TCP size in MiB (default 50)
//      BENCH_NATLAB_RELAY_MB relayed stream size in MiB (default: BENCH_NATLAB_MB)
//      BENCH_NATLAB_UDP_SECS raw UDP blast duration in seconds (default 3)
//      BENCH_NATLAB_RELAY_RATE rendezvous --relay-rate in bytes/s per sending node (default 1e9)
//      BENCH_NATLAB_REPS     runs of each stream measurement, median reported (default 3; raw TCP
//                            does 3 transfers per run: one 50 MiB transfer takes ~0.1 s)
//      BENCH_NATLAB_WARM_MB  warm-up stream per pair before measuring (default 10)
//
// The helper roles (--tcp-sink, --tcp-send, --udp-sink, --udp-send) are this file run again
// inside a namespace.
import { spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, ROOT, startRendezvous, tmpDir, type Rendezvous } from '../test/helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP, type Host } from '../test/helpers/natlab.ts';
import {
  env as envOr,
  fmt,
  lastRouter,
  median,
  pilotStream,
  relayCounters as relayCountersAt,
  runHelper as runHelperOf,
  startHelper as startHelperOf,
  type StreamResult,
  warm,
} from './natlab-kit.ts';
import { machine, MiB } from './stats.ts';
import { createCountingSink } from './tcp-sink.ts';

const SELF = fileURLToPath(import.meta.url);
const DGRAM = 1200;
const TCP_PORT = 5201;
const UDP_PORT = 5202;
const RDV_PORT = 9000;
const RDV_HTTP = '127.0.0.1:9080';
/** The rendezvous default (src/rendezvous/relay.ts DEFAULT_RELAY_RATE; pilot-rendezvous --relay-rate). */
const DEFAULT_RELAY_RATE = 2_000_000;

// ---------------------------------------------------------------- helper roles

interface TcpSendOut {
  bytes: number;
  acked: number;
  seconds: number;
  cpuSeconds: number;
  mbps: number;
}
interface UdpSendOut {
  packets: number;
  bytes: number;
  seconds: number;
  errors: number;
  cpuSeconds: number;
}
interface UdpSinkOut {
  packets: number;
  bytes: number;
  /** First to last datagram received. */
  spanSeconds: number;
  cpuSeconds: number;
}

const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Discard sink like the daemon's port 9: read to FIN, answer with the byte count (u64). */
function tcpSink(port: number): void {
  const server = createCountingSink();
  server.listen(port, '0.0.0.0', () => process.stdout.write('ready\n'));
}

/** `times` transfers, one connection each; one JSON line per transfer. */
async function tcpSendTimes(host: string, port: number, total: number, times: number): Promise<void> {
  for (let i = 0; i < times; i++) await tcpSend(host, port, total);
}

/** Like `pilotctl bench`: clock from connected to the sink's count, 64 KiB random chunks. */
async function tcpSend(host: string, port: number, total: number): Promise<void> {
  const c0 = cpuNow();
  const sock = net.connect(port, host);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const t0 = process.hrtime.bigint();
  const chunks: Buffer[] = [];
  const replied = new Promise<void>((resolve, reject) => {
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', resolve);
    sock.on('error', reject);
  });
  const chunk = crypto.randomBytes(64 * 1024);
  for (let sent = 0; sent < total; ) {
    const n = Math.min(chunk.length, total - sent);
    sent += n;
    if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await new Promise((r) => sock.once('drain', r));
  }
  sock.end();
  await replied;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const reply = Buffer.concat(chunks);
  const out: TcpSendOut = {
    bytes: total,
    acked: reply.length >= 8 ? Number(reply.readBigUInt64BE(0)) : -1,
    seconds,
    cpuSeconds: cpuNow() - c0,
    mbps: total / 1e6 / seconds,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  sock.destroy();
}

/** Counts datagrams until "report" on stdin, then prints the count and exits. */
function udpSink(port: number): void {
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  let packets = 0;
  let bytes = 0;
  let first = 0n;
  let last = 0n;
  let c0 = 0;
  sock.on('message', (m: Buffer) => {
    last = process.hrtime.bigint();
    if (packets === 0) {
      first = last;
      c0 = cpuNow();
    }
    packets++;
    bytes += m.length;
  });
  sock.bind(port, '0.0.0.0', () => process.stdout.write('ready\n'));
  process.stdin.on('data', () => {
    const out: UdpSinkOut = { packets, bytes, spanSeconds: Number(last - first) / 1e9, cpuSeconds: packets ? cpuNow() - c0 : 0 };
    process.stdout.write(`${JSON.stringify(out)}\n`);
    sock.close();
    process.exit(0);
  });
}

/** Blast DGRAM-byte datagrams for `secs`, at most 64 sends in flight (what the kernel takes). */
async function udpSend(host: string, port: number, secs: number): Promise<void> {
  const sock = dgram.createSocket({ type: 'udp4', sendBufferSize: 8 << 20 });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.connect(port, host, () => resolve());
  });
  const payload = crypto.randomBytes(DGRAM);
  const c0 = cpuNow();
  let packets = 0;
  let errors = 0;
  let inflight = 0;
  let stopped = false;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (!stopped && performance.now() - t0 >= secs * 1000) stopped = true;
      while (!stopped && inflight < 64) {
        inflight++;
        sock.send(payload, done);
      }
      if (stopped && inflight === 0) resolve();
    };
    const done = (err: Error | null): void => {
      inflight--;
      if (err) errors++;
      else packets++;
      pump();
    };
    pump();
  });
  const out: UdpSendOut = { packets, bytes: packets * DGRAM, seconds: (performance.now() - t0) / 1000, errors, cpuSeconds: cpuNow() - c0 };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  sock.close();
}

// ---------------------------------------------------------------- orchestration

const env = (name: string, dflt: number): number => {
  const v = envOr(name, dflt);
  if (v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const startHelper = (lab: NatLab, ns: string, args: string[]): Promise<ChildProcess> => startHelperOf(lab, SELF, ns, args);
const runHelper = <T>(ns: string, args: string[], timeoutMs: number): Promise<T[]> => runHelperOf<T>(SELF, ns, args, timeoutMs);
const relayCounters = (lab: NatLab): Record<string, number> => relayCountersAt(lab, RDV_HTTP);

/** UDP error counters of a namespace's kernel (/proc/net/snmp is per network namespace). */
function udpSnmp(lab: NatLab, ns: string): Record<string, number> {
  const lines = lab
    .exec(ns, ['cat', '/proc/net/snmp'])
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const keys = lines[0]!.split(/\s+/).slice(1);
  const vals = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i]!]));
}

const SNMP_ERRORS = ['RcvbufErrors', 'SndbufErrors', 'InErrors'];

function snmpDelta(a: Record<string, number>, b: Record<string, number>): string {
  return snmpText(Object.fromEntries(SNMP_ERRORS.map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)])));
}

function snmpText(d: Record<string, number>): string {
  const e = SNMP_ERRORS.filter((k) => (d[k] ?? 0) > 0);
  return e.length ? e.map((k) => `${k} +${d[k]}`).join(', ') : 'no UDP socket errors';
}

/** Adds the UDP error counters `ns`'s kernel counted while `fn` ran to `into`. */
async function countingUdpErrors<T>(lab: NatLab, ns: string, into: Record<string, number>, fn: () => Promise<T>): Promise<T> {
  const a = udpSnmp(lab, ns);
  const r = await fn();
  const b = udpSnmp(lab, ns);
  for (const k of SNMP_ERRORS) into[k] = (into[k] ?? 0) + (b[k] ?? 0) - (a[k] ?? 0);
  return r;
}

async function main(): Promise<void> {
  const support = natLabSupport();
  if (!support.ok) {
    console.log(`NAT lab throughput skipped: ${support.reason}`);
    return;
  }
  if (spawnSync('which', ['curl']).status !== 0) console.error('(no curl: rendezvous relay counters will be missing)');
  const streamBytes = Math.round(env('BENCH_NATLAB_MB', 50) * MiB);
  const relayBytes = Math.round(env('BENCH_NATLAB_RELAY_MB', streamBytes / MiB) * MiB);
  const udpSecs = env('BENCH_NATLAB_UDP_SECS', 3);
  const relayRate = env('BENCH_NATLAB_RELAY_RATE', 1e9);
  const reps = Math.round(env('BENCH_NATLAB_REPS', 3));
  const tcpPerRep = 3;
  const warmMb = env('BENCH_NATLAB_WARM_MB', 10);
  const log = (s: string): void => console.error(`[${((performance.now() - T0) / 1000).toFixed(1)}s] ${s}`);
  const T0 = performance.now();

  const lab = new NatLab();
  const work = tmpDir('pilot-natlab-tput-');
  process.on('exit', () => fs.rmSync(work, { recursive: true, force: true })); // also after SIGINT (netns.ts exits)
  const agents: Agent[] = [];
  const helpers: ChildProcess[] = [];
  let rdv: Rendezvous | undefined;
  try {
    const pub = lab.addSite('public', 'pub').hosts[0]!;
    const cone = lab.addSite('cone', 'cone').hosts[0]!;
    const sym1 = lab.addSite('symmetric', 'sym1').hosts[0]!;
    const sym2 = lab.addSite('symmetric', 'sym2').hosts[0]!;
    const blk1 = lab.addSite('udp-blocked', 'blk1').hosts[0]!;
    const blk2 = lab.addSite('udp-blocked', 'blk2').hosts[0]!;
    rdv = await startRendezvous({
      netns: lab.rendezvous.ns,
      listen: `${RENDEZVOUS_IP}:${RDV_PORT}`,
      dataDir: path.join(work, 'rendezvous'),
      args: ['--relay-rate', String(relayRate), '--http', RDV_HTTP],
    });
    const hosts = [pub, cone, sym1, sym2, blk1, blk2];
    const started = await Promise.all(
      hosts.map(async (h, i) => {
        await new Promise((r) => setTimeout(r, i * 150)); // stagger: 2 cores
        const a = new Agent(h.name, work, h.ns);
        agents.push(a);
        await a.start(['--registry', `${RENDEZVOUS_IP}:${RDV_PORT}`, '--email', `${h.name}@example.com`, '--hostname', h.name, '--listen', '0.0.0.0:0']);
        return a;
      }),
    );
    const [aPub, aCone, aSym1, aSym2, aBlk1, aBlk2] = started as [Agent, Agent, Agent, Agent, Agent, Agent];
    log(`lab, rendezvous (--relay-rate ${relayRate}) and ${agents.length} agents up`);
    const [rttDirect, rttSym, rttBlk] = await Promise.all([warm(aCone, aPub, warmMb), warm(aSym1, aSym2, warmMb), warm(aBlk1, aBlk2, warmMb)]);
    log('trusted and warm: cone -> pub, sym1 -> sym2, blk1 -> blk2');

    // 1 + 2. Pilot direct and raw TCP, cone -> public through the same router, alternating.
    const coneRouter = lastRouter(cone);
    const tcpSinkP = await startHelper(lab, pub.ns, ['--tcp-sink', String(TCP_PORT)]);
    helpers.push(tcpSinkP);
    const directRuns: StreamResult[] = [];
    const tcpRuns: TcpSendOut[] = [];
    const directErrRx: Record<string, number> = {};
    const directErrTx: Record<string, number> = {};
    const k0 = lab.udpBytesWith(coneRouter, pub.ip);
    for (let i = 0; i < reps; i++) {
      const d = await countingUdpErrors(lab, cone.ns, directErrTx, () =>
        countingUdpErrors(lab, pub.ns, directErrRx, () => pilotStream(aCone, aPub, rdv!, streamBytes)),
      );
      directRuns.push(d);
      const ts = await runHelper<TcpSendOut>(cone.ns, ['--tcp-send', pub.ip, String(TCP_PORT), String(streamBytes), String(tcpPerRep)], 120_000);
      for (const t of ts) if (t.acked !== streamBytes) throw new Error(`TCP sink confirmed ${t.acked} of ${streamBytes} bytes`);
      tcpRuns.push(...ts);
      log(`pilot direct ${fmt(d.mbps)} MB/s, raw TCP ${ts.map((t) => fmt(t.mbps)).join(', ')} MB/s`);
    }
    const kernelDirect = lab.udpBytesWith(coneRouter, pub.ip) - k0; // TCP is not UDP: Pilot's bytes only
    tcpSinkP.kill();
    const direct = median(directRuns);
    const tcp = median(tcpRuns);

    // 3. Raw UDP through the same router.
    const snmpRx0 = udpSnmp(lab, pub.ns);
    const snmpTx0 = udpSnmp(lab, cone.ns);
    const udpSinkP = await startHelper(lab, pub.ns, ['--udp-sink', String(UDP_PORT)]);
    helpers.push(udpSinkP);
    const [udpSent] = (await runHelper<UdpSendOut>(cone.ns, ['--udp-send', pub.ip, String(UDP_PORT), String(udpSecs)], (udpSecs + 30) * 1000)) as [UdpSendOut];
    await new Promise((r) => setTimeout(r, 300)); // the tail lands
    const udpGot = await new Promise<UdpSinkOut>((resolve, reject) => {
      let buf = '';
      udpSinkP.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        const line = buf.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line) as UdpSinkOut);
      });
      udpSinkP.once('exit', (code) => reject(new Error(`udp sink exited ${code}`)));
      udpSinkP.stdin!.write('report\n');
    });
    const snmpRx1 = udpSnmp(lab, pub.ns);
    const udpRxErr = snmpDelta(snmpRx0, snmpRx1);
    const udpRcvbuf = (snmpRx1.RcvbufErrors ?? 0) - (snmpRx0.RcvbufErrors ?? 0);
    const udpTxErr = snmpDelta(snmpTx0, udpSnmp(lab, cone.ns));
    const udpSentMbps = udpSent.bytes / 1e6 / udpSent.seconds;
    const udpGotMbps = udpGot.bytes / 1e6 / udpSent.seconds;
    const udpLoss = udpSent.packets ? (1 - udpGot.packets / udpSent.packets) * 100 : 0;
    log(`raw UDP: sent ${fmt(udpSentMbps)} MB/s, received ${fmt(udpGotMbps)} MB/s, loss ${udpLoss.toFixed(1)}%`);

    // 4. Relayed: sym x sym (UDP uplink), blk x blk (TCP uplink), alternating.
    interface Relayed {
      name: string;
      from: Agent;
      to: Agent;
      hf: Host;
      ht: Host;
      idleRtt: number;
      runs: StreamResult[];
      /** Summed over the runs. */
      counters: Record<string, number>;
      seconds: number;
      directUdp: number;
      /** UDP socket errors in the rendezvous's and the receiver's namespaces during the runs. */
      rdvErr: Record<string, number>;
      rxErr: Record<string, number>;
    }
    const relayed: Relayed[] = [
      {
        name: 'symmetric -> symmetric',
        from: aSym1,
        to: aSym2,
        hf: sym1,
        ht: sym2,
        idleRtt: rttSym,
        runs: [],
        counters: {},
        seconds: 0,
        directUdp: 0,
        rdvErr: {},
        rxErr: {},
      },
      {
        name: 'udp-blocked -> udp-blocked',
        from: aBlk1,
        to: aBlk2,
        hf: blk1,
        ht: blk2,
        idleRtt: rttBlk,
        runs: [],
        counters: {},
        seconds: 0,
        directUdp: 0,
        rdvErr: {},
        rxErr: {},
      },
    ];
    for (let i = 0; i < reps; i++) {
      for (const c of relayed) {
        const rc0 = relayCounters(lab);
        // UDP straight between the two routers' public addresses (would mean a punched path).
        const d0 = lab.udpBytesWith(lastRouter(c.hf), lastRouter(c.ht).publicIp);
        const r = await countingUdpErrors(lab, lab.rendezvous.ns, c.rdvErr, () =>
          countingUdpErrors(lab, c.ht.ns, c.rxErr, () => pilotStream(c.from, c.to, rdv!, relayBytes)),
        );
        c.directUdp += lab.udpBytesWith(lastRouter(c.hf), lastRouter(c.ht).publicIp) - d0;
        const rc1 = relayCounters(lab);
        for (const k of Object.keys(rc1)) c.counters[k] = (c.counters[k] ?? 0) + rc1[k]! - (rc0[k] ?? 0);
        c.seconds += r.seconds;
        c.runs.push(r);
        log(`relay ${c.name}: ${fmt(r.mbps)} MB/s`);
      }
    }
    const [relUdp, relTcp] = relayed.map((c) => median(c.runs)) as [StreamResult, StreamResult];

    // ------------------------------------------------------------ report
    const pathOf = (r: StreamResult): string => {
      const p = r.pathFrom;
      if (!p) return 'none';
      if (p.pathType === 'direct') return `direct ${p.endpoint}`;
      if (p.pathType === 'relay') return `relay (uplink ${p.relay}${r.pathTo?.relay && r.pathTo.relay !== p.relay ? `, peer ${r.pathTo.relay}` : ''})`;
      return p.pathType;
    };
    const cpuOf = (r: StreamResult, rdvToo: boolean): string =>
      `CPU sender ${r.cpu.from}% / receiver ${r.cpu.to}%${rdvToo ? ` / rendezvous ${r.cpu.rdv}%` : ''}`;
    const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const ipt = spawnSync('iptables', ['--version'], { encoding: 'utf8' }).stdout.trim();
    const relayPps = (c: Relayed): string =>
      c.counters.packets_total
        ? `${Math.round(c.counters.packets_total / c.seconds).toLocaleString('en')} pkt/s forwarded (both directions, ACKs included; avg over the runs), ${c.counters.bytes_total ? Math.round(c.counters.bytes_total / c.counters.packets_total) : '?'} B/pkt`
        : 'relay counters n/a';
    const drops = (c: Relayed): string => {
      const d = Object.entries(c.counters).filter(([k, v]) => k.startsWith('dropped:') && v > 0);
      return d.length ? d.map(([k, v]) => `dropped ${k.slice(8)} ${v}`).join(', ') : 'no relay drops';
    };
    const runsOf = (v: { mbps: number }[]): string => (v.length > 1 ? ` (runs ${v.map((x) => fmt(x.mbps)).join(', ')})` : '');
    const rangeOf = (v: { mbps: number }[]): string => {
      const m = v.map((x) => x.mbps);
      return ` (median of ${v.length}, ${fmt(Math.min(...m))}-${fmt(Math.max(...m))})`;
    };

    console.log(`# NAT lab throughput (${new Date().toISOString()})`);
    console.log('');
    console.log(`${machine()}; pilot-overlay ${version}; ${ipt}; lab: veth + bridges in network namespaces, netfilter NAT`);
    console.log(
      `Sizes: stream/TCP ${streamBytes / MiB} MiB one way, relayed ${relayBytes / MiB} MiB, ${reps} run(s) each (median shown; runs alternate Pilot / ${tcpPerRep} raw TCP transfers, and UDP relay / TCP relay), after a ${warmMb} MiB warm-up stream per pair; UDP blast ${udpSecs} s of ${DGRAM}-byte datagrams. MB = 10^6 bytes (payload).`,
    );
    console.log(
      `Rendezvous relay limit for this run: --relay-rate ${relayRate} B/s per sending node (default ${DEFAULT_RELAY_RATE.toLocaleString('en')} B/s = ${DEFAULT_RELAY_RATE / 1e6} MB/s, burst half of it).`,
    );
    console.log('');
    console.log('| what | path | MB/s | reference in the same run |');
    console.log('|---|---|---|---|');
    console.log(
      `| Pilot stream cone NAT -> public (pilotctl bench) | ${pathOf(direct)} | ${fmt(direct.mbps)}${runsOf(directRuns)} | ${((direct.mbps / tcp.mbps) * 100).toFixed(0)}% of raw TCP on the same path |`,
    );
    console.log(
      `| raw TCP cone NAT -> public (Node net, kernel TCP) | through the same MASQUERADE router | ${fmt(tcp.mbps)}${rangeOf(tcpRuns)} | reference for the line above |`,
    );
    console.log(
      `| raw UDP cone NAT -> public, ${DGRAM}-byte datagrams, no congestion control | through the same MASQUERADE router | ${fmt(udpGotMbps)} received (${fmt(udpSentMbps)} sent) | loss ${udpLoss.toFixed(1)}%; ${fmt(udpGot.packets / udpSent.seconds / 1000)}k datagrams/s received |`,
    );
    console.log(
      `| Pilot stream symmetric -> symmetric (pilotctl bench) | ${pathOf(relUdp)} | ${fmt(relUdp.mbps)}${runsOf(relayed[0]!.runs)} | ${((relUdp.mbps / direct.mbps) * 100).toFixed(0)}% of Pilot direct; the default relay limit would cap it at ${DEFAULT_RELAY_RATE / 1e6} MB/s |`,
    );
    console.log(
      `| Pilot stream udp-blocked -> udp-blocked (pilotctl bench) | ${pathOf(relTcp)} | ${fmt(relTcp.mbps)}${runsOf(relayed[1]!.runs)} | ${((relTcp.mbps / direct.mbps) * 100).toFixed(0)}% of Pilot direct; the default relay limit would cap it at ${DEFAULT_RELAY_RATE / 1e6} MB/s |`,
    );
    console.log('');
    console.log('Details (median run):');
    console.log(
      `- direct: ${fmt(direct.bytes / MiB)} MiB in ${direct.seconds.toFixed(2)} s; ${cpuOf(direct, false)}; cone router conntrack saw ${(kernelDirect / 1e6).toFixed(1)} MB of UDP between ${coneRouter.publicIp} and ${pub.ip} over the ${reps} run(s) (direct, not via the rendezvous); UDP socket errors over the Pilot runs: receiver kernel ${snmpText(directErrRx)}, sender kernel ${snmpText(directErrTx)}; receiver sees ${direct.pathTo ? pathOf({ ...direct, pathFrom: direct.pathTo }) : 'none'}; idle ping ${rttDirect.toFixed(2)} ms, srtt after the transfer ${direct.pathFrom?.rttMs?.toFixed(2) ?? '?'} ms`,
    );
    console.log(`- raw TCP: ${fmt(tcp.bytes / MiB)} MiB in ${tcp.seconds.toFixed(2)} s, sender CPU ${Math.round((tcp.cpuSeconds / tcp.seconds) * 100)}%`);
    console.log(
      `- raw UDP: sent ${udpSent.packets.toLocaleString('en')} datagrams in ${udpSent.seconds.toFixed(2)} s (${udpSent.errors} send errors), received ${udpGot.packets.toLocaleString('en')} (first to last ${udpGot.spanSeconds.toFixed(2)} s); sender CPU ${Math.round((udpSent.cpuSeconds / udpSent.seconds) * 100)}%, receiver CPU ${Math.round((udpGot.cpuSeconds / Math.max(udpGot.spanSeconds, 0.001)) * 100)}%; receiver kernel: ${udpRxErr}; sender kernel: ${udpTxErr}; lost on the way (not counted by the receiver's kernel): ${Math.max(0, udpSent.packets - udpGot.packets - udpRcvbuf).toLocaleString('en')}. No congestion control: the sender sends what its socket takes; RcvbufErrors = the receiving process did not keep up.`,
    );
    relayed.forEach((c, i) => {
      const r = i === 0 ? relUdp : relTcp;
      console.log(
        `- relay ${c.name}: ${fmt(r.bytes / MiB)} MiB in ${r.seconds.toFixed(2)} s; ${cpuOf(r, true)}; ${relayPps(c)}; ${drops(c)}; rendezvous kernel (all ${reps} runs): ${snmpText(c.rdvErr)}; receiver kernel: ${snmpText(c.rxErr)}; router-to-router UDP during the transfers ${(c.directUdp / 1e3).toFixed(1)} kB (nothing punched); idle ping ${c.idleRtt.toFixed(2)} ms, srtt after the transfer ${r.pathFrom?.rttMs?.toFixed(2) ?? '?'} ms`,
      );
    });
    console.log(`\nrun took ${((performance.now() - T0) / 1000).toFixed(1)} s`);
    const problems: string[] = [];
    for (const r of directRuns)
      if (r.pathFrom?.pathType !== 'direct' || r.pathTo?.pathType !== 'direct')
        problems.push(`cone x public is not direct (${r.pathFrom?.pathType}/${r.pathTo?.pathType})`);
    for (const r of relayed[0]!.runs)
      if (r.pathFrom?.pathType !== 'relay' || r.pathFrom.relay !== 'udp' || r.pathTo?.relay !== 'udp')
        problems.push(`symmetric x symmetric is not relay over UDP (${pathOf(r)})`);
    for (const r of relayed[1]!.runs)
      if (r.pathFrom?.pathType !== 'relay' || r.pathFrom.relay !== 'tcp' || r.pathTo?.relay !== 'tcp')
        problems.push(`udp-blocked x udp-blocked is not relay over TCP (${pathOf(r)})`);
    if (problems.length) {
      console.log(`\nWARNING: ${problems.join('; ')}`);
      process.exitCode = 1;
    }
  } finally {
    for (const h of helpers) h.kill();
    await Promise.all(agents.map((a) => a.stop()));
    await rdv?.kill();
    lab.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const [role, ...args] = process.argv.slice(2);
if (role === '--tcp-sink') tcpSink(Number(args[0]));
else if (role === '--tcp-send') await tcpSendTimes(args[0]!, Number(args[1]), Number(args[2]), Number(args[3] ?? 1));
else if (role === '--udp-sink') udpSink(Number(args[0]));
else if (role === '--udp-send') await udpSend(args[0]!, Number(args[1]), Number(args[2]));
else if (role === undefined) {
  await main();
  process.exit(process.exitCode ?? 0);
} else {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
