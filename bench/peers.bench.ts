// Pilot side by side with Nebula 1.6 and wireguard-go, in one NAT lab (real netfilter NAT in
// network namespaces, test/helpers/natlab.ts), on the same hosts and routers, in one run:
//
//   pairs       cone x cone (direct), cone x public (direct), symmetric x symmetric
//               (Pilot relays through the rendezvous, Nebula through its lighthouse acting as
//               relay; wireguard-go has no NAT traversal and no relay: n/a there; on the two
//               cone pairs it gets fixed endpoints, the routers' public addresses, as people do)
//   throughput  Pilot `pilotctl bench` (stream into the peer's sink); the Pilot gateway
//               (iperf3 through `pilotctl expose` + `pilotctl gateway start`); iperf3 inside
//               Nebula and inside wireguard-go with the application's TCP on BBR and on CUBIC
//               (-C); iperf3 over the underlay (raw TCP through the same routers, a port
//               forward on the receiver's router), BBR and CUBIC
//   loss        0%, then 1% and 5% random loss (iptables -m statistic, both directions) on the
//               sending site's router
//   latency     TCP 1-byte ping-pong through the gateway, through Nebula, through wireguard-go
//               and over the underlay; `pilotctl ping` next to ICMP ping through Nebula / wg
//
// Every measurement is checked against the sending router's iptables byte counters (per
// remote address and protocol): the table says which path carried the bytes (the peer's
// router = direct, the rendezvous = Pilot relay, the lighthouse = Nebula relay).
// Reps are interleaved: every rep runs every method on every pair before the next rep.
//
// Needs root, iptables, conntrack, iperf3, nebula + nebula-cert, wireguard-go + wg
// (apt-get install --no-install-recommends iperf3 nebula wireguard-go wireguard-tools);
// a missing overlay is reported as n/a, a missing lab prints why and exits 0.
//
// Env: BENCH_PEERS_SECS      iperf3 duration per run (default 3)
//      BENCH_PEERS_MB        `pilotctl bench` size in MiB without loss (default 40)
//      BENCH_PEERS_LOSSY_MB  `pilotctl bench` size in MiB under loss (default 15)
//      BENCH_PEERS_REPS      interleaved reps, median shown (default 3)
//      BENCH_PEERS_LOSS      loss levels in % (default "0,1,5")
//      BENCH_PEERS_LOSSY_PAIRS pairs measured under loss (default "cone-cone,sym-sym"; "all")
//      BENCH_PEERS_RELAY_RATE  rendezvous --relay-rate (default 1e9: the relay, not its per-node limit)
//      BENCH_PEERS_ONLY      comma list of methods to run (pilot,gateway,nebula,wg,raw; default all)
//      BENCH_PEERS_THROUGHPUT 0: skip the throughput table (latency rows only; default 1)
//      BENCH_PEERS_LAT_N     TCP ping-pong round trips per measurement (default 300); the latency
//                            rows are measured BENCH_PEERS_REPS times, interleaved, median shown
//      BENCH_PEERS_LAT_WARM  unmeasured ping-pong round trips through every path first (default 20000):
//                            a daemon's request/response path is JIT-compiled over ~20,000 round
//                            trips (CPU per round trip fell from ~300 to ~100 us in bench:gateway-latency);
//                            cold, the first ones measured up to 3x slower (Nebula, Go, has no warm-up)
//      BENCH_PEERS_PING_WARM unmeasured back-to-back `pilotctl ping` probes per pair first (default 3000):
//                            the echo path is code the ping-pong does not run; cold, 20 probes 50 ms
//                            apart measured avg 2.9 / 1.4 ms on loopback, 0.72 ms once warm (min 0.66 -> 0.32)
//      BENCH_PEERS_CPU_PROF  a directory: daemons and rendezvous run under node --cpu-prof, and the
//                            senders', receivers' and rendezvous's hottest functions are printed
//
// The helper roles (--echo-server, --pingpong) are this file run again inside a namespace.
import { type ChildProcess, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../test/helpers/cluster.ts';
import { type Host, NatLab, natLabSupport, RENDEZVOUS_IP, type Router } from '../test/helpers/natlab.ts';
import { env, fmt, lastRouter, must, pilotStream, runHelper, startHelper, tcpEchoServer, tcpPingPong, warm } from './natlab-kit.ts';
import { topSelfTime } from './load/cpuprofile-top.ts';
import { cpuSeconds, machine, MiB, summarize } from './stats.ts';

const SELF = fileURLToPath(import.meta.url);
const RDV_PORT = 9000;
const RDV_HTTP = '127.0.0.1:9080';
const IPERF_PORT = 5201;
const ECHO_PORT = 7007;
const NEBULA_PORT = 4242;
const WG_PORT = 51820;
const GW_SUBNET = '10.200.0.0/16';

// ---------------------------------------------------------------- helper roles

/** CPU seconds (utime + stime) of the processes still running among `pids`. */
function overlayCpu(pids: number[]): number {
  let t = 0;
  for (const pid of pids) {
    if (pid <= 0) continue;
    try {
      t += cpuSeconds(pid);
    } catch {
      // exited
    }
  }
  return t;
}

// ---------------------------------------------------------------- overlays

interface Overlay {
  /** The peer's address inside the overlay, per host name; absent = this overlay cannot reach it. */
  ip: Map<string, string>;
  procs: ChildProcess[];
  /** The overlay's process per host name (for its CPU per round trip). */
  pid?: Map<string, number>;
}

/** On-CPU time of every thread of `pid`, in ms (/proc/<pid>/task/<tid>/schedstat: ns, unlike stat's 10 ms ticks). */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* the thread ended */
    }
  }
  return ns / 1e6;
}

