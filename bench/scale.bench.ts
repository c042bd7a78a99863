// Scale of one real daemon: idle RSS and CPU, handshakes per second, memory per
// session and per open stream with many peers.
// Peers are light clients in this process running the real code over real UDP
// sockets: each has its own identity registered at the real rendezvous, its own
// socket, SessionManager (Noise IK + ChaCha20-Poly1305) and Connection. The
// daemon is public, so untrusted peers may handshake and use its echo port 7
// (trust is a registry round trip per pair and would measure the registry).
// The daemon checks every new peer's key at the registry (real cost, included).
// Env: BENCH_PEERS (default 1000), BENCH_IDLE_SECS (default 30), BENCH_HS_CONCURRENCY (default 64).
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import { generateIdentity, type Identity } from '../src/crypto/identity.ts';
import { SessionManager } from '../src/crypto/session-manager.ts';
import { DATA_HEADER_BYTES } from '../src/crypto/session.ts';
import { TAG_BYTES } from '../src/crypto/aead.ts';
import { Inner } from '../src/nat/inner.ts';
import { RegistryClient } from '../src/registry/client.ts';
import { Connection, type Stream } from '../src/transport/connection.ts';
import { PacketType } from '../src/wire/packet-types.ts';
import { addressKey, ADDRESS_BYTES, parseAddress, type Address } from '../src/wire/address.ts';
import { startRendezvous, tmpDir } from '../test/helpers/cluster.ts';
import { CAPACITY_FLAGS } from './load/rendezvous-process.ts';
import { startAgent } from './daemons.ts';
import { cpuSeconds, machine, MiB, rssBytes } from './stats.ts';

const PEERS = Number(process.env.BENCH_PEERS ?? 1000);
const IDLE_SECS = Number(process.env.BENCH_IDLE_SECS ?? 30);
const CONCURRENCY = Number(process.env.BENCH_HS_CONCURRENCY ?? 64);
/**
 * Each light client binds its own loopback address (127.2.x.y; the daemon uses 127.0.0.1), as
 * real peers have their own: the daemon's handshake limits count per source IP (20/s each).
 */
let clients = 0;
function clientIp(): string {
  const n = clients++;
  return `127.2.${Math.floor(n / 250) % 250}.${1 + (n % 250)}`;
}
const HEADROOM = DATA_HEADER_BYTES + 1;

interface Light {
  identity: Identity;
  address: Address;
  sock: dgram.Socket;
  registry: RegistryClient;
  sessions: SessionManager<string> | undefined;
  conn: Connection | undefined;
  stream: Stream | undefined;
}

async function lightClient(rdvPort: number): Promise<Light> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, clientIp(), () => r()));
  const identity = generateIdentity();
  const l: Light = {
    identity,
    address: { network: 0, node: 0 },
    sock,
    registry: undefined as unknown as RegistryClient,
    sessions: undefined,
    conn: undefined,
    stream: undefined,
  };
  l.registry = new RegistryClient({ identity, send: (p) => sock.send(p, rdvPort, '127.0.0.1'), timeoutMs: 2000, retries: 5 });
  sock.on('message', (m) => {
    const t = m[0];
    if (t === PacketType.RegistryResponse || t === PacketType.RegistryPush) l.registry.handlePacket(m);
    else if (t === PacketType.RelayDeliver) l.sessions?.handlePacket(m.subarray(1 + ADDRESS_BYTES), 'relay');
    else l.sessions?.handlePacket(m, 'direct');
  });
  const r = await l.registry.register({ email: `light-${crypto.randomBytes(4).toString('hex')}@example.com` });
  l.address = typeof r.address === 'string' ? parseAddress(r.address) : r.address;
  return l;
}

/** Handshake with the daemon and resolve once the session is up. */
function connectLight(l: Light, daemon: { address: Address; publicKey: Buffer; port: number }): Promise<void> {
  const peer = { address: daemon.address, publicKey: daemon.publicKey };
  const sessions = new SessionManager<string>({
    identity: l.identity,
    localAddress: l.address,
    bootId: crypto.randomBytes(8),
    send: (_k, pkt) => l.sock.send(pkt, daemon.port, '127.0.0.1'),
  });
  l.sessions = sessions;
  const conn = new Connection({
    role: addressKey(l.address) < addressKey(daemon.address) ? 'low' : 'high',
    headroom: HEADROOM,
    tailroom: TAG_BYTES,
    sendPacket: (p) => {
      const whole = Buffer.from(p.buffer, p.byteOffset - HEADROOM, p.length + HEADROOM + TAG_BYTES);
      whole[DATA_HEADER_BYTES] = Inner.Transport;
      sessions.sendToInPlace(peer, whole);
    },
  });
  l.conn = conn;
  sessions.on('message', (_k: number, plain: Buffer) => {
    if (plain[0] === Inner.Transport) conn.receivePacket(plain.subarray(1));
  });
  return new Promise<void>((resolve, reject) => {
    sessions.once('session', () => resolve());
    sessions.once('handshake-failed', () => reject(new Error('handshake failed')));
    sessions.sendTo(peer, Buffer.from([Inner.Probe, 0, 0, 0, 0, 0, 0, 0, 0])); // starts the handshake; the daemon answers probes
  });
}

