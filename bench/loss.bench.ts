// `npm run bench:loss`: one Pilot stream under random loss per congestion
// controller (BENCH_CC, default `bbr,cubic`; any of bbr, cubic, newreno), next
// to raw TCP over the very same link in the same run, once per kernel
// controller (BENCH_TCP_CC, default `bbr,cubic`: iperf3 -C sets it per socket;
// `default` = node net with the host default; a container may not let a
// namespace change its sysctl default). Two network
// namespaces joined by a veth pair; each end drops X% of what it receives
// (data and ACKs, both directions). With `tc ... netem` available that also
// adds BENCH_LOSS_DELAY_MS (default 5) one-way delay; kernels without sch_netem
// fall back to iptables `-m statistic` loss (as test/daemon/lossy-link.test.ts)
// at the veth's own sub-millisecond RTT. Pilot = real daemons (`pilotctl
// bench`, encrypted, `--cc`), TCP between the same two namespaces. Then, with
// no loss, latency under load: `pilotctl ping` over the same path while a bulk
// transfer runs, per controller (BENCH_LATENCY_MB, 0 skips it). Needs root,
// ip, iptables, iperf3. Prints Markdown tables. The veth has GSO/TSO off
// (gso_max_segs 1) unless BENCH_LOSS_GSO=1, so kernel TCP loses packets, not
// 64 KB super-packets, to the drop rule.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { Agent, startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { Lab, netnsSupport } from '../test/helpers/netns.ts';

const MB = 1024 * 1024;
const DELAY_MS = Number(process.env.BENCH_LOSS_DELAY_MS ?? 5);
const LOSSES = (process.env.BENCH_LOSSES ?? '0,1,5').split(',').map(Number);
/** MiB per run, by loss %: lossy runs are slow, keep them to a few seconds. */
const SIZE_MB: Record<number, number> = { 0: 32, 1: 16, 5: 8 };
const IP_A = '10.77.0.1';
const IP_B = '10.77.0.2';
const TCP_PORT = 5201;
const CCS = (process.env.BENCH_CC ?? 'bbr,cubic').split(',') as ('bbr' | 'cubic' | 'newreno')[];
/** MiB of the bulk transfer the latency-under-load pings run beside (0: skip that part). */
const LATENCY_MB = Number(process.env.BENCH_LATENCY_MB ?? 64);
const LATENCY = LATENCY_MB > 0;
const TCP_CCS = (process.env.BENCH_TCP_CC ?? 'bbr,cubic').split(',');
/** BENCH_LOSS_GSO=1 keeps the veth's GSO/TSO (kernel TCP then loses whole 64 KB super-packets to one iptables drop). */
const GSO_OFF = process.env.BENCH_LOSS_GSO !== '1';

// ---------- TCP helpers, run as subprocesses inside a namespace ----------

async function tcpServer(host: string, port: number): Promise<void> {
  const server = net.createServer((s) => {
    s.on('data', () => {});
    s.on('end', () => s.end());
    s.on('error', () => {});
  });
  server.listen(port, host, () => console.log('listening'));
}

async function tcpClient(host: string, port: number, bytes: number): Promise<void> {
  const block = Buffer.alloc(64 * 1024, 0x5a);
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const c = net.connect(port, host, async () => {
      for (let n = 0; n < bytes; n += block.length) if (!c.write(block)) await new Promise((r) => c.once('drain', r));
      c.end();
    });
    c.on('data', () => {});
    c.on('error', reject);
    c.on('close', () => resolve()); // the server ends after it read everything
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ mbPerSec: bytes / 1e6 / secs, seconds: secs }));
}

// ---------- the bench ----------

function hasNetem(lab: Lab, ns: string): boolean {
  try {
    lab.sh(ns, 'tc qdisc replace dev va root netem delay 0ms');
    return true;
  } catch {
    return false; // "Specified qdisc kind is unknown": no sch_netem in this kernel
  }
}

/** X% loss each way on the veth (registry traffic on port 9000 spared with iptables), plus delay with netem. */
function setLink(lab: Lab, nsA: string, nsB: string, lossPct: number, netem: boolean): void {
  for (const [ns, dev] of [
    [nsA, 'va'],
    [nsB, 'vb'],
  ] as const) {
    if (netem) {
      lab.sh(ns, `tc qdisc replace dev ${dev} root netem delay ${DELAY_MS}ms loss ${lossPct}% limit 100000`);
      continue;
    }
    lab.sh(ns, `iptables -F INPUT`);
    if (lossPct > 0)
      lab.sh(
        ns,
        `iptables -A INPUT -i ${dev} -p udp --sport 9000 -j ACCEPT; iptables -A INPUT -i ${dev} -p udp --dport 9000 -j ACCEPT; iptables -A INPUT -i ${dev} -m statistic --mode random --probability ${lossPct / 100} -j DROP`,
      );
  }
}