/** A long-running process in `ns` whose output goes to `log` (read back when something fails). */
function spawnLogged(lab: NatLab, ns: string, argv: string[], log: string, extraEnv: Record<string, string> = {}): ChildProcess {
  const fd = fs.openSync(log, 'a');
  const p = lab.spawn(ns, argv, { stdio: ['ignore', fd, fd], env: { ...process.env, ...extraEnv } });
  fs.closeSync(fd);
  return p;
}

const tail = (file: string): string => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ') : '');

function has(bin: string): boolean {
  return spawnSync('which', [bin]).status === 0;
}

/** Waits until `ns` reaches the echo server at `ip` over TCP (the overlay's tunnel is up), or `ms` elapse. */
async function tunnelUp(ns: string, ip: string, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const ok = await runHelper(SELF, ns, ['--pingpong', ip, String(ECHO_PORT), '1'], 3000).then(
      () => true,
      () => false,
    );
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

/**
 * Nebula: a CA, a lighthouse (also a relay) on the public bridge, every host with a certificate.
 * Config is JSON, which is YAML too.
 */
async function startNebula(lab: NatLab, work: string, lh: Host, hosts: Host[]): Promise<Overlay> {
  const dir = path.join(work, 'nebula');
  fs.mkdirSync(dir, { recursive: true });
  const cert = (args: string[]): void => {
    const r = spawnSync('nebula-cert', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`nebula-cert ${args[0]}: ${r.stderr}`);
  };
  cert(['ca', '-name', 'pilot-bench', '-out-crt', 'ca.crt', '-out-key', 'ca.key']);
  const ip = new Map<string, string>();
  const lhIp = '192.168.100.1';
  const all = [lh, ...hosts];
  const procs: ChildProcess[] = [];
  const pid = new Map<string, number>();
  all.forEach((h, i) => {
    const nip = i === 0 ? lhIp : `192.168.100.${10 + i}`;
    ip.set(h.name, nip);
    cert(['sign', '-name', h.name, '-ip', `${nip}/24`, '-ca-crt', 'ca.crt', '-ca-key', 'ca.key', '-out-crt', `${h.name}.crt`, '-out-key', `${h.name}.key`]);
    const isLh = i === 0;
    const config = {
      pki: { ca: path.join(dir, 'ca.crt'), cert: path.join(dir, `${h.name}.crt`), key: path.join(dir, `${h.name}.key`) },
      static_host_map: { [lhIp]: [`${lh.ip}:${NEBULA_PORT}`] },
      lighthouse: { am_lighthouse: isLh, interval: 60, hosts: isLh ? [] : [lhIp] },
      listen: { host: '0.0.0.0', port: isLh ? NEBULA_PORT : 0 },
      punchy: { punch: true, respond: true },
      relay: isLh ? { am_relay: true } : { relays: [lhIp], use_relays: true },
      tun: { dev: 'nebula1' },
      logging: { level: 'warning' },
      firewall: {
        outbound: [{ port: 'any', proto: 'any', host: 'any' }],
        inbound: [{ port: 'any', proto: 'any', host: 'any' }],
      },
    };
    const file = path.join(dir, `${h.name}.yml`);
    fs.writeFileSync(file, JSON.stringify(config));
    const proc = spawnLogged(lab, h.ns, ['nebula', '-config', file], path.join(dir, `${h.name}.log`));
    procs.push(proc);
    if (proc.pid !== undefined) pid.set(h.name, proc.pid); // ip netns exec execs nebula: same pid
  });
  ip.delete(lh.name);
  return { ip, procs, pid };
}

/** X25519 key pair as WireGuard's base64. */
function wgKeys(): { priv: string; pub: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('x25519');
  const raw = (der: Buffer): string => der.subarray(der.length - 32).toString('base64');
  return { priv: raw(privateKey.export({ format: 'der', type: 'pkcs8' })), pub: raw(publicKey.export({ format: 'der', type: 'spki' })) };
}

/**
 * wireguard-go between `links` [a, b, b's endpoint as a sees it]: fixed endpoints (the far router's
 * public address, or the public host's), port 51820 on every host (MASQUERADE keeps it), keepalive.
 * Interface names are unique per lab: the UAPI socket lives in /var/run/wireguard, outside the namespace.
 */
async function startWireguard(lab: NatLab, work: string, hosts: Host[], links: [Host, Host, string, string][]): Promise<Overlay & { sockets: string[] }> {
  const ip = new Map<string, string>();
  const keys = new Map<string, { priv: string; pub: string }>();
  const ifn = new Map<string, string>();
  const procs: ChildProcess[] = [];
  const sockets: string[] = [];
  hosts.forEach((h, i) => {
    ip.set(h.name, `10.99.0.${10 + i}`);
    keys.set(h.name, wgKeys());
    const name = `w${lab.lab.prefix.slice(2)}${i}`;
    ifn.set(h.name, name);
    sockets.push(`/var/run/wireguard/${name}.sock`);
    procs.push(
      spawnLogged(lab, h.ns, ['wireguard-go', '-f', name], path.join(work, `wg-${h.name}.log`), { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' }),
    );
  });
  for (const h of hosts) {
    const name = ifn.get(h.name)!;
    const keyFile = path.join(work, `wg-${h.name}.key`);
    fs.writeFileSync(keyFile, keys.get(h.name)!.priv, { mode: 0o600 });
    for (let i = 0; i < 50 && !fs.existsSync(`/var/run/wireguard/${name}.sock`); i++) await new Promise((r) => setTimeout(r, 100));
    lab.sh(h.ns, `ip addr add ${ip.get(h.name)}/24 dev ${name}; ip link set ${name} up; wg set ${name} private-key ${keyFile} listen-port ${WG_PORT}`);
  }
  for (const [a, b, bEndpoint, aEndpoint] of links) {
    for (const [x, y, ep] of [
      [a, b, bEndpoint],
      [b, a, aEndpoint],
    ] as const)
      lab.sh(
        x.ns,
        `wg set ${ifn.get(x.name)} peer ${keys.get(y.name)!.pub} ${ep ? `endpoint ${ep}:${WG_PORT}` : ''} allowed-ips ${ip.get(y.name)}/32 persistent-keepalive 5`,
      );
  }
  return { ip, procs, sockets };
}

// ---------------------------------------------------------------- measurements

interface Iperf {
  mbps: number;
  retransmits: number;
}

/** iperf3 from `ns` to `ip`:5201 for `secs`, the sender's TCP on `cc`; MB/s received. */
async function iperf(ns: string, ip: string, secs: number, cc?: string): Promise<Iperf> {
  for (let i = 0; ; i++) {
    try {
      return await iperfOnce(ns, ip, secs, cc);
    } catch (err) {
      // The server finishes the previous test a moment after its client did.
      if (i === 5 || !/server is busy/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function iperfOnce(ns: string, ip: string, secs: number, cc?: string): Promise<Iperf> {
  const r = await run(
    ['ip', 'netns', 'exec', ns, 'iperf3', '-c', ip, '-p', String(IPERF_PORT), '-t', String(secs), '--json', ...(cc ? ['-C', cc] : [])],
    {},
    (secs + 30) * 1000,
  );
  let j: { error?: string; end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } } };
  try {
    j = JSON.parse(r.stdout);
  } catch {
    throw new Error(`iperf3 to ${ip}: exit ${r.code} ${r.stderr.trim()}`);
  }
  if (j.error || !j.end?.sum_received) throw new Error(`iperf3 to ${ip}: ${j.error ?? 'no result'}`);
  return { mbps: j.end.sum_received.bits_per_second / 8 / 1e6, retransmits: j.end.sum_sent?.retransmits ?? 0 };
}

/** ICMP ping summary (ms) from `ns` to `ip`: 20 probes, 50 ms apart. */
async function icmp(ns: string, ip: string): Promise<{ avg: number; p50: number } | undefined> {
  if (!has('ping')) return undefined; // apt-get install iputils-ping
  const r = await run(['ip', 'netns', 'exec', ns, 'ping', '-c', '20', '-i', '0.05', ip], {}, 20_000);
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (!times.length) return undefined;
  const s = summarize(times);
  return { avg: s.avg, p50: s.p50 };
}

type Method = 'pilot' | 'gateway' | 'nebula-bbr' | 'nebula-cubic' | 'wg-bbr' | 'wg-cubic' | 'raw-bbr' | 'raw-cubic';
const METHODS: Method[] = ['pilot', 'gateway', 'nebula-bbr', 'nebula-cubic', 'wg-bbr', 'wg-cubic', 'raw-bbr', 'raw-cubic'];

interface Pair {
  key: string;
  name: string;
  from: Host;
  to: Host;
  a: Agent;
  b: Agent;
  /** Where raw TCP connects: the receiver itself (public) or its router's port forward. */
  underlay: string;
  /** The gateway's local IP for the receiver (on the sender's host). */
  gwIp: string;
  /** Remote address -> what it means, for the path column. */
  remotes: Record<string, string>;
}

interface Sample {
  mbps: number;
  /** CPU the overlay spent per MB delivered (ms): both Pilot daemons and the rendezvous, or every Nebula process. */
  cpuMsPerMB?: number;
  /** Pilot: the same split into sender daemon, receiver daemon, rendezvous. */
  cpuSplit?: [number, number, number];
  /** Bytes per "proto ip" crossing the sending router during the run. */
  bytes: Record<string, number>;
  note?: string;
}

/** The remote the most bytes went to/from during a run, named. */
function pathOf(pair: Pair, bytes: Record<string, number>): string {
  const top = Object.entries(bytes).sort((x, y) => y[1] - x[1])[0];
  if (!top || top[1] < 100_000) return '?';
  const [proto, ip] = top[0].split(' ') as [string, string];
  const total = Object.values(bytes).reduce((x, y) => x + y, 0);
  return `${pair.remotes[ip] ?? ip} (${proto}, ${Math.round((top[1] / total) * 100)}%)`;
}

/** warm(), again if the (shared, loaded) box made a handshake time out. */
async function warmRetry(a: Agent, b: Agent): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await warm(a, b, 10);
      return;
    } catch (err) {
      if (i === 3) throw err;
      console.error(`warm-up ${a.name} -> ${b.name} failed (${(err as Error).message}); again`);
    }
  }
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)] ?? NaN;

async function main(): Promise<void> {
  const support = natLabSupport();
  if (!support.ok) {
    console.log(`bench:peers skipped: ${support.reason}`);
    return;
  }
  if (!has('iperf3')) {
    console.log('bench:peers skipped: needs iperf3 (apt-get install iperf3)');
    return;
  }
  const secs = env('BENCH_PEERS_SECS', 3);
  const mb = env('BENCH_PEERS_MB', 40);
  const lossyMb = env('BENCH_PEERS_LOSSY_MB', 15);
  const reps = Math.max(1, Math.round(env('BENCH_PEERS_REPS', 3)));
  const losses = (process.env.BENCH_PEERS_LOSS ?? '0,1,5').split(',').map(Number);
  const lossyPairs = (process.env.BENCH_PEERS_LOSSY_PAIRS ?? 'cone-cone,sym-sym').split(',');
  const relayRate = env('BENCH_PEERS_RELAY_RATE', 1e9);
  const only = process.env.BENCH_PEERS_ONLY?.split(',');
  const throughput = env('BENCH_PEERS_THROUGHPUT', 1) !== 0;
  const latN = Math.max(1, Math.round(env('BENCH_PEERS_LAT_N', 300)));
  const latWarm = Math.round(env('BENCH_PEERS_LAT_WARM', 20000));
  const pingWarm = Math.round(env('BENCH_PEERS_PING_WARM', 3000));
  const want = (m: string): boolean => !only || only.some((o) => m.startsWith(o));
  const T0 = performance.now();
  const log = (s: string): void => console.error(`[${((performance.now() - T0) / 1000).toFixed(1)}s] ${s}`);

  const profDir = process.env.BENCH_PEERS_CPU_PROF ? path.resolve(process.env.BENCH_PEERS_CPU_PROF) : undefined;
  if (profDir) {
    fs.mkdirSync(profDir, { recursive: true });
    // Inherited by the rendezvous and `pilotctl daemon start`, which passes its environment to the daemon.
    process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${profDir}`.trim();
  }
  const lab = new NatLab();
  const work = tmpDir('pilot-peers-');
  const sockets: string[] = [];
  // Also after SIGINT/SIGTERM (netns.ts exits the process): the UAPI sockets live outside the namespaces.
  process.on('exit', () => {
    fs.rmSync(work, { recursive: true, force: true });
    for (const s of sockets) fs.rmSync(s, { force: true });
  });
  const agents: Agent[] = [];
  const procs: ChildProcess[] = [];
  let rdv: Rendezvous | undefined;
  let stopping = false;
  try {
    const lh = lab.addSite('public', 'nlh').hosts[0]!;
    const pub = lab.addSite('public', 'pub').hosts[0]!;
    const cone1 = lab.addSite('cone', 'cone1').hosts[0]!;
    const cone2 = lab.addSite('cone', 'cone2').hosts[0]!;
    const sym1 = lab.addSite('symmetric', 'sym1').hosts[0]!;
    const sym2 = lab.addSite('symmetric', 'sym2').hosts[0]!;
    const hosts = [pub, cone1, cone2, sym1, sym2];
    rdv = await startRendezvous({
      netns: lab.rendezvous.ns,
      listen: `${RENDEZVOUS_IP}:${RDV_PORT}`,
      dataDir: path.join(work, 'rendezvous'),
      args: ['--relay-rate', String(relayRate), '--http', RDV_HTTP],
    });
    let rdvErr = '';
    rdv.proc.stderr!.on('data', (c: Buffer) => (rdvErr = (rdvErr + c.toString()).slice(-3000)));
    rdv.proc.once('exit', (code, sig) => {
      if (!stopping) log(`rendezvous exited (${code ?? sig}): ${rdvErr}`);
    });
    const agentOf = new Map<string, Agent>();
    await Promise.all(
      hosts.map(async (h, i) => {
        await new Promise((r) => setTimeout(r, i * 150)); // stagger: 2 cores
        const a = new Agent(h.name, work, h.ns);
        agents.push(a);
        agentOf.set(h.name, a);
        await a.start(['--registry', `${RENDEZVOUS_IP}:${RDV_PORT}`, '--email', `${h.name}@example.com`, '--hostname', h.name, '--listen', '0.0.0.0:0']);
      }),
    );
    log(`lab, rendezvous (--relay-rate ${relayRate}) and ${hosts.length} agents up`);

    const pairs: Pair[] = [
      [cone1, cone2, 'cone-cone', 'cone x cone'],
      [cone1, pub, 'cone-pub', 'cone x public'],
      [sym1, sym2, 'sym-sym', 'symmetric x symmetric'],
    ].map(([from, to, key, name]) => {
      const f = from as Host;
      const t = to as Host;
      const tr = t.site.routers.length ? lastRouter(t) : undefined;
      return {
        key: key as string,
        name: name as string,
        from: f,
        to: t,
        a: agentOf.get(f.name)!,
        b: agentOf.get(t.name)!,
        underlay: tr ? tr.publicIp : t.ip,
        gwIp: '',
        remotes: { [tr ? tr.publicIp : t.ip]: 'direct', [RENDEZVOUS_IP]: 'rendezvous relay', [lh.ip]: 'lighthouse relay' },
      };
    });

    // Receivers: iperf3 server and echo server; port forwards on their routers for raw TCP.
    for (const p of pairs) {
      procs.push(lab.spawn(p.to.ns, ['iperf3', '-s', '-p', String(IPERF_PORT)]));
      procs.push(await startHelper(lab, SELF, p.to.ns, ['--echo-server', String(ECHO_PORT)]));
      if (p.to.site.routers.length) lab.forwardTcp(lastRouter(p.to), p.to, [IPERF_PORT, ECHO_PORT]);
    }
    // Byte counters on the senders' routers, per remote.
    const senderRouters = new Map<string, Router>();
    for (const p of pairs) senderRouters.set(p.from.name, lastRouter(p.from));
    for (const [name, r] of senderRouters) lab.countBytesWith(r, [RENDEZVOUS_IP, lh.ip, ...pairs.filter((p) => p.from.name === name).map((p) => p.underlay)]);

    // Pilot: trust, warm, expose, gateway.
    await Promise.all(
      [pairs[0]!, pairs[2]!].map(async (p) => {
        // cone1 is the sender of two pairs: those two one after the other.
        await warmRetry(p.a, p.b);
        if (p === pairs[0]) await warmRetry(pairs[1]!.a, pairs[1]!.b);
      }),
    );
    for (const p of pairs) {
      must(await p.b.ctl(['expose', String(IPERF_PORT), `127.0.0.1:${IPERF_PORT}`]), 'expose iperf3');
      must(await p.b.ctl(['expose', String(ECHO_PORT), `127.0.0.1:${ECHO_PORT}`]), 'expose echo');
    }
    for (const [from, group] of [
      [cone1, [pairs[0]!, pairs[1]!]],
      [sym1, [pairs[2]!]],
    ] as const) {
      const gw = must(
        await agentOf
          .get(from.name)!
          .ctl(['gateway', 'start', '--subnet', GW_SUBNET, '--ports', `${IPERF_PORT},${ECHO_PORT}`, ...group.map((p) => p.b.address)]),
        'gateway start',
      );
      for (const m of gw.json.data.mappings as { target: string; ip: string }[]) {
        const p = group.find((x) => x.b.address === m.target || x.b.name === m.target);
        if (p) p.gwIp = m.ip;
      }
    }
    for (const p of pairs) if (!p.gwIp) throw new Error(`no gateway mapping for ${p.name}`);
    log('Pilot trusted, warm, exposed and mapped');

    // Nebula and wireguard-go.
    let nebula: Overlay | undefined;
    if (want('nebula') && has('nebula') && has('nebula-cert')) {
      nebula = await startNebula(lab, work, lh, hosts);
      procs.push(...nebula.procs);
      for (const p of pairs) {
        const ok = await tunnelUp(p.from.ns, nebula.ip.get(p.to.name)!, 30_000);
        if (!ok) {
          log(`Nebula ${p.name}: no tunnel after 30 s; ${p.from.name}: ${tail(path.join(work, 'nebula', `${p.from.name}.log`))}`);
          nebula.ip.delete(p.to.name);
        }
      }
      log('Nebula up');
    }
    let wg: Overlay | undefined;
    if (want('wg') && has('wireguard-go') && has('wg')) {
      const c1r = lastRouter(cone1).publicIp;
      const w = await startWireguard(
        lab,
        work,
        [pub, cone1, cone2],
        [
          [cone1, cone2, lastRouter(cone2).publicIp, c1r],
          [cone1, pub, pub.ip, ''],
        ],
      );
      wg = w;
      procs.push(...w.procs);
      sockets.push(...w.sockets);
      for (const p of pairs.slice(0, 2)) {
        const ok = await tunnelUp(p.from.ns, w.ip.get(p.to.name)!, 30_000);
        if (!ok) {
          log(
            `wireguard-go ${p.name}: no tunnel after 30 s; ${tail(path.join(work, `wg-${p.from.name}.log`))}; ${lab.exec(p.from.ns, ['wg', 'show']).replace(/\n/g, ' ')}`,
          );
          w.ip.delete(p.to.name);
        }
      }
      log('wireguard-go up');
    }

    /** One measurement of `m` on `p`, with the sending router's byte counters around it. */
    const measure = async (p: Pair, m: Method, loss: number): Promise<Sample | undefined> => {
      const router = lastRouter(p.from);
      const b0 = lab.countedBytes(router);
      let mbps: number;
      let mbDelivered: number;
      let note: string | undefined;
      const [kind, cc] = m.split('-') as [string, string | undefined];
      // What the overlay itself burns per byte, at both ends and in the relay (the apps, iperf3, are
      // the same for everyone): on a shared 2-core box this is steadier than MB/s, which follows the load.
      const overlayPids =
        kind === 'pilot' || kind === 'gateway'
          ? [p.a.pid, p.b.pid, rdv!.proc.pid ?? -1]
          : kind === 'nebula'
            ? (nebula?.procs.map((x) => x.pid ?? -1) ?? [])
            : [];
      const cpu0 = overlayCpu(overlayPids);
      const each0 = overlayPids.map((x) => overlayCpu([x]));
      if (kind === 'pilot') {
        const bytes = Math.round((loss ? lossyMb : mb) * MiB);
        mbps = (await pilotStream(p.a, p.b, rdv!, bytes)).mbps;
        mbDelivered = bytes / 1e6;
      } else {
        const ip = kind === 'gateway' ? p.gwIp : kind === 'nebula' ? nebula?.ip.get(p.to.name) : kind === 'wg' ? wg?.ip.get(p.to.name) : p.underlay;
        if (!ip) return undefined;
        const r = await iperf(p.from.ns, ip, secs, cc);
        mbps = r.mbps;
        mbDelivered = r.mbps * secs;
        note = `${r.retransmits} retransmits`;
      }
      const cpuMsPerMB = overlayPids.length > 0 && mbDelivered > 0 ? ((overlayCpu(overlayPids) - cpu0) * 1000) / mbDelivered : undefined;
      const split =
        (kind === 'pilot' || kind === 'gateway') && mbDelivered > 0
          ? (overlayPids.map((x, i) => ((overlayCpu([x]) - each0[i]!) * 1000) / mbDelivered) as [number, number, number])
          : undefined;
      const b1 = lab.countedBytes(router);
      const bytes: Record<string, number> = {};
      for (const k of Object.keys(b1)) if (b1[k]! - (b0[k] ?? 0) > 0) bytes[k] = b1[k]! - (b0[k] ?? 0);
      return { mbps, bytes, note, ...(cpuMsPerMB !== undefined ? { cpuMsPerMB } : {}), ...(split ? { cpuSplit: split } : {}) };
    };

    const results = new Map<string, Sample[]>(); // `${loss}|${pair}|${method}`
    for (const loss of throughput ? losses : []) {
      const lossPairs = loss === 0 ? pairs : pairs.filter((p) => lossyPairs.includes('all') || lossyPairs.includes(p.key));
      for (const r of new Set(lossPairs.map((p) => lastRouter(p.from)))) lab.setLoss(r, loss / 100);
      for (let rep = 0; rep < reps; rep++) {
        for (const p of lossPairs) {
          const line: string[] = [];
          for (const m of METHODS) {
            if (!want(m)) continue;
            const s = await measure(p, m, loss).catch((err: Error) => {
              const daemonLog = (a: Agent): string => tail(path.join(a.home, 'pilot.log'));
              log(
                `${loss}% ${p.name} ${m}: ${err.message}${m === 'pilot' || m === 'gateway' ? ` (logs: ${p.a.name}: ${daemonLog(p.a)}; ${p.b.name}: ${daemonLog(p.b)})` : ''}`,
              );
              return undefined;
            });
            if (!s) continue;
            const k = `${loss}|${p.key}|${m}`;
            results.set(k, [...(results.get(k) ?? []), s]);
            line.push(`${m} ${fmt(s.mbps)}`);
          }
          log(`loss ${loss}% rep ${rep + 1} ${p.name}: ${line.join(', ')} MB/s`);
        }
      }
      for (const r of new Set(lossPairs.map((p) => lastRouter(p.from)))) lab.setLoss(r, 0);
    }

    // Latency, no loss: every method on every pair per rep, reps interleaved, median shown.
    interface Lat {
      gateway?: number;
      nebula?: number;
      wg?: number;
      underlay?: number;
      /** CPU (µs) of both ends' overlay processes per round trip of the TCP ping-pong (all threads). */
      gatewayCpu?: number;
      nebulaCpu?: number;
      pilotPing?: { avg: number; min: number };
      /** Wall time of `pilotctl ping --count 1` (process start, IPC, one probe) and the probe's own RTT. */
      pilotctl?: { wall: number; rtt: number };
      nebulaIcmp?: { avg: number; p50: number };
      wgIcmp?: { avg: number; p50: number };
    }
    const latReps = new Map<string, Lat[]>();
    let lastCpu: number | undefined;
    /** Ping-pong p50; lastCpu = the CPU µs per round trip of `pids` (both ends' overlay processes) over it. */
    const pp = async (ns: string, ip: string | undefined, pids: (number | undefined)[] = []): Promise<number | undefined> => {
      lastCpu = undefined;
      if (!ip) return undefined;
      const known = pids.every((x) => x !== undefined && fs.existsSync(`/proc/${x}`)) ? (pids as number[]) : [];
      const c0 = known.map(cpuMs);
      const [s] = await runHelper<{ p50: number; n: number }>(SELF, ns, ['--pingpong', ip, String(ECHO_PORT), String(latN)], 60_000).catch(() => [undefined]);
      if (s && known.length) lastCpu = (known.map(cpuMs).reduce((x, y, i) => x + y - c0[i]!, 0) * 1000) / (s.n + 30); // 30 warm-up round trips
      return s?.p50;
    };
    if (latWarm > 0)
      for (const p of pairs)
        for (const ip of [p.gwIp, nebula?.ip.get(p.to.name), wg?.ip.get(p.to.name), p.underlay])
          if (ip) await runHelper(SELF, p.from.ns, ['--pingpong', ip, String(ECHO_PORT), String(latWarm)], 120_000).catch(() => undefined);
    if (latWarm > 0) log(`latency paths warmed (${latWarm} round trips each)`);
    if (pingWarm > 0) {
      for (const p of pairs) await p.a.ctl(['ping', p.b.address, '--count', String(pingWarm), '--interval', '0ms', '--timeout', '3s'], 180_000);
      log(`ping paths warmed (${pingWarm} back-to-back probes each)`);
    }
    for (let rep = 0; rep < reps; rep++)
      for (const p of pairs) {
        const l: Lat = {};
        l.gateway = await pp(p.from.ns, p.gwIp, [p.a.pid, p.b.pid]);
        l.gatewayCpu = lastCpu;
        l.nebula = await pp(p.from.ns, nebula?.ip.get(p.to.name), [nebula?.pid?.get(p.from.name), nebula?.pid?.get(p.to.name)]);
        l.nebulaCpu = lastCpu;
        l.wg = await pp(p.from.ns, wg?.ip.get(p.to.name));
        l.underlay = await pp(p.from.ns, p.underlay);
        const pg = await p.a.ctl(['ping', p.b.address, '--count', '20', '--interval', '50ms', '--timeout', '3s'], 30_000);
        if (pg.code === 0) l.pilotPing = { avg: pg.json.data.avgMs, min: pg.json.data.minMs };
        const t0 = performance.now();
        const one = await p.a.ctl(['ping', p.b.address, '--count', '1', '--timeout', '3s'], 30_000);
        if (one.code === 0) l.pilotctl = { wall: performance.now() - t0, rtt: one.json.data.avgMs };
        const nip = nebula?.ip.get(p.to.name);
        if (nip) l.nebulaIcmp = await icmp(p.from.ns, nip);
        const wip = wg?.ip.get(p.to.name);
        if (wip) l.wgIcmp = await icmp(p.from.ns, wip);
        latReps.set(p.key, [...(latReps.get(p.key) ?? []), l]);
        log(`latency rep ${rep + 1} ${p.name}: ${JSON.stringify(l)}`);
      }
    /** Per field, the median over the reps that measured it. */
    const latMedian = (ls: Lat[]): Lat => {
      const m = (f: (l: Lat) => number | undefined): number | undefined => {
        const v = ls.map(f).filter((x): x is number => x !== undefined);
        return v.length ? median(v) : undefined;
      };
      const pair = <K extends string>(f: (l: Lat) => Record<K, number> | undefined, keys: K[]): Record<K, number> | undefined => {
        if (!ls.some((l) => f(l))) return undefined;
        return Object.fromEntries(keys.map((k) => [k, m((l) => f(l)?.[k])])) as Record<K, number>;
      };
      return {
        gateway: m((l) => l.gateway),
        nebula: m((l) => l.nebula),
        wg: m((l) => l.wg),
        underlay: m((l) => l.underlay),
        gatewayCpu: m((l) => l.gatewayCpu),
        nebulaCpu: m((l) => l.nebulaCpu),
        pilotPing: pair((l) => l.pilotPing, ['avg', 'min']),
        pilotctl: pair((l) => l.pilotctl, ['wall', 'rtt']),
        nebulaIcmp: pair((l) => l.nebulaIcmp, ['avg', 'p50']),
        wgIcmp: pair((l) => l.wgIcmp, ['avg', 'p50']),
      };
    };
    const lat = new Map<string, Lat>([...latReps].map(([k, ls]) => [k, latMedian(ls)]));

    // ------------------------------------------------------------ report
    const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const verOf = (argv: string[]): string => spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' }).stdout.trim().split('\n')[0] ?? '?';
    const med = (loss: number, p: Pair, m: Method): number | undefined => {
      const v = results.get(`${loss}|${p.key}|${m}`);
      return v?.length ? median(v.map((s) => s.mbps)) : undefined;
    };
    const cell = (x: number | undefined): string => (x === undefined ? 'n/a' : fmt(x));
    const ratio = (x: number | undefined, y: number | undefined): string => (x === undefined || y === undefined ? 'n/a' : `${(x / y).toFixed(2)}x`);
    console.log(`# Pilot side by side with Nebula and wireguard-go (${new Date().toISOString()})`);
    console.log('');
    console.log(
      `${machine()}; pilot-overlay ${version}; nebula ${verOf(['nebula', '-version']).replace('Version: ', '')}; wireguard-go ${verOf(['wireguard-go', '--version'])}; ${verOf(['iperf3', '--version'])}`,
    );
    console.log(
      `${reps} interleaved reps (median shown); iperf3 ${secs} s per run; pilotctl bench ${mb} MiB (${lossyMb} MiB under loss); loss = random drop on the sending site's router, both directions; rendezvous --relay-rate ${relayRate}. MB/s = 10^6 bytes of payload per second, received.`,
    );
    console.log('');
    console.log(
      '| loss | pair | Pilot bench | Pilot gateway | Nebula BBR | Nebula CUBIC | wg-go BBR | wg-go CUBIC | raw TCP BBR | raw TCP CUBIC | gateway / Nebula BBR | gateway / wg BBR | bench / Nebula BBR | bench / wg BBR |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const loss of losses)
      for (const p of pairs) {
        if (!METHODS.some((m) => results.has(`${loss}|${p.key}|${m}`))) continue;
        const v = Object.fromEntries(METHODS.map((m) => [m, med(loss, p, m)])) as Record<Method, number | undefined>;
        console.log(
          `| ${loss}% | ${p.name} | ${METHODS.map((m) => cell(v[m])).join(' | ')} | ${ratio(v.gateway, v['nebula-bbr'])} | ${ratio(v.gateway, v['wg-bbr'])} | ${ratio(v.pilot, v['nebula-bbr'])} | ${ratio(v.pilot, v['wg-bbr'])} |`,
        );
      }
    console.log('');
    console.log(
      'Overlay CPU per MB delivered, ms (utime + stime from /proc over each run: Pilot = both daemons + the rendezvous, in brackets sender / receiver / rendezvous; Nebula = all its processes, lighthouse included; the applications not counted), median:',
    );
    console.log('');
    console.log('| loss | pair | Pilot bench | Pilot gateway | Nebula BBR | Nebula CUBIC | gateway / Nebula BBR |');
    console.log('|---|---|---|---|---|---|---|');
    const cpuMed = (loss: number, p: Pair, m: Method): number | undefined => {
      const v = results.get(`${loss}|${p.key}|${m}`)?.flatMap((s) => (s.cpuMsPerMB === undefined ? [] : [s.cpuMsPerMB]));
      return v?.length ? median(v) : undefined;
    };
    /** "40.2 (18 / 17 / 5)": the total, then sender, receiver and rendezvous, each the median of its own. */
    const split = (loss: number, p: Pair, m: Method): string => {
      const total = cpuMed(loss, p, m);
      const v = results.get(`${loss}|${p.key}|${m}`)?.flatMap((s) => (s.cpuSplit ? [s.cpuSplit] : []));
      if (total === undefined || !v?.length) return cell(total);
      return `${fmt(total)} (${[0, 1, 2].map((i) => median(v.map((x) => x[i]!)).toFixed(1)).join(' / ')})`;
    };
    for (const loss of losses)
      for (const p of pairs) {
        const c = (m: Method): number | undefined => cpuMed(loss, p, m);
        if (!(['pilot', 'gateway', 'nebula-bbr', 'nebula-cubic'] as const).some((m) => c(m) !== undefined)) continue;
        console.log(
          `| ${loss}% | ${p.name} | ${split(loss, p, 'pilot')} | ${split(loss, p, 'gateway')} | ${cell(c('nebula-bbr'))} | ${cell(c('nebula-cubic'))} | ${ratio(c('gateway'), c('nebula-bbr'))} |`,
        );
      }
    // The lossy long path (100 ms RTT, 8 Mbit/s, 1% / 3% loss) needs a delay line; branch
    // longpath builds it. Its row goes here, measured by the same methods.
    console.log('| 1-3% | long path, 100 ms RTT, 8 Mbit/s | (branch longpath: delay line) | | | | | | | | | | | |');
    console.log('');
    console.log('Path that carried the bytes (sending router iptables counters, last run; direct = the peer router, relays named):');
    for (const loss of losses)
      for (const p of pairs)
        for (const m of METHODS) {
          const v = results.get(`${loss}|${p.key}|${m}`);
          if (!v?.length) continue;
          const last = v.at(-1)!;
          if (loss === 0 || m === 'gateway' || m === 'nebula-bbr')
            console.log(
              `- ${loss}% ${p.name} ${m}: ${pathOf(p, last.bytes)}; runs ${v.map((s) => fmt(s.mbps)).join(', ')}${last.note ? `; ${last.note}` : ''}`,
            );
        }
    console.log('');
    console.log(
      `Request/response latency, no loss (TCP 1-byte ping-pong p50 over ${latN} round trips after ${latWarm} unmeasured ones per path; ping: avg of 20 probes 50 ms apart, after ${pingWarm} unmeasured back-to-back ones; median of ${reps} interleaved reps), ms:`,
    );
    console.log('');
    console.log(
      '| pair | TCP via gateway | TCP via Nebula | TCP via wg-go | TCP underlay | gateway / Nebula | pilotctl ping avg (min) | ICMP via Nebula avg (p50) | ICMP via wg-go avg (p50) | pilotctl ping / Nebula ICMP | `pilotctl ping --count 1` wall (its probe) | CPU µs per round trip, both ends: Pilot daemons / Nebula |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
    const ms = (x: number | undefined): string => (x === undefined ? 'n/a' : x.toFixed(3));
    for (const p of pairs) {
      const l = lat.get(p.key)!;
      console.log(
        `| ${p.name} | ${ms(l.gateway)} | ${ms(l.nebula)} | ${ms(l.wg)} | ${ms(l.underlay)} | ${ratio(l.gateway, l.nebula)} | ${l.pilotPing ? `${ms(l.pilotPing.avg)} (${ms(l.pilotPing.min)})` : 'n/a'} | ${l.nebulaIcmp ? `${ms(l.nebulaIcmp.avg)} (${ms(l.nebulaIcmp.p50)})` : 'n/a'} | ${l.wgIcmp ? `${ms(l.wgIcmp.avg)} (${ms(l.wgIcmp.p50)})` : 'n/a'} | ${ratio(l.pilotPing?.avg, l.nebulaIcmp?.avg)} | ${l.pilotctl ? `${ms(l.pilotctl.wall)} (${ms(l.pilotctl.rtt)})` : 'n/a'} | ${l.gatewayCpu === undefined ? 'n/a' : l.gatewayCpu.toFixed(0)} / ${l.nebulaCpu === undefined ? 'n/a' : l.nebulaCpu.toFixed(0)} |`,
      );
    }
    console.log(`\nrun took ${((performance.now() - T0) / 1000).toFixed(0)} s`);
  } finally {
    stopping = true;
    for (const p of procs) p.kill('SIGKILL');
    const pids = new Map<number, string>([...agents.map((a) => [a.pid, `daemon ${a.name}`] as [number, string]), [rdv?.proc.pid ?? -1, 'rendezvous']]);
    await Promise.all(agents.map((a) => a.stop()));
    await rdv?.kill();
    if (profDir) {
      await new Promise((r) => setTimeout(r, 1000)); // profiles are written at exit
      for (const f of fs.readdirSync(profDir)) {
        const who = pids.get(Number(f.split('.')[3])); // CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile
        if (who) console.log(`\n## CPU profile: ${who}\n\n${topSelfTime(path.join(profDir, f), 25)}`);
      }
    }
    lab.cleanup();
    for (const s of sockets) fs.rmSync(s, { force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const [role, ...args] = process.argv.slice(2);
if (role === '--echo-server') tcpEchoServer(Number(args[0]));
else if (role === '--pingpong') await tcpPingPong(args[0]!, Number(args[1]), Number(args[2]));
else if (role === undefined) {
  await main();
  process.exit(process.exitCode ?? 0);
} else {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
