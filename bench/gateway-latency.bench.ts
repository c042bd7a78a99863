// Request/response latency and CPU per round trip through the Pilot gateway, next to what the
// same round trip costs Node.js itself, in one NAT lab (test/helpers/natlab.ts), same hosts and
// routers, one run, reps interleaved:
//
//   gateway      TCP 1-byte ping-pong: client -> daemon A's gateway -> encrypted UDP -> daemon B
//                -> `expose` -> echo server, and back (the bench:peers latency row)
//   node relay   the same path through a bare Node.js relay: a TCP server that sends each chunk
//                as a UDP datagram and a UDP socket that writes it to the echo server's TCP
//                connection, and back: node:net + node:dgram and nothing else (no crypto, no
//                transport, no streams layer). The floor for any Node.js gateway of this shape.
//   underlay     the same ping-pong straight to the echo server (kernel TCP, no overlay)
//   ping         `ping` (what `pilotctl ping` prints, over IPC: no CLI start) vs a bare Node.js
//                UDP echo over the same routers, probes back to back and 50 ms apart
//
// CPU per round trip: on-CPU time of every thread of both overlay processes (daemons A and B,
// or the two relay processes) from /proc/<pid>/task/*/schedstat, over the measured round trips.
// The far host is public (no NAT), so the bare relay needs no traversal; the near one is behind
// a cone NAT. Warm-up: the daemons' code is JIT-compiled after many thousand round trips.
//
// Env: BENCH_GWLAT_N      ping-pong round trips per measurement (default 2000)
//      BENCH_GWLAT_REPS   interleaved reps, median shown (default 5)
//      BENCH_GWLAT_WARM   unmeasured gateway round trips first (default 20000)
//      BENCH_GWLAT_PINGS  probes per ping measurement (default 40)
//      BENCH_GWLAT_BASE   another checkout (e.g. `git archive main | tar -x -C dir`, node_modules and
//                         build/ linked or copied in): a second daemon pair from that tree on the same
//                         two hosts, its own gateway and expose, measured in every rep next to this
//                         tree's (order alternating), for an A/B in one lab
// Needs root (network namespaces); prints why and exits 0 without them.
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../test/helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP } from '../test/helpers/natlab.ts';
import { env, must, RootAgent, runHelper, startHelper, tcpEchoServer, tcpPingPong, warm } from './natlab-kit.ts';
import { machine, summarize } from './stats.ts';

const SELF = fileURLToPath(import.meta.url);
const ECHO_PORT = 7007;
const RELAY_TCP = 7100;
const RELAY_UDP = 7102;
const UDP_ECHO = 7103;

// ---------------------------------------------------------------- helper roles

/** Near end of the bare relay: TCP on 127.0.0.1:RELAY_TCP, each chunk one datagram to far:RELAY_UDP. */
function relayNear(far: string): void {
  const u = dgram.createSocket('udp4');
  let client: net.Socket | undefined;
  u.on('message', (m) => client?.write(m));
  u.bind(0, () => {
    net
      .createServer((s) => {
        s.setNoDelay(true);
        client = s;
        s.on('data', (c) => u.send(c, RELAY_UDP, far));
        s.on('error', () => s.destroy());
      })
      .listen(RELAY_TCP, '127.0.0.1', () => process.stdout.write('ready\n'));
  });
}

/** Far end of the bare relay: datagrams on RELAY_UDP to the echo server's TCP connection, replies back to their sender. */
function relayFar(): void {
  const u = dgram.createSocket('udp4');
  let to: { port: number; address: string } | undefined;
  const s = net.connect({ host: '127.0.0.1', port: ECHO_PORT, noDelay: true });
  s.on('data', (c) => to && u.send(c, to.port, to.address));
  u.on('message', (m, r) => {
    to = r;
    s.write(m);
  });
  s.once('connect', () => u.bind(RELAY_UDP, () => process.stdout.write('ready\n')));
}

function udpEcho(): void {
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(m, r.port, r.address));
  u.bind(UDP_ECHO, () => process.stdout.write('ready\n'));
}

/** `n` 16-byte datagram round trips to host:UDP_ECHO, `gapMs` apart; prints the RTTs' summary (ms). */
async function udpPing(host: string, n: number, gapMs: number): Promise<void> {
  const u = dgram.createSocket('udp4');
  await new Promise<void>((r) => u.bind(0, r));
  const rtts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 1000);
      u.once('message', () => {
        clearTimeout(timer);
        resolve(true);
      });
      u.send(Buffer.alloc(16, i), UDP_ECHO, host);
    });
    if (ok) rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
  }
  u.close();
  process.stdout.write(`${JSON.stringify(summarize(rtts))}\n`);
}

// ---------------------------------------------------------------- measurement

/** On-CPU nanoseconds of every thread of `pid` so far. */
function threadCpuNs(pid: number): number {
  let t = 0;
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      t += Number(fs.readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended
    }
  }
  return t;
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)] ?? NaN;

