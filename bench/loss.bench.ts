// `npm run bench:loss`: one Pilot stream under random loss, CUBIC vs NewReno,
// next to raw TCP over the very same link in the same run. Two network
// namespaces joined by a veth pair; each end drops X% of what it receives
// (data and ACKs, both directions). With `tc ... netem` available that also
// adds BENCH_LOSS_DELAY_MS (default 5) one-way delay; kernels without sch_netem
// fall back to iptables `-m statistic` loss (as test/daemon/lossy-link.test.ts)
// at the veth's own sub-millisecond RTT. Pilot = real daemons (`pilotctl
// bench`, encrypted, `--cc cubic|newreno`), TCP = node `net` (the kernel's
// default congestion control) between the same two namespaces. Needs root, ip,
// iptables. Prints a Markdown table.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { Agent, startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { Lab, netnsSupport } from '../test/helpers/netns.ts';

const MB = 1024 * 1024;
const DELAY_MS = Number(process.env.BENCH_LOSS_DELAY_MS ?? 5);
const LOSSES = (process.env.BENCH_LOSSES ?? '0,1,5').split(',').map(Number);
/** MiB per run, by loss %: lossy runs are slow, keep them to a few seconds. */
const SIZE_MB: Record<number, number> = { 0: 32, 1: 8, 5: 2 };
const IP_A = '10.77.0.1';
const IP_B = '10.77.0.2';
const TCP_PORT = 5201;

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
  try {
    const nsA = lab.ns('a');
    const nsB = lab.ns('b');
    lab.sh(nsA, `ip link add va type veth peer name vb netns ${nsB}; ip addr add ${IP_A}/24 dev va; ip link set va up`);
    lab.sh(nsB, `ip addr add ${IP_B}/24 dev vb; ip link set vb up`);
    const netem = hasNetem(lab, nsA);
    setLink(lab, nsA, nsB, 0, netem);
    const rdv = await startRendezvous({ netns: nsA, listen: `${IP_A}:9000` });
    const pairs: Record<'cubic' | 'newreno', [Agent, Agent]> = {
      cubic: [new Agent('a-cubic', work, nsA), new Agent('b-cubic', work, nsB)],
      newreno: [new Agent('a-newreno', work, nsA), new Agent('b-newreno', work, nsB)],
    };
    for (const [cc, [a, b]] of Object.entries(pairs)) {
      agents.push(a, b);
      await a.start(['--registry', `${IP_A}:9000`, '--email', `a-${cc}@example.com`, '--hostname', `a-${cc}`, '--listen', `${IP_A}:0`, '--cc', cc]);
      await b.start(['--registry', `${IP_A}:9000`, '--email', `b-${cc}@example.com`, '--hostname', `b-${cc}`, '--listen', `${IP_B}:0`, '--cc', cc]);
      await b.ctl(['handshake', a.address]);
      await a.ctl(['approve', b.address]);
      await b.ctl(['ping', a.address, '--count', '2', '--interval', '10ms']);
    }
    const ping = await pairs.cubic[1].ctl(['ping', pairs.cubic[0].address, '--count', '20', '--interval', '10ms']);
    const rtt = netem ? `${2 * DELAY_MS} ms` : `${(ping.json?.data?.avgMs as number | undefined)?.toFixed(2) ?? '?'} ms`;
    server = spawn('ip', ['netns', 'exec', nsA, process.execPath, new URL(import.meta.url).pathname, '--tcp-server', IP_A, String(TCP_PORT)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((r) => server!.stdout!.once('data', () => r()));

    const rows: string[] = [];
    for (const loss of LOSSES) {
      setLink(lab, nsA, nsB, loss, netem);
      const size = SIZE_MB[loss] ?? 4;
      const cubic = await pilotBench(pairs.cubic[1], pairs.cubic[0], size);
      const newreno = await pilotBench(pairs.newreno[1], pairs.newreno[0], size);
      const tcp = tcpBench(nsB, size);
      rows.push(`| ${loss}% | ${rtt} | ${size} MiB | ${cubic.toFixed(2)} | ${newreno.toFixed(2)} | ${tcp.toFixed(2)} |`);
      console.error(rows[rows.length - 1]);
    }
    const kernelCc = fs.existsSync('/proc/sys/net/ipv4/tcp_congestion_control')
      ? fs.readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim()
      : '?';
    const how = netem
      ? `netem delay ${DELAY_MS} ms + loss X% on each end`
      : 'iptables -m statistic loss X% on each end (no sch_netem in this kernel: no added delay, RTT = overlay ping over the bare veth)';
    console.log(`One stream b -> a across a veth pair, ${how}; Pilot = daemons (\`pilotctl bench\`), TCP = node net (kernel ${kernelCc}).\n`);
    console.log(['| loss | RTT | size | Pilot CUBIC MB/s | Pilot NewReno MB/s | TCP MB/s |', '|---|---|---|---|---|---|', ...rows].join('\n'));
    await rdv.kill();
  } finally {
    server?.kill();
    for (const a of agents) await a.stop();
    lab.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
if (args[0] === '--tcp-server') await tcpServer(args[1]!, Number(args[2]));
else if (args[0] === '--tcp-client') await tcpClient(args[1]!, Number(args[2]), Number(args[3]));
else await main();
