// The daemon's underlay on its own: which handler each incoming datagram goes
// to (by type and source), relay framing, the UDP/TCP/WebSocket uplink choice
// and the way back to UDP, the port kept across restarts, and when birthday
// sockets are closed. Real UDP sockets on 127.0.0.1, fake uplinks, a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { once } from 'node:events';
import { noUplinkError, Underlay, type UnderlayCounters, type UnderlayHost, type UnderlayOptions, type RendezvousLink } from '../../src/daemon/underlay.ts';
import { PilotError } from '../../src/util/errors.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { PacketType, RELAY_OVERHEAD } from '../../src/wire/packet-types.ts';
import { makeAddress, readAddress, writeAddress, ADDRESS_BYTES } from '../../src/wire/address.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { loadRx } from '../../src/util/udp-receiver.ts';
import type { Path, UplinkKind } from '../../src/nat/path.ts';
import type { TcpUplinkMode } from '../../src/uplink/tcp-uplink.ts';

const RV = { host: '127.0.0.1', port: 9 };

class FakeLink extends EventEmitter<{ packet: [pkt: Buffer]; up: []; down: [reason: string] }> {
  readonly mode: TcpUplinkMode;
  readonly sent: Buffer[] = [];
  closed = false;
  reconnects: string[] = [];
  private readonly fails: boolean;
  constructor(mode: TcpUplinkMode, fails: boolean) {
    super();
    this.mode = mode;
    this.fails = fails;
  }
  connect(): Promise<void> {
    return this.fails ? Promise.reject(new Error(`${this.mode} refused`)) : Promise.resolve();
  }
  send(pkt: Buffer): boolean {
    this.sent.push(pkt);
    return true;
  }
  reconnect(reason?: string): void {
    this.reconnects.push(reason ?? '');
  }
  close(): void {
    this.closed = true;
  }
}

interface Rig {
  u: Underlay;
  counters: UnderlayCounters;
  registry: Buffer[];
  sessions: Array<{ pkt: Buffer; path: Path }>;
  changes: UplinkKind[];
  events: string[];
  links: FakeLink[];
  inUse: Set<number>;
  birthday: { active: boolean };
  clock: { now: number };
  home: string;
}

function rig(opts: Partial<UnderlayOptions> & { udpAnswers?: boolean[]; failModes?: TcpUplinkMode[] } = {}): Rig {
  const counters: UnderlayCounters = { garbage: 0, relayIn: 0, relayOut: 0, udpIn: 0, udpOut: 0, gsoSends: 0, gsoPackets: 0, rxBatches: 0, rxBatchPackets: 0 };
  const r = {
    counters,
    registry: [] as Buffer[],
    sessions: [] as Array<{ pkt: Buffer; path: Path }>,
    changes: [] as UplinkKind[],
    events: [] as string[],
    links: [] as FakeLink[],
    inUse: new Set<number>(),
    birthday: { active: false },
    clock: { now: 1_000_000 },
    home: opts.home ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-underlay-')),
  };
  const answers = opts.udpAnswers ?? [true];
  const host: UnderlayHost = {
    log: silentLogger(),
    counters,
    now: () => r.clock.now,
    registryPacket: (pkt) => r.registry.push(pkt),
    sessionPacket: (pkt, p) => r.sessions.push({ pkt, path: p }),
    uplinkChanged: (kind) => r.changes.push(kind),
    uplinkUp: () => r.events.push('up'),
    uplinkDown: (reason) => r.events.push(`down ${reason}`),
    spraySocketsInUse: () => r.inUse,
    birthdayActive: () => r.birthday.active,
  };
  const u = new Underlay(host, {
    listen: '127.0.0.1:0',
    home: r.home,
    rendezvous: RV,
    registry: 'rendezvous.example:9',
    uplink: 'auto',
    identity: generateIdentity(),
    serverKey: () => undefined,
    probeUdp: async () => answers.shift() ?? false,
    makeLink: (mode) => {
      const link = new FakeLink(mode, opts.failModes?.includes(mode) ?? false);
      r.links.push(link);
      return link satisfies RendezvousLink;
    },
    ...opts,
  });
  return { u, ...r };
}