/** Open a stream to the daemon's echo port and wait for one byte back (the stream is then really open at both ends). */
function openEchoStream(l: Light): Promise<void> {
  const s = l.conn!.openStream(7);
  l.stream = s;
  s.on('error', () => {});
  return new Promise<void>((resolve) => {
    s.once('data', () => resolve());
    s.write(Buffer.from([0x61]));
  });
}

async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

const mib = (b: number): string => (b / MiB).toFixed(1);
const kib = (b: number): string => (b / 1024).toFixed(1);

async function main(): Promise<void> {
  const work = tmpDir('pilot-bench-scale-');
  const rdv = await startRendezvous({ args: CAPACITY_FLAGS });
  const lights: Light[] = [];
  const ag = await startAgent(rdv, work, `scale-${process.pid % 10000}`, ['--public']);
  const out: string[] = [];
  let verdict = 'not measured';
  try {
    const info = (await ag.ctl(['info'])).json.data as { address: string; publicKey: string };
    const udpPort = Number(fs.readFileSync(`${ag.home}/udp-port`, 'utf8'));
    const daemon = { address: parseAddress(info.address), publicKey: Buffer.from(info.publicKey, 'base64'), port: udpPort };

    // 1. idle: a daemon with nothing to do
    await new Promise((r) => setTimeout(r, 2000)); // let start-up settle
    const idleRss0 = rssBytes(ag.pid);
    const cpu0 = cpuSeconds(ag.pid);
    await new Promise((r) => setTimeout(r, IDLE_SECS * 1000));
    const idleCpu = (cpuSeconds(ag.pid) - cpu0) / IDLE_SECS;
    const idleRss = rssBytes(ag.pid);
    out.push(
      `| daemon idle, no peers, ${IDLE_SECS} s | RSS ${mib(idleRss0)} -> ${mib(idleRss)} MiB | CPU ${(idleCpu * 100).toFixed(2)}% of one core (${(idleCpu * 1000).toFixed(1)} ms/s) |`,
    );

    // 2. light clients register (not timed: registry work, not the daemon's)
    await pool(
      Array.from({ length: PEERS }, (_, i) => i),
      32,
      async () => {
        lights.push(await lightClient(rdv.port));
      },
    );

    // 3. handshakes: every client handshakes with the daemon, CONCURRENCY at a time
    const rss0 = rssBytes(ag.pid);
    const hsCpu0 = cpuSeconds(ag.pid);
    const t0 = performance.now();
    await pool(lights, CONCURRENCY, (l) => connectLight(l, daemon));
    const hsSecs = (performance.now() - t0) / 1000;
    const hsCpu = cpuSeconds(ag.pid) - hsCpu0;
    out.push(
      `| handshakes with one daemon, ${PEERS} new peers, ${CONCURRENCY} at a time | ${(PEERS / hsSecs).toFixed(0)} handshakes/s (${hsSecs.toFixed(2)} s) | daemon CPU ${((hsCpu / PEERS) * 1000).toFixed(2)} ms per handshake (incl. its registry key check) |`,
    );
    await new Promise((r) => setTimeout(r, 3000)); // punching rounds and candidates settle
    const peersUp = ((await ag.ctl(['peers'])).json.data.peers as unknown[]).length;
    const rss1 = rssBytes(ag.pid);
    out.push(`| daemon with ${peersUp} sessions | RSS ${mib(rss0)} -> ${mib(rss1)} MiB | ${kib((rss1 - rss0) / PEERS)} KiB per session |`);

    // 4. one open stream per peer
    const st0 = performance.now();
    await pool(lights, CONCURRENCY, openEchoStream);
    const stSecs = (performance.now() - st0) / 1000;
    await new Promise((r) => setTimeout(r, 1000));
    const rss2 = rssBytes(ag.pid);
    out.push(
      `| ${PEERS} open streams (one per peer, echo port 7) | RSS ${mib(rss1)} -> ${mib(rss2)} MiB | ${kib((rss2 - rss1) / PEERS)} KiB per open stream; opened in ${stSecs.toFixed(2)} s |`,
    );

    // 5. idle again, with every session and stream open (keepalives, timers)
    const cpu2 = cpuSeconds(ag.pid);
    const idle2 = Math.min(IDLE_SECS, 10);
    await new Promise((r) => setTimeout(r, idle2 * 1000));
    const busyCpu = (cpuSeconds(ag.pid) - cpu2) / idle2;
    const rss3 = rssBytes(ag.pid);
    out.push(
      `| daemon holding ${PEERS} sessions + ${PEERS} streams, no traffic, ${idle2} s | RSS ${mib(rss3)} MiB | CPU ${(busyCpu * 100).toFixed(1)}% of one core |`,
    );
    verdict =
      PEERS < 1000
        ? `not measured at 1k (BENCH_PEERS=${PEERS})`
        : `${(rss3 / 1e6).toFixed(0)} MB with ${PEERS} sessions and streams: ${rss3 < 200e6 ? 'met' : 'NOT met'}`;
  } finally {
    for (const l of lights) {
      l.conn?.close();
      l.sessions?.destroy();
      l.registry.close?.();
      l.sock.close();
    }
    await ag.stop();
    await rdv.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(`scale: one daemon (public), ${PEERS} light peers in one process over real UDP sockets; ${machine()}`);
  console.log('');
  console.log('| what | figure | per unit |');
  console.log('|---|---|---|');
  for (const r of out) console.log(r);
  console.log('');
  console.log(`target "1k concurrent peers under 200 MB RSS": ${verdict}`);
}

await main();
