// The per-packet JavaScript of the receive and relay paths, in one process with no sockets
// (issue 20): what the daemon's demux does with one datagram before the session layer, the
// path layer's check on every authenticated packet, and the rendezvous relay's forward. CPU
// bound and single-threaded, so much steadier on a shared box than an end-to-end run; run it
// in two trees (e.g. a worktree of the base commit) to compare. Reports ns per packet, the
// median of BENCH_RXPATH_REPS (default 5) interleaved reps of BENCH_RXPATH_N (default 500,000).
import os from 'node:os';
import { Underlay, type UnderlayCounters, type UnderlayHost } from '../src/daemon/underlay.ts';
import { generateIdentity } from '../src/registry/signing.ts';
import { holdIpv6 } from '../src/nat/family-preference.ts';
import type { Path } from '../src/nat/path.ts';
import { OnlineIndex } from '../src/rendezvous/online-index.ts';
import { Relay } from '../src/rendezvous/relay.ts';
import { type Link, UdpLink, UdpLinks, type UdpSender } from '../src/rendezvous/link.ts';
import { silentLogger } from '../src/util/logger.ts';
import { makeAddress, writeAddress } from '../src/wire/address.ts';
import { PacketType } from '../src/wire/packet-types.ts';

const N = Number(process.env.BENCH_RXPATH_N ?? 500_000);
const REPS = Number(process.env.BENCH_RXPATH_REPS ?? 5);
const RV = { host: '203.0.113.1', port: 9000 };
/** The relaying sender's source address as the rendezvous's receiver hands it (one string per address). */
const SRC = '198.51.100.1';

let sink = 0; // keeps the work observable

function underlay(): Underlay {
  const counters: UnderlayCounters = { garbage: 0, relayIn: 0, relayOut: 0, udpIn: 0, udpOut: 0, gsoSends: 0, gsoPackets: 0, rxBatches: 0, rxBatchPackets: 0 };
  const host: UnderlayHost = {
    log: silentLogger(),
    counters,
    now: () => 0,
    registryPacket: () => {},
    sessionPacket: (pkt, p) => {
      sink += pkt.length + (p.kind === 'direct' ? p.port : 1);
    },
    uplinkChanged: () => {},
    uplinkUp: () => {},
    uplinkDown: () => {},
    spraySocketsInUse: () => new Set(),
    birthdayActive: () => false,
  };
  return new Underlay(host, {
    listen: '0.0.0.0:0',
    home: os.tmpdir(),
    rendezvous: RV,
    registry: 'bench:9000',
    uplink: 'udp',
    identity: generateIdentity(),
    serverKey: () => undefined,
  });
}

/** ns per call of `fn(i)` over N calls (fresh datagram objects made outside the timing). */
function time(prepare: (i: number) => unknown, fn: (x: unknown) => void): number {
  const inputs = Array.from({ length: 1024 }, (_, i) => prepare(i));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn(inputs[i & 1023]);
  return Number(process.hrtime.bigint() - t0) / N;
}

function relayRig(): { relay: Relay; link: Link; packet: () => Buffer } {
  const online = new OnlineIndex();
  const a = makeAddress(0, 1);
  const b = makeAddress(0, 2);
  const mk = (id: string): Link => ({ kind: 'udp', id, observed: '198.51.100.1:1', send: (p) => ((sink += p[0]!), true) });
  const la = mk('udp:198.51.100.1:4000');
  online.seen({ address: a, keyB64: 'ka', link: la, lanEndpoints: [], now: Date.now(), persisted: true });
  online.seen({ address: b, keyB64: 'kb', link: mk('udp:198.51.100.2:4000'), lanEndpoints: [], now: Date.now(), persisted: true });
  const relay = new Relay(online, { perSec: 1e15, burst: 1e15 }, async () => true);
  const tpl = Buffer.alloc(7 + 1225, 0xab);
  tpl[0] = PacketType.RelaySend;
  writeAddress(tpl, 1, b);
  tpl[7] = PacketType.Data;
  return { relay, link: la, packet: () => Buffer.from(tpl) };
}

async function main(): Promise<void> {
  const u = underlay();
  const data = Buffer.alloc(1238, 0xab);
  data[0] = PacketType.Data;
  const deliver = Buffer.alloc(7 + 1238, 0xab);
  deliver[0] = PacketType.RelayDeliver;
  writeAddress(deliver, 1, makeAddress(0, 42));
  deliver[7] = PacketType.Data;
  const v4: Path = { kind: 'direct', host: '198.51.100.7', port: 4000 };
  const r = relayRig();
  await new Promise((res) => setTimeout(res, 0));
  r.relay.handle(r.packet(), r.link); // the first packet of the pair waits for the policy
  await new Promise((res) => setTimeout(res, 10));

  const udpSink: UdpSender = { send: (p) => void (sink += p[0]!) };
  const links = new UdpLinks(udpSink);
  const cases: Record<string, () => number> = {
    // dgram gives a new rinfo object per datagram; on the dual-stack socket its address is IPv4-mapped
    'daemon demux, direct datagram (dual-stack source)': () =>
      time(
        () => ({ address: '::ffff:198.51.100.7', port: 4000 }),
        (x) => u.onUdp(data, x as { address: string; port: number }),
      ),
    'daemon demux, relayed datagram': () =>
      time(
        () => ({ address: RV.host, port: RV.port }),
        (x) => u.onUdp(deliver, x as { address: string; port: number }),
      ),
    'path layer, IPv6 hold check (IPv4 path)': () =>
      time(
        (i) => ({ kind: 'direct', host: '198.51.100.7', port: 4000 + (i & 1) }),
        (x) => {
          sink += holdIpv6(v4, x as Path, 0) ? 1 : 0;
        },
      ),
    'rendezvous relay forward (trusted pair)': () =>
      time(
        () => r.packet(),
        (x) => {
          // The relay rewrites a packet in place (its destination becomes the source): put the destination back.
          (x as Buffer).writeUInt32BE(2, 3);
          r.relay.handle(x as Buffer, r.link);
        },
      ),
    // What the rendezvous does per datagram before and with UdpLinks: a Link for the source, then
    // the relay (whose first step looks the sender up by the link's id).
    'rendezvous datagram + relay forward, a new UdpLink each (before)': () =>
      time(
        () => r.packet(),
        (x) => {
          (x as Buffer).writeUInt32BE(2, 3);
          r.relay.handle(x as Buffer, new UdpLink(udpSink, SRC, 4000));
        },
      ),
    'rendezvous datagram + relay forward, UdpLinks (one per source)': () =>
      time(
        () => r.packet(),
        (x) => {
          (x as Buffer).writeUInt32BE(2, 3);
          r.relay.handle(x as Buffer, links.get(SRC, 4000));
        },
      ),
  };
  const got: Record<string, number[]> = {};
  for (let rep = 0; rep < REPS; rep++) for (const [k, f] of Object.entries(cases)) (got[k] ??= []).push(f());
  const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  console.log(`receive/relay path JavaScript, ns per packet (median of ${REPS} reps x ${N.toLocaleString('en')}), load ${os.loadavg()[0]!.toFixed(1)}`);
  console.log('| step | ns/packet |');
  console.log('|---|---|');
  for (const [k, v] of Object.entries(got)) console.log(`| ${k} | ${median(v).toFixed(0)} |`);
  if (sink === 42) console.log('');
}

await main();
