// Where the relayed path's CPU per MB goes (issue 20), packet by packet: the gateway (iperf3
// through `pilotctl expose` + `pilotctl gateway`) on a direct pair (cone x cone) and on a relayed
// one (symmetric x symmetric) in one NAT lab, reps interleaved, with per-MB figures from the
// daemons' own counters, the rendezvous's /metrics and the sending router's iptables counters:
//
//   CPU ms/MB   sender / receiver / rendezvous (/proc utime + stime), and the kernel's share (stime)
//   pkts/MB     UDP datagrams the sender's router forwarded toward the far end (the peer's router
//               or the rendezvous), per MB delivered; B/pkt their mean IP size (what the path
//               MTU settled at)
//   gso         packets per GSO sendmsg at the sender; acks/data: datagrams back per datagram out
//   rx batch    datagrams per recvmmsg batch at the receiver; relay pkts/MB at the rendezvous, and
//               how its sends left: packets per GSO sendmsg, plain (one-packet) sends per relayed packet
//
// With BENCH_RELAY_PATH_BASE=<another checkout> (`git archive <commit> | tar -x -C dir`, with
// node_modules and build/ linked in) a second relayed pair runs its daemons from that tree, in
// the same lab, through the same rendezvous (this tree's), its reps interleaved with this tree's:
// a same-run A/B of the daemons' relay path.
//
// Root only (network namespaces); prints why and exits 0 otherwise.
// Env: BENCH_RELAY_PATH_SECS (iperf3 seconds, default 4), BENCH_RELAY_PATH_REPS (default 3),
//      BENCH_RELAY_PATH_BASE (see above), BENCH_RELAY_PATH_STRACE=sender|rdv: `strace -c -f` the
//      relayed pair's sending daemon or the rendezvous during the last rep; BENCH_RELAY_PATH_PROF=<dir>:
//      the rendezvous runs under node --cpu-prof, its hottest functions printed at the end.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, type Rendezvous, run, startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { type Host, NatLab, natLabSupport, RENDEZVOUS_IP, type Router } from '../test/helpers/natlab.ts';
import { env, fmt, lastRouter, must, RootAgent, warm } from './natlab-kit.ts';
import { topSelfTime } from './load/cpuprofile-top.ts';
import { cpuSeconds } from './stats.ts';

const IPERF_PORT = 5201;
const RDV_HTTP = '127.0.0.1:9080';
const secs = env('BENCH_RELAY_PATH_SECS', 4);
const reps = env('BENCH_RELAY_PATH_REPS', 3);
const straceWho = process.env.BENCH_RELAY_PATH_STRACE;
const PROF = process.env.BENCH_RELAY_PATH_PROF ? path.resolve(process.env.BENCH_RELAY_PATH_PROF) : '';
const BASE = process.env.BENCH_RELAY_PATH_BASE ? path.resolve(process.env.BENCH_RELAY_PATH_BASE) : '';
const log = (s: string): void => console.error(`[${(performance.now() / 1000).toFixed(1)}s] ${s}`);

const support = natLabSupport();
if (!support.ok || spawnSync('which', ['iperf3']).status !== 0) {
  console.log(`relay-path: skipped (${support.ok ? 'needs iperf3' : support.reason})`);
  process.exit(0);
}

type Counters = Record<string, number>;

/** UDP packets and bytes per "<ip> out|in" (out: toward ip) counted by the router's PEERACCT rules (countBytesWith). */
function routerCounts(lab: NatLab, r: Router): Counters {
  const out: Counters = {};
  for (const line of lab.exec(r.ns, ['iptables', '-L', 'PEERACCT', '-v', '-x', '-n']).split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(udp|17)\s+--\s+\S+\s+\S+\s+(\S+)\s+(\S+)/.exec(line);
    if (!m) continue;
    const dir = m[4] === '0.0.0.0/0' ? 'out' : 'in';
    const ip = dir === 'out' ? m[5]! : m[4]!;
    out[`${ip} ${dir} pkts`] = (out[`${ip} ${dir} pkts`] ?? 0) + Number(m[1]);
    out[`${ip} ${dir} bytes`] = (out[`${ip} ${dir} bytes`] ?? 0) + Number(m[2]);
  }
  return out;
}