const fromRv = { address: RV.host, port: RV.port };
const stranger = { address: '127.0.0.1', port: 40000 };

function relayDeliver(src: number, inner: Buffer): Buffer {
  const pkt = Buffer.alloc(1 + ADDRESS_BYTES + inner.length);
  pkt[0] = PacketType.RelayDeliver;
  writeAddress(pkt, 1, makeAddress(1, src));
  inner.copy(pkt, 1 + ADDRESS_BYTES);
  return pkt;
}

test('demux: registry packets only from the rendezvous, sessions by type from anyone, relay only from the rendezvous', () => {
  const r = rig();
  const resp = Buffer.from([PacketType.RegistryResponse, 1, 2]);
  r.u.onUdp(resp, fromRv);
  r.u.onUdp(Buffer.from([PacketType.RegistryCookie, 9]), fromRv);
  assert.equal(r.registry.length, 2);
  // The same bytes from anyone else (or on a birthday socket) are garbage: never handed to the registry client.
  r.u.onUdp(resp, stranger);
  r.u.onUdp(resp, fromRv, 3);
  assert.equal(r.registry.length, 2);
  assert.equal(r.counters.garbage, 2);

  const data = Buffer.from([PacketType.Data, 0, 0, 0, 1]);
  r.u.onUdp(data, stranger);
  r.u.onUdp(data, stranger, 5);
  assert.deepEqual(
    r.sessions.map((s) => s.path),
    [
      { kind: 'direct', host: '127.0.0.1', port: 40000 },
      { kind: 'direct', host: '127.0.0.1', port: 40000, sock: 5 },
    ],
  );

  const inner = Buffer.from([PacketType.HandshakeInit, 7, 7]);
  r.u.onUdp(relayDeliver(42, inner), fromRv);
  const relayed = r.sessions.at(-1)!;
  assert.deepEqual(relayed.pkt, inner);
  assert.equal(relayed.path.kind, 'relay');
  assert.deepEqual(relayed.path.kind === 'relay' && relayed.path.from, makeAddress(1, 42));
  assert.equal(r.counters.relayIn, 1);
  // A "relay delivery" from a stranger is a spoof; one without an inner packet is malformed.
  r.u.onUdp(relayDeliver(42, inner), stranger);
  r.u.onUdp(relayDeliver(42, Buffer.alloc(0)), fromRv);
  r.u.onUdp(Buffer.alloc(0), stranger);
  r.u.onUdp(Buffer.from([0x7f]), stranger);
  assert.equal(r.sessions.length, 3);
  assert.equal(r.counters.garbage, 6);
  assert.equal(r.counters.udpIn, 11);
});

test('demux: datagrams from the same source share one Path object (no allocation per packet); a new source or socket gets its own', () => {
  const r = rig();
  const data = Buffer.from([PacketType.Data, 0, 0, 0, 1]);
  r.u.onUdp(data, stranger);
  r.u.onUdp(data, { address: '127.0.0.1', port: 40000 }); // a new rinfo object each time, as dgram gives
  r.u.onUdp(data, { address: '127.0.0.1', port: 40001 });
  r.u.onUdp(data, { address: '127.0.0.1', port: 40001 }, 5);
  r.u.onUdp(data, { address: '127.0.0.2', port: 40001 }, 5);
  const paths = r.sessions.map((s) => s.path);
  assert.equal(paths[0], paths[1], 'the same object for the same source');
  assert.deepEqual(paths, [
    { kind: 'direct', host: '127.0.0.1', port: 40000 },
    { kind: 'direct', host: '127.0.0.1', port: 40000 },
    { kind: 'direct', host: '127.0.0.1', port: 40001 },
    { kind: 'direct', host: '127.0.0.1', port: 40001, sock: 5 },
    { kind: 'direct', host: '127.0.0.2', port: 40001, sock: 5 },
  ]);
  assert.equal(new Set(paths).size, 4);
  // IPv4-mapped sources (the dual-stack socket) are unmapped, also when remembered.
  r.u.onUdp(data, { address: '::ffff:127.0.0.9', port: 7 });
  r.u.onUdp(data, { address: '::ffff:127.0.0.9', port: 7 });
  r.u.onUdp(data, { address: '::ffff:127.0.0.9', port: 8 });
  const mapped = r.sessions.slice(-3).map((x) => x.path);
  assert.deepEqual(mapped[0], { kind: 'direct', host: '127.0.0.9', port: 7 });
  assert.equal(mapped[1], mapped[0]);
  assert.deepEqual(mapped[2], { kind: 'direct', host: '127.0.0.9', port: 8 });
  // Relayed datagrams: one Path per sender the relay names, too.
  const inner = Buffer.from([PacketType.Data, 1, 2]);
  r.u.onUdp(relayDeliver(42, inner), fromRv);
  r.u.onUdp(relayDeliver(42, inner), fromRv);
  r.u.onUdp(relayDeliver(43, inner), fromRv);
  const relayed = r.sessions.slice(-3).map((x) => x.path);
  assert.deepEqual(relayed[0], { kind: 'relay', from: makeAddress(1, 42) });
  assert.equal(relayed[1], relayed[0]);
  assert.deepEqual(relayed[2], { kind: 'relay', from: makeAddress(1, 43) });
});