async function main(): Promise<void> {
  const support = natLabSupport();
  if (!support.ok) {
    console.log(`gateway-latency bench skipped: ${support.reason}`);
    return;
  }
  const n = Math.round(env('BENCH_GWLAT_N', 2000));
  const reps = Math.max(1, Math.round(env('BENCH_GWLAT_REPS', 5)));
  const warmN = Math.round(env('BENCH_GWLAT_WARM', 20000));
  const pings = Math.max(1, Math.round(env('BENCH_GWLAT_PINGS', 40)));
  const base = process.env.BENCH_GWLAT_BASE ? path.resolve(process.env.BENCH_GWLAT_BASE) : '';
  const T0 = performance.now();
  const log = (s: string): void => console.error(`[${((performance.now() - T0) / 1000).toFixed(1)}s] ${s}`);
  const lab = new NatLab();
  const work = tmpDir('pilot-gwlat-');
  process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
  const agents: Agent[] = [];
  let rdv: Rendezvous | undefined;
  try {
    const near = lab.addSite('cone', 'near').hosts[0]!;
    const far = lab.addSite('public', 'far').hosts[0]!;
    rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rendezvous') });
    const a = new Agent('near', work, near.ns);
    const b = new Agent('far', work, far.ns);
    agents.push(a, b);
    for (const x of agents)
      await x.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${x.name}@example.com`, '--hostname', x.name, '--listen', '0.0.0.0:0']);
    await warm(a, b, 10);
    await startHelper(lab, SELF, far.ns, ['--echo-server']);
    must(await b.ctl(['expose', String(ECHO_PORT), `127.0.0.1:${ECHO_PORT}`]), 'expose');
    const gw = must(await a.ctl(['gateway', 'start', '--subnet', '10.200.0.0/16', '--ports', String(ECHO_PORT), b.address]), 'gateway start');
    const gwIp = (gw.json.data.mappings as { ip: string }[])[0]!.ip;
    let baseGw: { ip: string; a: Agent; b: Agent } | undefined;
    if (base !== '') {
      const ab = new RootAgent('nearbase', work, near.ns, base);
      const bb = new RootAgent('farbase', work, far.ns, base);
      agents.push(ab, bb);
      for (const x of [ab, bb])
        await x.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${x.name}@example.com`, '--hostname', x.name, '--listen', '0.0.0.0:0']);
      await warm(ab, bb, 10);
      must(await bb.ctl(['expose', String(ECHO_PORT), `127.0.0.1:${ECHO_PORT}`]), 'expose (base)');
      const g = must(await ab.ctl(['gateway', 'start', '--subnet', '10.201.0.0/16', '--ports', String(ECHO_PORT), bb.address]), 'gateway start (base)');
      baseGw = { ip: (g.json.data.mappings as { ip: string }[])[0]!.ip, a: ab, b: bb };
      log(`base tree ${base}: gateway ${baseGw.ip}:${ECHO_PORT}`);
    }
    const relayFarProc = await startHelper(lab, SELF, far.ns, ['--relay-far']);
    const relayNearProc = await startHelper(lab, SELF, near.ns, ['--relay-near', far.ip]);
    await startHelper(lab, SELF, far.ns, ['--udp-echo']);
    log(`lab up: gateway ${gwIp}:${ECHO_PORT}, far host ${far.ip}`);

    const pingPongVia = async (host: string, port: number, count: number, pids: number[]) => {
      const c0 = pids.map(threadCpuNs);
      const [s] = await runHelper<ReturnType<typeof summarize>>(SELF, near.ns, ['--pingpong', host, String(port), String(count)], 300_000);
      const cpu = pids.map((p, i) => (threadCpuNs(p) - c0[i]!) / 1e3 / (count + 30));
      return { p50: s!.p50, avg: s!.avg, cpuUs: cpu.reduce((x, y) => x + y, 0) };
    };
    if (warmN > 0) {
      await pingPongVia(gwIp, ECHO_PORT, warmN, []);
      if (baseGw) await pingPongVia(baseGw.ip, ECHO_PORT, warmN, []);
      await pingPongVia('127.0.0.1', RELAY_TCP, Math.min(warmN, 5000), []);
      log(`warmed: ${warmN} gateway round trips`);
    }

    const rows = new Map<string, number[]>();
    const add = (k: string, v: number): void => void rows.set(k, [...(rows.get(k) ?? []), v]);
    for (let rep = 0; rep < reps; rep++) {
      // this tree and the base take turns going first
      const bFirst = baseGw !== undefined && rep % 2 === 1 ? await pingPongVia(baseGw.ip, ECHO_PORT, n, [baseGw.a.pid, baseGw.b.pid]) : undefined;
      const g = await pingPongVia(gwIp, ECHO_PORT, n, [a.pid, b.pid]);
      const bg = bFirst ?? (baseGw ? await pingPongVia(baseGw.ip, ECHO_PORT, n, [baseGw.a.pid, baseGw.b.pid]) : undefined);
      if (bg) {
        add('base p50', bg.p50);
        add('base avg', bg.avg);
        add('base cpu', bg.cpuUs);
      }
      const r = await pingPongVia('127.0.0.1', RELAY_TCP, n, [relayNearProc.pid!, relayFarProc.pid!]);
      const u = await pingPongVia(far.ip, ECHO_PORT, n, []);
      add('gw p50', g.p50);
      add('gw avg', g.avg);
      add('gw cpu', g.cpuUs);
      add('relay p50', r.p50);
      add('relay avg', r.avg);
      add('relay cpu', r.cpuUs);
      add('underlay p50', u.p50);
      for (const gap of [0, 50]) {
        const p = await a.ipc<{ minMs: number; avgMs: number }>('ping', { target: b.address, count: pings, intervalMs: gap, timeoutMs: 3000 });
        const [q] = await runHelper<ReturnType<typeof summarize>>(SELF, near.ns, ['--udp-ping', far.ip, String(pings), String(gap)], 60_000);
        add(`ping${gap} min`, p.minMs);
        add(`ping${gap} avg`, p.avgMs);
        add(`udp${gap} min`, q!.min);
        add(`udp${gap} avg`, q!.avg);
      }
      log(
        `rep ${rep + 1}: gateway p50 ${g.p50.toFixed(3)} ms (${g.cpuUs.toFixed(0)} µs CPU/RT)${bg ? `, base gateway ${bg.p50.toFixed(3)} ms (${bg.cpuUs.toFixed(0)} µs)` : ''}, node relay ${r.p50.toFixed(3)} ms (${r.cpuUs.toFixed(0)} µs), underlay ${u.p50.toFixed(3)} ms`,
      );
    }
    const m = (k: string): number => median(rows.get(k) ?? []);
    const f = (x: number): string => x.toFixed(3);
    console.log(
      `\n${machine()}; ${reps} interleaved reps of ${n} round trips (median shown), ${warmN} warm-up round trips; load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`,
    );
    console.log('| cone x public | Pilot gateway | bare Node.js relay | ratio | underlay TCP |');
    console.log('|---|---|---|---|---|');
    console.log(
      `| TCP 1-byte ping-pong p50 (avg), ms | ${f(m('gw p50'))} (${f(m('gw avg'))}) | ${f(m('relay p50'))} (${f(m('relay avg'))}) | ${(m('gw p50') / m('relay p50')).toFixed(2)}x | ${f(m('underlay p50'))} |`,
    );
    console.log(
      `| CPU per round trip, both overlay processes, µs | ${m('gw cpu').toFixed(0)} | ${m('relay cpu').toFixed(0)} | ${(m('gw cpu') / m('relay cpu')).toFixed(2)}x | - |`,
    );
    if (baseGw) {
      console.log(
        `| base tree (${base}): gateway p50 (avg), ms; CPU/RT µs | ${f(m('base p50'))} (${f(m('base avg'))}); ${m('base cpu').toFixed(0)} | this tree / base: p50 ${(m('gw p50') / m('base p50')).toFixed(2)}x, CPU ${(m('gw cpu') / m('base cpu')).toFixed(2)}x | base / relay p50 ${(m('base p50') / m('relay p50')).toFixed(2)}x | - |`,
      );
      const per = (k: string): string => (rows.get(k) ?? []).map((x) => (k.endsWith('cpu') ? x.toFixed(0) : x.toFixed(3))).join(' ');
      console.log(
        `\nper rep: this tree p50 ${per('gw p50')} / CPU ${per('gw cpu')}; base p50 ${per('base p50')} / CPU ${per('base cpu')}; relay p50 ${per('relay p50')} / CPU ${per('relay cpu')}`,
      );
    }
    for (const gap of [0, 50])
      console.log(
        `| ${gap === 0 ? 'ping, back to back' : `ping, ${gap} ms apart`}: min / avg, ms (Pilot \`ping\` / Node UDP echo) | ${f(m(`ping${gap} min`))} / ${f(m(`ping${gap} avg`))} | ${f(m(`udp${gap} min`))} / ${f(m(`udp${gap} avg`))} | ${(m(`ping${gap} min`) / m(`udp${gap} min`)).toFixed(2)}x (min) | - |`,
      );
  } finally {
    for (const x of agents) {
      await x.stop();
      x.kill9();
    }
    rdv?.proc.kill();
    lab.cleanup();
  }
}

const [role, ...args] = process.argv.slice(2);
if (role === '--echo-server') tcpEchoServer(ECHO_PORT);
else if (role === '--relay-near') relayNear(args[0]!);
else if (role === '--relay-far') relayFar();
else if (role === '--udp-echo') udpEcho();
else if (role === '--udp-ping') await udpPing(args[0]!, Number(args[1]), Number(args[2]));
else if (role === '--pingpong') await tcpPingPong(args[0]!, Number(args[1]), Number(args[2]));
else await main();