const daemonCounters = async (a: Agent): Promise<Counters> => (await a.ipc<{ daemon: Counters }>('stats')).daemon;

/** The rendezvous's relayed packets and how its UDP sends left (GSO batches, their packets, plain sends). */
function rdvCounters(lab: NatLab): Counters {
  const r = lab.exec(lab.rendezvous.ns, ['curl', '-s', '--max-time', '3', `http://${RDV_HTTP}/metrics`]);
  const num = (re: RegExp): number => Number(re.exec(r)?.[1] ?? 0);
  return {
    relayed: num(/^pilot_rendezvous_relay_packets_total (\S+)$/m),
    gsoSends: num(/^pilot_rendezvous_udp_sends_total\{kind="gso"\} (\S+)$/m),
    gsoPackets: num(/^pilot_rendezvous_udp_gso_packets_total (\S+)$/m),
    // one-packet sends, through dgram (plain) or the addon (one)
    plain: num(/^pilot_rendezvous_udp_sends_total\{kind="plain"\} (\S+)$/m) + num(/^pilot_rendezvous_udp_sends_total\{kind="one"\} (\S+)$/m),
  };
}

/** System (kernel) CPU seconds of `pid` (stime), next to cpuSeconds' utime + stime. */
function sysSeconds(pid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[12]) / 100;
}

const delta = (a: Counters, b: Counters): Counters => Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

async function iperf(ns: string, ip: string): Promise<number> {
  for (let i = 0; ; i++) {
    const r = await run(['ip', 'netns', 'exec', ns, 'iperf3', '-c', ip, '-p', String(IPERF_PORT), '-t', String(secs), '--json'], {}, (secs + 30) * 1000);
    let j: { error?: string; end?: { sum_received?: { bits_per_second: number } } } = {};
    try {
      j = JSON.parse(r.stdout) as typeof j;
    } catch {
      // no JSON: retried below
    }
    if (j.end?.sum_received) return j.end.sum_received.bits_per_second / 8 / 1e6;
    // the server may still be closing the last test (it serves one at a time)
    if (i >= 5) throw new Error(`iperf3 to ${ip}: ${j.error ?? r.stderr.trim()}`);
    await new Promise((res) => setTimeout(res, 700));
  }
}

interface Pair {
  name: string;
  from: Host;
  a: Agent;
  b: Agent;
  /** The address the sender's router sends the bytes to: the peer's router, or the rendezvous. */
  far: string;
  gwIp: string;
}

interface Row {
  mbps: number;
  cpu: [number, number, number];
  /** The kernel's share (stime / (utime + stime)) of each one's CPU. */
  sys: [number, number, number];
  pktsPerMB: number;
  bytesPerPkt: number;
  gso: number;
  acksPerData: number;
  rxBatch: number;
  relayPerMB: number;
  /** At the rendezvous: packets per GSO send, and plain (one-packet) sends per relayed packet. */
  rdvGso: number;
  rdvPlain: number;
}