async function pilotBench(from: Agent, to: Agent, sizeMb: number): Promise<number> {
  const r = await from.ctl(['bench', to.address, String(sizeMb)], 600_000);
  if (r.code !== 0) throw new Error(`pilotctl bench failed: ${r.stderr}`);
  return r.json.data.mbPerSec as number;
}

function iperfBench(nsB: string, sizeMb: number, cc: string): number {
  const r = spawnSync('ip', ['netns', 'exec', nsB, 'iperf3', '-c', IP_A, '-p', String(TCP_PORT + 1), '-n', `${sizeMb}M`, '-C', cc, '--json'], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  const out = JSON.parse(r.stdout) as { error?: string; end?: { sum_received?: { bits_per_second: number } } };
  if (r.status !== 0 || out.end?.sum_received === undefined) throw new Error(`iperf3 -C ${cc} failed: ${out.error ?? r.stderr}`);
  return out.end.sum_received.bits_per_second / 8e6;
}

function tcpBench(nsB: string, sizeMb: number): number {
  const r = spawnSync(
    'ip',
    ['netns', 'exec', nsB, process.execPath, new URL(import.meta.url).pathname, '--tcp-client', IP_A, String(TCP_PORT), String(sizeMb * MB)],
    { encoding: 'utf8', timeout: 600_000 },
  );
  if (r.status !== 0) throw new Error(`tcp client failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).mbPerSec as number;
}

async function main(): Promise<void> {
  const support = netnsSupport();
  if (!support.ok) throw new Error(`bench:loss needs network namespaces: ${support.reason}`);
  if (spawnSync('which', ['tc']).status !== 0) throw new Error('bench:loss needs tc (apt-get install iproute2)');
  const lab = new Lab();
  const work = tmpDir('pilot-bench-loss-');
  const agents: Agent[] = [];
  let server: ReturnType<typeof spawn> | undefined;
  let iperf: ReturnType<typeof spawn> | undefined;
  try {
    const nsA = lab.ns('a');
    const nsB = lab.ns('b');
    lab.sh(nsA, `ip link add va type veth peer name vb netns ${nsB}; ip addr add ${IP_A}/24 dev va; ip link set va up`);
    lab.sh(nsB, `ip addr add ${IP_B}/24 dev vb; ip link set vb up`);
    // No GSO/TSO super-packets on the veth (no ethtool here: gso_max_segs 1 makes the kernel's TCP build one-MSS
    // skbs): otherwise the iptables rule drops a 64 KB burst as one packet and kernel TCP's loss is not X% of packets
    if (GSO_OFF)
      for (const [ns, dev] of [
        [nsA, 'va'],
        [nsB, 'vb'],
      ] as const)
        lab.sh(ns, `ip link set ${dev} gso_max_segs 1`);
    const netem = hasNetem(lab, nsA);
    setLink(lab, nsA, nsB, 0, netem);
    const rdv = await startRendezvous({ netns: nsA, listen: `${IP_A}:9000` });
    const pairs = Object.fromEntries(CCS.map((cc) => [cc, [new Agent(`a-${cc}`, work, nsA), new Agent(`b-${cc}`, work, nsB)] as const]));
    for (const [cc, [a, b]] of Object.entries(pairs)) {
      agents.push(a, b);
      await a.start(['--registry', `${IP_A}:9000`, '--email', `a-${cc}@example.com`, '--hostname', `a-${cc}`, '--listen', `${IP_A}:0`, '--cc', cc]);
      await b.start(['--registry', `${IP_A}:9000`, '--email', `b-${cc}@example.com`, '--hostname', `b-${cc}`, '--listen', `${IP_B}:0`, '--cc', cc]);
      await b.ctl(['handshake', a.address]);
      await a.ctl(['approve', b.address]);
      await b.ctl(['ping', a.address, '--count', '2', '--interval', '10ms']);
    }
    const first = pairs[CCS[0]!]!;
    const ping = await first[1].ctl(['ping', first[0].address, '--count', '20', '--interval', '10ms']);
    const rtt = netem ? `${2 * DELAY_MS} ms` : `${(ping.json?.data?.avgMs as number | undefined)?.toFixed(2) ?? '?'} ms`;
    server = spawn('ip', ['netns', 'exec', nsA, process.execPath, new URL(import.meta.url).pathname, '--tcp-server', IP_A, String(TCP_PORT)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((r) => server!.stdout!.once('data', () => r()));
    if (TCP_CCS.some((cc) => cc !== 'default')) {
      if (spawnSync('which', ['iperf3']).status !== 0)
        throw new Error('bench:loss needs iperf3 for BENCH_TCP_CC (apt-get install iperf3), or BENCH_TCP_CC=default');
      iperf = spawn('ip', ['netns', 'exec', nsA, 'iperf3', '-s', '-B', IP_A, '-p', String(TCP_PORT + 1)], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 500)); // iperf3 -s prints nothing parseable before a client comes
    }

    const rows: string[] = [];
    for (const loss of LOSSES) {
      setLink(lab, nsA, nsB, loss, netem);
      const size = SIZE_MB[loss] ?? 4;
      const pilot: number[] = [];
      for (const cc of CCS) pilot.push(await pilotBench(pairs[cc]![1], pairs[cc]![0], size));
      const tcp = TCP_CCS.map((cc) => (cc === 'default' ? tcpBench(nsB, size) : iperfBench(nsB, size, cc)));
      const ratio = tcp.length > 0 && pilot.length > 0 ? ` ${(pilot[0]! / tcp[0]!).toFixed(2)}x |` : '';
      rows.push(`| ${loss}% | ${rtt} | ${size} MiB | ${[...pilot, ...tcp].map((x) => x.toFixed(2)).join(' | ')} |${ratio}`);
      console.error(rows[rows.length - 1]);
    }
    // latency under load (BENCHMARKS.md "Latency under load"): pings over the same path while a bulk transfer runs,
    // no added loss; a loss-based controller fills the bottleneck queue (the receiving socket buffer), BBR should not
    setLink(lab, nsA, nsB, 0, netem);
    const latRows: string[] = [];
    const fmt = (d: { minMs?: number; avgMs?: number; maxMs?: number } | undefined): string =>
      d === undefined ? '?' : `${d.minMs?.toFixed(1)} / ${d.avgMs?.toFixed(1)} / ${d.maxMs?.toFixed(1)}`;
    for (const cc of LATENCY ? CCS : []) {
      const [a, b] = pairs[cc]!;
      const quiet = await b.ctl(['ping', a.address, '--count', '10', '--interval', '20ms']);
      const bulk = pilotBench(b, a, LATENCY_MB);
      await new Promise((r) => setTimeout(r, 300));
      const loaded = await b.ctl(['ping', a.address, '--count', '15', '--interval', '40ms']);
      const rate = await bulk;
      latRows.push(`| ${cc} | ${fmt(quiet.json?.data)} ms | ${fmt(loaded.json?.data)} ms | ${rate.toFixed(2)} MB/s |`);
      console.error(latRows[latRows.length - 1]);
    }
    const kernelCc = fs.existsSync('/proc/sys/net/ipv4/tcp_congestion_control')
      ? fs.readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim()
      : '?';
    const how = netem
      ? `netem delay ${DELAY_MS} ms + loss X% on each end`
      : 'iptables -m statistic loss X% on each end (no sch_netem in this kernel: no added delay, RTT = overlay ping over the bare veth)';
    console.log(
      `One stream b -> a across a veth pair${GSO_OFF ? ' (GSO/TSO off: gso_max_segs 1)' : ''}, ${how}; Pilot = daemons (\`pilotctl bench\`), TCP = node net (host default ${kernelCc}).\n`,
    );
    const cols = [...CCS.map((cc) => `Pilot ${cc} MB/s`), ...TCP_CCS.map((cc) => `TCP ${cc} MB/s`)];
    const ratioCol = TCP_CCS.length > 0 && CCS.length > 0 ? [`Pilot ${CCS[0]} / TCP ${TCP_CCS[0]}`] : [];
    const head = ['loss', 'RTT', 'size', ...cols, ...ratioCol];
    console.log([`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows].join('\n'));
    if (latRows.length > 0) {
      console.log(`\nLatency under load: \`pilotctl ping\` b -> a, quiet and during a ${LATENCY_MB} MiB transfer b -> a, no loss.\n`);
      console.log(['| controller | ping quiet min / avg / max | ping during the bulk | bulk |', '|---|---|---|---|', ...latRows].join('\n'));
    }
    await rdv.kill();
  } finally {
    server?.kill();
    iperf?.kill();
    for (const a of agents) await a.stop();
    lab.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
if (args[0] === '--tcp-server') await tcpServer(args[1]!, Number(args[2]));
else if (args[0] === '--tcp-client') await tcpClient(args[1]!, Number(args[2]), Number(args[3]));
else await main();