test('auto uplink: UDP when the rendezvous answers there, else TCP, else WebSocket; registry traffic follows', async () => {
  const udp = rig({ udpAnswers: [true] });
  await udp.u.chooseUplink();
  assert.equal(udp.u.kind, 'udp');
  assert.equal(udp.links.length, 0);

  const tcp = rig({ udpAnswers: [false] });
  await tcp.u.chooseUplink();
  assert.equal(tcp.u.kind, 'tcp');
  assert.deepEqual(tcp.changes, ['tcp']);
  // Registry and relay traffic now go over the link; UDP from the rendezvous no longer feeds the registry client.
  tcp.u.sendToRendezvous(Buffer.from([PacketType.RegistryRequest]));
  tcp.u.sendRelay(makeAddress(1, 5), Buffer.from([PacketType.Data]));
  assert.equal(tcp.links[0]!.sent.length, 2);
  assert.equal(tcp.links[0]!.sent[1]![0], PacketType.RelaySend);
  assert.equal(tcp.counters.udpOut, 0);
  tcp.u.onUdp(Buffer.from([PacketType.RegistryResponse]), fromRv);
  tcp.u.onUdp(relayDeliver(9, Buffer.from([PacketType.Data])), fromRv);
  assert.equal(tcp.registry.length, 0);
  assert.equal(tcp.sessions.length, 0);
  tcp.links[0]!.emit('packet', Buffer.from([PacketType.RegistryPush]));
  tcp.links[0]!.emit('packet', relayDeliver(9, Buffer.from([PacketType.Data])));
  tcp.links[0]!.emit('packet', Buffer.from([PacketType.RegistryCookie])); // UDP only
  assert.equal(tcp.registry.length, 1);
  assert.equal(tcp.sessions.length, 1);
  tcp.links[0]!.emit('down', 'reset');
  tcp.links[0]!.emit('up');
  assert.deepEqual(tcp.events, ['down reset', 'up']);
  tcp.u.reconnectUplink('heartbeat unanswered');
  assert.deepEqual(tcp.links[0]!.reconnects, ['heartbeat unanswered']);

  const ws = rig({ udpAnswers: [false], failModes: ['tcp'] });
  await ws.u.chooseUplink();
  assert.equal(ws.u.kind, 'websocket');
  assert.deepEqual(
    ws.links.map((l) => l.mode),
    ['tcp', 'websocket'],
  );

  const none = rig({ udpAnswers: [false], failModes: ['tcp', 'websocket'] });
  await assert.rejects(none.u.chooseUplink());
  assert.equal(none.u.kind, 'udp');
});

test('fixed uplink modes: no UDP probe, and no way back to UDP', async () => {
  const udp = rig({ uplink: 'udp', udpAnswers: [false] });
  await udp.u.chooseUplink();
  assert.equal(udp.u.kind, 'udp');
  const ws = rig({ uplink: 'websocket', udpAnswers: [] });
  await ws.u.chooseUplink();
  assert.equal(ws.u.kind, 'websocket');
  assert.equal(await ws.u.maybeBackToUdp(), false, 'a configured uplink stays');
});