const lab = new NatLab();
const work = tmpDir('pilot-relaypath-');
const agents: Agent[] = [];
let rv: Rendezvous | undefined;
try {
  const nodeOptions = process.env.NODE_OPTIONS;
  if (PROF) {
    fs.mkdirSync(PROF, { recursive: true });
    process.env.NODE_OPTIONS = `${nodeOptions ?? ''} --cpu-prof --cpu-prof-dir=${PROF}`.trim();
  }
  rv = await startRendezvous({
    netns: lab.rendezvous.ns,
    listen: `${RENDEZVOUS_IP}:9000`,
    dataDir: path.join(work, 'rendezvous'),
    args: ['--relay-rate', '1e9', '--http', RDV_HTTP],
  });
  if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
  else process.env.NODE_OPTIONS = nodeOptions;
  const start = async (kind: 'cone' | 'symmetric', name: string, root: string): Promise<[Agent, Host]> => {
    const h = lab.addSite(kind, name).hosts[0]!;
    const a = root === '' ? new Agent(h.name, work, h.ns) : new RootAgent(h.name, work, h.ns, root);
    agents.push(a);
    await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${name}@example.com`, '--hostname', name, '--listen', '0.0.0.0:0']);
    return [a, h];
  };
  const specs: [string, 'cone' | 'symmetric', string, string][] = [
    ['cone x cone (direct)', 'cone', 'cn', ''],
    ['symmetric x symmetric (relayed)', 'symmetric', 'sy', ''],
    ...(BASE ? [['symmetric x symmetric (relayed), base tree', 'symmetric', 'sb', BASE] as [string, 'symmetric', string, string]] : []),
  ];
  const pairs: Pair[] = [];
  for (const [name, kind, tag, root] of specs) {
    const [a, from] = await start(kind, `${tag}1`, root);
    const [b, to] = await start(kind, `${tag}2`, root);
    const far = kind === 'cone' ? lastRouter(to).publicIp : RENDEZVOUS_IP;
    lab.countBytesWith(lastRouter(from), [far]);
    await warm(a, b, 20);
    lab.spawn(to.ns, ['iperf3', '-s', '-p', String(IPERF_PORT)]);
    must(await b.ctl(['expose', String(IPERF_PORT), `127.0.0.1:${IPERF_PORT}`]), 'expose');
    const gw = must(await a.ctl(['gateway', 'start', '--subnet', '10.200.0.0/16', '--ports', String(IPERF_PORT), b.address]), 'gateway');
    const p: Pair = { name, from, a, b, far, gwIp: (gw.json.data.mappings as { ip: string }[])[0]!.ip };
    pairs.push(p);
    await iperf(from.ns, p.gwIp); // warm: JIT, windows, the path MTU search
    const v = (await a.ipc<{ peers: { address: string; path: string; mtu: number; mtuState: string }[] }>('peers')).peers.find((x) => x.address === b.address);
    log(`${name}: path ${v?.path}, packets of ${v?.mtu} bytes (path MTU ${v?.mtuState})`);
  }

  const rows = new Map<string, Row[]>();
  for (let rep = 0; rep < reps; rep++) {
    for (const p of rep % 2 === 0 ? pairs : [...pairs].reverse()) {
      const router = lastRouter(p.from);
      const pids = [p.a.pid, p.b.pid, rv.proc.pid!];
      const [da0, db0] = await Promise.all([daemonCounters(p.a), daemonCounters(p.b)]);
      const rc0 = routerCounts(lab, router);
      const rd0 = rdvCounters(lab);
      const c0 = pids.map(cpuSeconds);
      const k0 = pids.map(sysSeconds);
      const straceOut = path.join(work, `strace-${p.from.name}.txt`);
      const strace =
        straceWho && rep === reps - 1 && p.far === RENDEZVOUS_IP
          ? spawn('strace', ['-c', '-f', '-o', straceOut, '-p', String(straceWho === 'rdv' ? rv.proc.pid : p.a.pid)], { stdio: 'ignore' })
          : undefined;
      const mbps = await iperf(p.from.ns, p.gwIp);
      if (strace) {
        strace.kill('SIGINT');
        await new Promise((r) => strace.once('exit', r));
      }
      const c1 = pids.map(cpuSeconds);
      const k1 = pids.map(sysSeconds);
      const [da1, db1] = await Promise.all([daemonCounters(p.a), daemonCounters(p.b)]);
      const rc = delta(rc0, routerCounts(lab, router));
      const rd = delta(rd0, rdvCounters(lab));
      const relayed = rd.relayed ?? 0;
      const da = delta(da0, da1);
      const db = delta(db0, db1);
      const mb = mbps * secs;
      const out = rc[`${p.far} out pkts`] ?? 0;
      const row: Row = {
        mbps,
        cpu: c1.map((x, i) => ((x - c0[i]!) * 1000) / mb) as [number, number, number],
        sys: k1.map((x, i) => (x - k0[i]!) / Math.max(0.01, c1[i]! - c0[i]!)) as [number, number, number],
        pktsPerMB: out / mb,
        bytesPerPkt: (rc[`${p.far} out bytes`] ?? 0) / Math.max(1, out),
        gso: (da.gsoPackets ?? 0) / Math.max(1, da.gsoSends ?? 0),
        acksPerData: (rc[`${p.far} in pkts`] ?? 0) / Math.max(1, out),
        rxBatch: (db.rxBatchPackets ?? 0) / Math.max(1, db.rxBatches ?? 0),
        relayPerMB: relayed / mb,
        rdvGso: (rd.gsoPackets ?? 0) / Math.max(1, rd.gsoSends ?? 0),
        rdvPlain: (rd.plain ?? 0) / Math.max(1, relayed),
      };
      rows.set(p.name, [...(rows.get(p.name) ?? []), row]);
      log(
        `rep ${rep + 1} ${p.name}: ${fmt(mbps)} MB/s, CPU ${row.cpu.map((x) => x.toFixed(1)).join(' / ')} ms/MB (kernel ${row.sys.map((x) => `${Math.round(x * 100)}%`).join(' / ')}), ${row.pktsPerMB.toFixed(0)} pkts/MB of ${row.bytesPerPkt.toFixed(0)} B, ` +
          `gso ${row.gso.toFixed(1)}, acks/data ${row.acksPerData.toFixed(3)}, rx batch ${row.rxBatch.toFixed(1)}, relay ${row.relayPerMB.toFixed(0)} pkts/MB (rendezvous: gso ${row.rdvGso.toFixed(1)}, plain sends per relayed packet ${row.rdvPlain.toFixed(3)})`,
      );
      if (strace && fs.existsSync(straceOut))
        console.log(`strace -c -f (${straceWho}), ${p.name}:\n${fs.readFileSync(straceOut, 'utf8').split('\n').slice(0, 12).join('\n')}`);
    }
  }
  // Datagrams the kernel dropped for want of socket buffer, per namespace (the relay's and each receiver's): loss the overlay did not cause.
  const udpDrops = (ns: string): string => {
    const lines = lab
      .exec(ns, ['cat', '/proc/net/snmp'])
      .split('\n')
      .filter((l) => l.startsWith('Udp:'));
    const [keys, vals] = [lines[0]!.split(/\s+/), lines[1]!.split(/\s+/)];
    return ['InErrors', 'RcvbufErrors', 'SndbufErrors'].map((k) => `${k} ${vals[keys.indexOf(k)]}`).join(', ');
  };
  console.log(
    `\nUDP drops by the kernel over the whole run: rendezvous ${udpDrops(lab.rendezvous.ns)}; ${pairs.map((p) => `${p.name} receiver ${udpDrops(p.b.netns!)}`).join('; ')}`,
  );
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`\nGateway (iperf3 ${secs} s), ${reps} interleaved reps, medians; load ${load}${BASE ? `; base tree ${BASE}` : ''}\n`);
  console.log(
    '| pair | MB/s | CPU ms/MB sender / receiver / rendezvous (sum) | kernel share of each | pkts/MB | B/pkt | pkts per GSO send | acks/data | rx batch | relayed pkts/MB | rendezvous: pkts per GSO send, plain sends per relayed pkt |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const p of pairs) {
    const rs = rows.get(p.name) ?? [];
    if (!rs.length) continue;
    const m = (f: (r: Row) => number): number => med(rs.map(f));
    const cpu = [0, 1, 2].map((i) => m((r) => r.cpu[i]!));
    console.log(
      `| ${p.name} | ${fmt(m((r) => r.mbps))} | ${cpu.map((x) => x.toFixed(1)).join(' / ')} (${m((r) => r.cpu[0] + r.cpu[1] + r.cpu[2]).toFixed(1)}) | ${[0, 1, 2].map((i) => `${Math.round(m((r) => r.sys[i]!) * 100)}%`).join(' / ')} | ${m((r) => r.pktsPerMB).toFixed(0)} | ${m((r) => r.bytesPerPkt).toFixed(0)} | ${m((r) => r.gso).toFixed(1)} | ${m((r) => r.acksPerData).toFixed(3)} | ${m((r) => r.rxBatch).toFixed(1)} | ${m((r) => r.relayPerMB).toFixed(0)} | ${p.far === RENDEZVOUS_IP ? `${m((r) => r.rdvGso).toFixed(1)}, ${m((r) => r.rdvPlain).toFixed(3)}` : 'n/a'} |`,
    );
  }
} finally {
  await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
  const rdvPid = rv?.proc.pid;
  await rv?.kill();
  lab.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
  if (PROF && rdvPid !== undefined) {
    await new Promise((r) => setTimeout(r, 1000)); // written at exit
    for (const f of fs.readdirSync(PROF)) if (f.includes(`.${rdvPid}.`)) console.log(`\n## CPU profile: rendezvous\n\n${topSelfTime(path.join(PROF, f), 25)}`);
  }
}
