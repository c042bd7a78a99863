// Relayed throughput node -> rendezvous -> node, 1200-byte session packets,
// over UDP vs framed TCP vs WebSocket in one run. The rendezvous runs in its
// own process (as in production; relay byte limit lifted so the transport is
// what is measured); both nodes live in this process. The sender keeps at most
// WINDOW packets in flight; UDP packets that never arrive are counted as lost
// (a window stuck for 20 ms is written off, so UDP pays for its losses in time).
// Env: BENCH_RELAY_SECS (per transport, default 3), BENCH_RELAY_WINDOW (default 256),
// BENCH_RELAY_KINDS (default "udp,tcp,websocket").
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryClient } from '../src/registry/client.ts';
import { generateIdentity } from '../src/registry/signing.ts';
import { startRendezvous } from '../src/rendezvous/server.ts';
import { TcpUplink } from '../src/uplink/tcp-uplink.ts';
import type { UplinkKind } from '../src/uplink/uplink.ts';
import { parseAddress, writeAddress } from '../src/wire/address.ts';

const SECS = Number(process.env.BENCH_RELAY_SECS ?? 3);
const WINDOW = Number(process.env.BENCH_RELAY_WINDOW ?? 256);
const INNER = 1200;
const HOST = '127.0.0.1';

interface Node {
  client: RegistryClient;
  send(pkt: Buffer): boolean;
  /** RelayDeliver packets received. */
  delivered: number;
  close(): void;
}

async function node(kind: UplinkKind, port: number): Promise<Node> {
  const n: Node = { client: undefined as unknown as RegistryClient, send: () => false, delivered: 0, close: () => {} };
  const onPacket = (pkt: Buffer): void => {
    if (pkt[0] === 0x21) n.delivered++;
    else if (pkt[0] === 0x02 || pkt[0] === 0x03) n.client.handlePacket(pkt);
  };
  if (kind === 'udp') {
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    await new Promise<void>((r) => sock.bind(0, HOST, () => r()));
    sock.on('message', onPacket);
    n.send = (pkt) => (sock.send(pkt, port, HOST), true);
    n.close = () => sock.close();
  } else {
    const up = new TcpUplink({ host: HOST, port, mode: kind });
    up.on('packet', onPacket);
    await up.connect();
    n.send = (pkt) => up.send(pkt);
    n.close = () => up.close();
  }
  n.client = new RegistryClient({ identity: generateIdentity(), send: (p) => void n.send(p), timeoutMs: 500, retries: 4 });
  return n;
}

function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function measure(kind: UplinkKind, port: number, serverPid: number): Promise<string> {
  const a = await node(kind, port);
  const b = await node(kind, port);
  try {
    const ra = await a.client.register({ email: 'a@example.com' });
    const rb = await b.client.register({ email: 'b@example.com' });
    await a.client.trustRequest(rb.address);
    await b.client.trustApprove(ra.address);
    const pkt = Buffer.alloc(7 + INNER, 0xab);
    pkt[0] = 0x20;
    writeAddress(pkt, 1, parseAddress(rb.address));
    pkt[7] = 0x12; // a session Data packet, as far as the relay looks

    // In flight = sent - delivered - written off. TCP and WebSocket never lose a
    // packet; over UDP a dropped packet holds its window slot until nothing has
    // arrived for 20 ms, then what is missing is written off. So a lossy path
    // sends less, as a congestion-controlled sender would, instead of flooding
    // the rendezvous's socket buffer.
    let sent = 0;
    let writtenOff = 0;
    let refused = 0;
    let lastDelivered = 0;
    let lastProgress = performance.now();
    const cpu0 = cpuSeconds(serverPid);
    const self0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() - t0 < SECS * 1000) {
      const inflight = sent - writtenOff - b.delivered;
      for (let k = 0; k < Math.min(64, WINDOW - inflight); k++) {
        const p = Buffer.from(pkt); // a fresh packet each time, as the daemon sends
        p.writeUInt32BE(sent, 8);
        if (a.send(p)) sent++;
        else {
          refused++;
          break;
        }
      }
      await tick();
      const now = performance.now();
      if (b.delivered !== lastDelivered) {
        lastDelivered = b.delivered;
        lastProgress = now;
      } else if (kind === 'udp' && now - lastProgress > 20 && sent - writtenOff - b.delivered > 0) {
        writtenOff = sent - b.delivered;
        lastProgress = now;
      }
    }
    const secs = (performance.now() - t0) / 1000;
    const got = b.delivered;
    const cpu = (cpuSeconds(serverPid) - cpu0) / secs;
    const self = process.cpuUsage(self0);
    const selfCpu = (self.user + self.system) / 1e6 / secs;
    // Let the last window land before counting losses.
    for (let i = 0; i < 50 && b.delivered < sent; i++) await new Promise((r) => setTimeout(r, 10));
    const loss = sent > 0 ? ((sent - b.delivered) / sent) * 100 : 0;
    const pps = got / secs;
    const usPerPkt = got > 0 ? (cpu * secs * 1e6) / got : 0; // the rendezvous's CPU per packet relayed (receive + forward)
    return `| ${kind} | ${Math.round(pps).toLocaleString('en')} | ${((pps * INNER) / 1e6).toFixed(1)} | ${loss.toFixed(2)}% | ${(cpu * 100).toFixed(0)}% | ${usPerPkt.toFixed(1)} | ${(selfCpu * 100).toFixed(0)}% | ${refused.toLocaleString('en')} |`;
  } finally {
    a.close();
    b.close();
  }
}

async function main(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const server = spawn(process.execPath, [self, '--server'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      server.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        const m = /port (\d+)/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      server.once('exit', (code) => reject(new Error(`rendezvous exited ${code}`)));
    });
    const rows: string[] = [];
    const kinds = (process.env.BENCH_RELAY_KINDS ?? 'udp,tcp,websocket').split(',') as UplinkKind[];
    for (const kind of kinds) rows.push(await measure(kind, port, server.pid!));
    console.log(`relay throughput, ${INNER}-byte packets, ${SECS} s each, window ${WINDOW}, loopback, rendezvous in its own process`);
    console.log(`${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}\n`);
    console.log(
      "| uplink | packets/s | MB/s (1200-byte payloads) | lost | rendezvous CPU | rendezvous CPU µs/packet | both nodes' CPU | send() refused (backlog) |",
    );
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    server.kill('SIGTERM');
  }
}

if (process.argv[2] === '--server') {
  // Child role: the rendezvous alone in its process.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-relay-bench-'));
  const s = await startRendezvous({ host: HOST, port: 0, dataDir, relayRate: { perSec: 1e12, burst: 1e12 } });
  process.stdout.write(`port ${s.port}\n`);
  process.on('SIGTERM', () => void s.close().then(() => (fs.rmSync(dataDir, { recursive: true, force: true }), process.exit(0))));
} else {
  await main();
}