test('auto: back to UDP once the rendezvous answers there again', async () => {
  const r = rig({ udpAnswers: [false, false, true] });
  await r.u.chooseUplink();
  assert.equal(await r.u.maybeBackToUdp(), false, 'still no UDP answer');
  assert.equal(r.u.kind, 'tcp');
  assert.equal(await r.u.maybeBackToUdp(), true);
  assert.equal(r.u.kind, 'udp');
  assert.equal(r.links[0]!.closed, true);
  assert.deepEqual(r.changes, ['tcp', 'udp']);
  assert.equal(await r.u.maybeBackToUdp(), false, 'already on UDP');
});

test('real sockets: the port is kept across restarts, relay sends are framed, datagrams are demuxed', async (t) => {
  const rv = dgram.createSocket('udp4');
  rv.bind(0, '127.0.0.1');
  await once(rv, 'listening');
  t.after(() => rv.close());
  const r = rig({ rendezvous: { host: '127.0.0.1', port: rv.address().port }, uplink: 'udp' });
  await r.u.bind();
  const port = r.u.address().port;
  assert.equal(fs.readFileSync(path.join(r.home, 'udp-port'), 'utf8'), `${port}\n`);

  const got = once(rv, 'message');
  r.u.sendRelay(makeAddress(1, 77), Buffer.from([PacketType.Data, 1, 2, 3]));
  const [pkt] = (await got) as [Buffer];
  assert.equal(pkt[0], PacketType.RelaySend);
  assert.deepEqual(readAddress(pkt, 1), makeAddress(1, 77));
  assert.deepEqual([...pkt.subarray(1 + ADDRESS_BYTES)], [PacketType.Data, 1, 2, 3]);
  assert.equal(r.counters.relayOut, 1);

  rv.send(Buffer.from([PacketType.RegistryResponse, 5]), port, '127.0.0.1');
  const peer = dgram.createSocket('udp4');
  t.after(() => peer.close());
  peer.send(Buffer.from([PacketType.HandshakeInit, 1]), port, '127.0.0.1');
  for (let i = 0; i < 100 && (r.registry.length < 1 || r.sessions.length < 1); i++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(r.registry.length, 1);
  assert.equal(r.sessions[0]!.path.kind, 'direct');
  // read through the batched reader when the addon is built (src/util/udp-receiver.ts), else dgram
  assert.equal(r.counters.rxBatchPackets, loadRx() ? 2 : 0);
  r.u.close();
  await r.u.closeSocket();

  // A restart binds the same port (the reader's own fd closed with the socket) (peers' sessions to our endpoint keep working) ...
  const again = rig({ home: r.home, uplink: 'udp' });
  await again.u.bind();
  assert.equal(again.u.address().port, port);
  // ... unless someone else took it meanwhile: then any port.
  const third = rig({ home: r.home, uplink: 'udp' });
  await third.u.bind();
  assert.notEqual(third.u.address().port, port);
  await again.u.closeSocket();
  await third.u.closeSocket();
});

test('PILOT_RECVMMSG=0: the main socket is read by dgram, datagrams demuxed as with the batched reader', async (t) => {
  const old = process.env.PILOT_RECVMMSG;
  process.env.PILOT_RECVMMSG = '0';
  t.after(() => {
    if (old === undefined) delete process.env.PILOT_RECVMMSG;
    else process.env.PILOT_RECVMMSG = old;
  });
  const r = rig({ uplink: 'udp' });
  await r.u.bind();
  const peer = dgram.createSocket('udp4');
  t.after(() => peer.close());
  for (let i = 0; i < 5; i++) peer.send(Buffer.from([PacketType.Data, i]), r.u.address().port, '127.0.0.1');
  for (let i = 0; i < 100 && r.sessions.length < 5; i++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(r.sessions.length, 5);
  assert.deepEqual(
    r.sessions.map((s) => s.pkt[1]),
    [0, 1, 2, 3, 4],
  );
  assert.equal(r.counters.rxBatches, 0);
  r.u.close();
  await r.u.closeSocket();
});

test('birthday sockets: kept while a path uses them or an attempt runs (10 s), closed after', async () => {
  const r = rig();
  const ids = r.u.openSprayPorts(3);
  assert.deepEqual(ids, [1, 2, 3]);
  r.inUse.add(2);
  r.birthday.active = true;
  r.clock.now += 5_000;
  r.u.releaseSprayPorts();
  assert.equal(r.u.sprayCount, 3, 'attempt running, sockets young');
  r.clock.now += 5_000;
  r.u.releaseSprayPorts();
  assert.equal(r.u.sprayCount, 1, 'only the one a path uses is left');
  r.birthday.active = false;
  r.u.releaseSprayPorts();
  assert.equal(r.u.sprayCount, 1);
  r.inUse.clear();
  r.u.releaseSprayPorts();
  assert.equal(r.u.sprayCount, 0);
  assert.deepEqual(r.u.openSprayPorts(1), [4], 'ids are never reused');
  r.u.close();
  await r.u.closeSocket();
});

test('auto: when no uplink answers, one error names each one tried and why, with a hint from the reasons', async () => {
  const none = rig({ udpAnswers: [false], failModes: ['tcp', 'websocket'] });
  const err = await none.u.chooseUplink().then(
    () => assert.fail('no uplink should have been chosen'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof PilotError);
  assert.equal(err.code, 'UNREACHABLE');
  const at = `${RV.host}:${RV.port}`;
  assert.equal(
    err.message,
    `no uplink reached the rendezvous rendezvous.example:9: udp ${at}: no answer to a hello; tcp ${at}: tcp refused; websocket ws://${at}/pilot: websocket refused`,
  );
  assert.match(err.hint ?? '', /nothing accepts connections on rendezvous\.example:9: is pilot-rendezvous running there/);
});

test('noUplinkError: timeouts point at the host and firewalls, mixed reasons at --registry', () => {
  const udp = { kind: 'udp' as const, target: 'udp 192.0.2.1:9000', reason: 'no answer to a hello' };
  const t = noUplinkError('rdv:9000', [
    udp,
    { kind: 'tcp', target: 'tcp 192.0.2.1:9000', reason: 'connect timeout after 5000 ms' },
    { kind: 'websocket', target: 'websocket ws://192.0.2.1:9000/pilot', reason: 'Opening handshake has timed out' },
  ]);
  assert.match(t.hint ?? '', /did not answer at all: check the host/);
  const m = noUplinkError('rdv:9000', [
    udp,
    { kind: 'tcp', target: 't', reason: 'ECONNRESET' },
    { kind: 'websocket', target: 'w', reason: 'Unexpected server response: 404' },
  ]);
  assert.match(m.hint ?? '', /check --registry HOST:PORT \(rdv:9000\)/);
});

test('bind: a busy --listen port is ADDRESS_IN_USE naming the address and the flag', async () => {
  const holder = dgram.createSocket('udp4');
  await new Promise<void>((r) => holder.bind(0, '127.0.0.1', () => r()));
  const port = holder.address().port;
  try {
    const r = rig({ listen: `127.0.0.1:${port}` });
    const err = await r.u.bind().then(
      () => assert.fail('bound a busy port'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof PilotError, String(err));
    assert.equal(err.code, 'ADDRESS_IN_USE');
    assert.equal(err.message, `udp 127.0.0.1:${port} is already in use by another process`);
    assert.match(err.hint ?? '', new RegExp(`pick another --listen HOST:PORT .*port ${port}`));
  } finally {
    holder.close();
  }
});

test('auto with --wss: UDP, then TCP, then WebSocket, then wss (issue 19); without --wss there is no wss attempt', async () => {
  const w = rig({ udpAnswers: [false], failModes: ['tcp', 'websocket'], wss: { url: 'wss://rv.example/pilot' } });
  await w.u.chooseUplink();
  assert.equal(w.u.kind, 'wss');
  assert.deepEqual(
    w.links.map((l) => l.mode),
    ['tcp', 'websocket', 'wss'],
  );
  assert.deepEqual(w.changes, ['wss']);
  const plain = rig({ udpAnswers: [false], failModes: ['tcp', 'websocket'] });
  await assert.rejects(plain.u.chooseUplink());
  assert.deepEqual(
    plain.links.map((l) => l.mode),
    ['tcp', 'websocket'],
  );
  const forced = rig({ uplink: 'wss', udpAnswers: [], wss: { url: 'wss://rv.example/pilot' } });
  await forced.u.chooseUplink();
  assert.equal(forced.u.kind, 'wss');
  assert.equal(await forced.u.maybeBackToUdp(), false);
});

test('--listen none: no UDP socket, no UDP probe or sends, straight to the TCP uplinks, never back to UDP', async () => {
  const n = rig({ listen: 'none', udpAnswers: [true, true], failModes: ['tcp'], wss: { url: 'wss://rv.example/pilot' } });
  await n.u.bind();
  assert.deepEqual(n.u.address(), { address: '0.0.0.0', port: 0 });
  await n.u.chooseUplink();
  assert.equal(n.u.kind, 'websocket', 'the UDP probe would have answered, but there is no UDP socket to ask from');
  n.u.sendUdp(Buffer.from([PacketType.Data]), '192.0.2.1', 9);
  assert.equal(n.counters.udpOut, 0);
  assert.deepEqual(n.u.openSprayPorts(4), []);
  assert.equal(await n.u.helloAlt(9001), undefined);
  assert.equal(await n.u.maybeBackToUdp(), false);
  n.u.close();
  await n.u.closeSocket();
});

test('noUplinkError: a coded failure (proxy, certificate) wins over UNREACHABLE, with its own hint', () => {
  const e = noUplinkError('rdv:9000', [
    { kind: 'udp', target: 'udp 192.0.2.1:9000', reason: 'no answer to a hello' },
    { kind: 'tcp', target: 'tcp 192.0.2.1:9000', reason: 'connect timeout after 5000 ms' },
    {
      kind: 'wss',
      target: 'wss wss://rv.example:443/pilot via proxy http://10.0.0.1:3128',
      reason: 'proxy http://10.0.0.1:3128 answered 407',
      error: new PilotError('PROXY_AUTH', 'x', 'the proxy wants a login'),
    },
  ]);
  assert.equal(e.code, 'PROXY_AUTH');
  assert.equal(e.hint, 'the proxy wants a login');
  assert.match(
    e.message,
    /tcp 192\.0\.2\.1:9000: connect timeout.*wss wss:\/\/rv\.example:443\/pilot via proxy http:\/\/10\.0\.0\.1:3128: proxy .* answered 407/,
  );
});

test('sendRelay: a transport packet with room in front is framed in place (no copy); anything else is copied behind the header', async () => {
  const r = rig({ udpAnswers: [false] });
  await r.u.chooseUplink(); // over a (fake) TCP link, which hands us what would go out
  const dst = makeAddress(1, 5);
  // As peer-table.ts builds a transport packet: RELAY_OVERHEAD spare bytes, then the session packet.
  const mem = Buffer.alloc(RELAY_OVERHEAD + 40, 0xee);
  const inner = mem.subarray(RELAY_OVERHEAD);
  inner[0] = PacketType.Data;
  r.u.sendRelay(dst, inner, true);
  const framed = r.links[0]!.sent.at(-1)!;
  assert.equal(framed.buffer, mem.buffer, 'the same memory');
  assert.equal(framed.byteOffset, mem.byteOffset, 'the header sits in the room in front of the packet');
  assert.equal(framed.length, RELAY_OVERHEAD + inner.length);
  assert.equal(framed[0], PacketType.RelaySend);
  assert.deepEqual(readAddress(framed, 1), dst);
  assert.equal(framed[RELAY_OVERHEAD], PacketType.Data);

  // No room (a handshake, a probe): the bytes in front of the packet are not ours and stay untouched.
  const other = Buffer.alloc(RELAY_OVERHEAD + 10, 0xee);
  const hs = other.subarray(RELAY_OVERHEAD);
  hs[0] = PacketType.HandshakeInit;
  r.u.sendRelay(dst, hs);
  const copied = r.links[0]!.sent.at(-1)!;
  assert.notEqual(copied.buffer, other.buffer);
  assert.deepEqual([...other.subarray(0, RELAY_OVERHEAD)], Array(RELAY_OVERHEAD).fill(0xee));
  assert.equal(copied[0], PacketType.RelaySend);
  assert.deepEqual([...copied.subarray(RELAY_OVERHEAD)], [...hs]);
  assert.equal(r.counters.relayOut, 2);
});
