// Feasibility of UDP GSO (issue 20): packets/s and sender CPU for plain dgram
// sends, the addon's one-datagram send (sendOne: what a lone packet costs without
// dgram's send machinery) and GSO batches of 8/16/32, from a sender namespace through a NAT
// router namespace (MASQUERADE, forwarding on veth) to a plain dgram receiver.
// Root only. BENCH_GSO_SECONDS (default 3), BENCH_GSO_SIZE (default 1252), BENCH_GSO_REPS (default 3).
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { loadGso, socketFd } from '../src/util/udp-gso.ts';

const role = process.argv[2];
const SECONDS = Number(process.env.BENCH_GSO_SECONDS ?? 3);
const SIZE = Number(process.env.BENCH_GSO_SIZE ?? 1252);

if (role === 'recv') {
  const s = dgram.createSocket({ type: 'udp6', recvBufferSize: 8 << 20 });
  let n = 0;
  let bad = 0;
  s.on('message', (m) => {
    if (m.length !== SIZE) bad++;
    n++;
  });
  s.bind(9999, () => process.stdout.write('ready\n'));
  process.stdin.on('data', () => {
    process.stdout.write(`${JSON.stringify({ received: n, bad })}\n`);
    process.exit(0);
  });
} else if (role === 'send') {
  const batch = Number(process.argv[3]);
  const host = process.argv[4]!;
  const gso = loadGso();
  if (batch !== 1 && !gso) throw new Error('addon not built: node-gyp rebuild');
  const s = dgram.createSocket({ type: 'udp6', sendBufferSize: 8 << 20 });
  s.bind(0, () => {
    const fd = socketFd(s)!;
    const bufs = Array.from({ length: Math.max(batch, 1) }, () => Buffer.alloc(SIZE, 7));
    let sent = 0;
    let fallback = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const end = t0 + SECONDS * 1000;
    const turn = (): void => {
      // 64 packets per event-loop turn, as a connection's flush does
      for (let i = 0; i < 64; i += Math.max(batch, 1)) {
        if (batch === 1) {
          s.send(bufs[0]!, 9999, host);
          sent++;
        } else if (batch === 0) {
          if (gso!.sendOne(fd, bufs[0]!, host, 9999) < 0) {
            fallback++;
            s.send(bufs[0]!, 9999, host);
          }
          sent++;
        } else {
          const r = gso!.sendGso(fd, bufs, SIZE, host, 9999);
          if (r < 0) {
            fallback++;
            for (const b of bufs) s.send(b, 9999, host);
          }
          sent += batch;
        }
      }
      if (performance.now() < end) setImmediate(turn);
      else {
        const cpu = process.cpuUsage(c0);
        const secs = (performance.now() - t0) / 1000;
        process.stdout.write(`${JSON.stringify({ sent, secs, cpuUser: cpu.user / 1e6, cpuSys: cpu.system / 1e6, fallback })}\n`);
        s.close();
      }
    };
    turn();
  });
} else {
  const p = `gso${process.pid % 10000}`;
  const sh = (cmd: string): string => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });
  const cleanup = (): void => {
    for (const n of ['a', 'r', 'b']) sh(`ip netns del ${p}-${n} 2>/dev/null || true`);
  };
  process.on('exit', cleanup);
  cleanup();
  for (const n of ['a', 'r', 'b']) sh(`ip netns add ${p}-${n} && ip -n ${p}-${n} link set lo up`);
  sh(`ip link add ${p}a type veth peer name ${p}ra && ip link set ${p}a netns ${p}-a && ip link set ${p}ra netns ${p}-r`);
  sh(`ip link add ${p}b type veth peer name ${p}rb && ip link set ${p}b netns ${p}-b && ip link set ${p}rb netns ${p}-r`);
  sh(`ip -n ${p}-a addr add 10.77.1.2/24 dev ${p}a && ip -n ${p}-a link set ${p}a up && ip -n ${p}-a route add default via 10.77.1.1`);
  sh(`ip -n ${p}-r addr add 10.77.1.1/24 dev ${p}ra && ip -n ${p}-r link set ${p}ra up`);
  sh(`ip -n ${p}-r addr add 10.77.2.1/24 dev ${p}rb && ip -n ${p}-r link set ${p}rb up`);
  sh(`ip -n ${p}-b addr add 10.77.2.2/24 dev ${p}b && ip -n ${p}-b link set ${p}b up && ip -n ${p}-b route add default via 10.77.2.1`);
  sh(`ip netns exec ${p}-r sysctl -qw net.ipv4.ip_forward=1`);
  sh(`ip netns exec ${p}-r iptables -t nat -A POSTROUTING -o ${p}rb -j MASQUERADE`);
  const self = fileURLToPath(import.meta.url);
  const node = process.execPath;
  const runOnce = async (batch: number): Promise<Record<string, number>> => {
    const recv = spawn('ip', ['netns', 'exec', `${p}-b`, node, self, 'recv'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: string[] = [];
    recv.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
    while (lines.length === 0) await new Promise((r) => setTimeout(r, 20));
    const out = JSON.parse(sh(`ip netns exec ${p}-a ${node} ${self} send ${batch} ::ffff:10.77.2.2`)) as Record<string, number>;
    await new Promise((r) => setTimeout(r, 200));
    recv.stdin.write('x');
    while (lines.length < 2) await new Promise((r) => setTimeout(r, 20));
    recv.kill();
    const got = JSON.parse(lines[1]!) as { received: number; bad: number };
    return { ...out, ...got };
  };
  const batches = [1, 0, 8, 16, 32]; // 1: dgram.send, 0: the addon's sendOne
  const reps = Number(process.env.BENCH_GSO_REPS ?? 3);
  const results = new Map<number, Array<Record<string, number>>>();
  for (let rep = 0; rep < reps; rep++) for (const b of batches) results.set(b, [...(results.get(b) ?? []), await runOnce(b)]);
  const med = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`UDP GSO feasibility: ${SIZE}-byte packets, ${SECONDS} s per run, ${reps} interleaved reps, sender -> NAT router -> receiver (veth)`);
  console.log('| send | sent pkt/s | received pkt/s | sender CPU us/pkt sent | received/sent | bad sizes |');
  console.log('|---|---|---|---|---|---|');
  for (const b of batches) {
    const rs = results.get(b)!;
    const sentPps = med(rs.map((r) => r.sent! / r.secs!));
    const recvPps = med(rs.map((r) => r.received! / r.secs!));
    const cpu = med(rs.map((r) => ((r.cpuUser! + r.cpuSys!) * 1e6) / r.sent!));
    const ratio = med(rs.map((r) => r.received! / r.sent!));
    console.log(
      `| ${b === 1 ? 'dgram send' : b === 0 ? 'addon sendOne' : `GSO x${b}`} | ${Math.round(sentPps)} | ${Math.round(recvPps)} | ${cpu.toFixed(2)} | ${ratio.toFixed(2)} | ${rs.reduce((a, r) => a + r.bad!, 0)} |`,
    );
  }
  process.exit(0);
}
