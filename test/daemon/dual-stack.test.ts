// The dual-stack underlay: one real udp6 socket on "::" carries IPv4 and IPv6,
// and everything above it sees plain IPv4 (never ::ffff:a.b.c.d); NAT64
// synthesis and its reverse at the same edge; the IPv4 fallback when the kernel
// has no IPv6; rendezvous name resolution and RFC 7050 prefix discovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Underlay, type UnderlayCounters, type UnderlayHost, type UnderlayOptions } from '../../src/daemon/underlay.ts';
import { discoverNat64, EdgeAddresses, ipv6Only, resolveRendezvous, socketPlans, type SocketPlan } from '../../src/daemon/dual-stack.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { PacketType } from '../../src/wire/packet-types.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { nat64Prefix, formatIpv6 } from '../../src/util/ip6.ts';
import type { Path } from '../../src/nat/path.ts';

function underlay(opts: Partial<UnderlayOptions> = {}): { u: Underlay; sessions: Path[]; registry: Buffer[] } {
  const counters: UnderlayCounters = { garbage: 0, relayIn: 0, relayOut: 0, udpIn: 0, udpOut: 0, gsoSends: 0, gsoPackets: 0, rxBatches: 0, rxBatchPackets: 0 };
  const sessions: Path[] = [];
  const registry: Buffer[] = [];
  const host: UnderlayHost = {
    log: silentLogger(),
    counters,
    now: () => Date.now(),
    registryPacket: (pkt) => registry.push(pkt),
    sessionPacket: (_pkt, p) => sessions.push(p),
    uplinkChanged: () => {},
    uplinkUp: () => {},
    uplinkDown: () => {},
    spraySocketsInUse: () => new Set(),
    birthdayActive: () => false,
  };
  const u = new Underlay(host, {
    listen: '0.0.0.0:0',
    home: fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-dual-')),
    rendezvous: { host: '127.0.0.1', port: 9 },
    registry: '127.0.0.1:9',
    uplink: 'udp',
    identity: generateIdentity(),
    serverKey: () => undefined,
    ...opts,
  });
  return { u, sessions, registry };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function bound(type: 'udp4' | 'udp6', host: string): Promise<dgram.Socket> {
  const s = dgram.createSocket(type);
  s.bind(0, host);
  await once(s, 'listening');
  return s;
}

test('one socket on "::" takes IPv4 and IPv6; sources reach the daemon as plain IPv4 / canonical IPv6', async () => {
  const { u, sessions } = underlay();
  await u.bind();
  try {
    assert.equal(u.family, 'dual');
    assert.equal(u.address().address, '::');
    const port = u.address().port;
    const v4 = await bound('udp4', '127.0.0.1');
    const v6 = await bound('udp6', '::1');
    v4.send(Buffer.from([PacketType.Data, 1]), port, '127.0.0.1');
    v6.send(Buffer.from([PacketType.Data, 2]), port, '::1');
    await until(() => sessions.length === 2);
    const hosts = sessions.map((p) => (p.kind === 'direct' ? p.host : p.kind)).sort();
    assert.deepEqual(hosts, ['127.0.0.1', '::1'], 'never ::ffff:127.0.0.1 above the socket');
    // And back: the daemon sends to plain IPv4 and to IPv6 on the same socket.
    const got: string[] = [];
    v4.on('message', (m) => got.push(`v4 ${m[0]}`));
    v6.on('message', (m) => got.push(`v6 ${m[0]}`));
    u.sendUdp(Buffer.from([7]), '127.0.0.1', v4.address().port);
    u.sendUdp(Buffer.from([8]), '::1', v6.address().port);
    await until(() => got.length === 2);
    assert.deepEqual(got.sort(), ['v4 7', 'v6 8']);
    v4.close();
    v6.close();
  } finally {
    u.close();
    await u.closeSocket();
  }
});

test('a rendezvous answering from ::ffff:127.0.0.1 is the rendezvous at 127.0.0.1 (registry packets not dropped as garbage)', async () => {
  const rv = await bound('udp4', '127.0.0.1');
  const { u, registry } = underlay({ rendezvous: { host: '127.0.0.1', port: rv.address().port } });
  await u.bind();
  try {
    rv.send(Buffer.from([PacketType.RegistryResponse, 1]), u.address().port, '127.0.0.1');
    await until(() => registry.length === 1);
  } finally {
    rv.close();
    u.close();
    await u.closeSocket();
  }
});

test('address() after the socket closed: port 0, no throw (a network check still running at stop crashed the process embedding the node)', async () => {
  const { u } = underlay({ rendezvous: { host: '127.0.0.1', port: 9 } });
  await u.bind();
  assert.ok(u.address().port > 0);
  u.close();
  await u.closeSocket();
  assert.deepEqual(u.address(), { address: '0.0.0.0', port: 0 });
});

test('no IPv6 in the kernel (EAFNOSUPPORT on the udp6 socket): one IPv4 socket instead', async () => {
  const tried: string[] = [];
  const makeSocket = (plan: SocketPlan): dgram.Socket => {
    tried.push(plan.type);
    const s = dgram.createSocket(plan.type);
    if (plan.type === 'udp6') {
      // What a kernel booted with ipv6.disable=1 answers; it cannot be produced on this host for real.
      s.bind = ((..._args: unknown[]) => {
        setImmediate(() => s.emit('error', Object.assign(new Error('bind EAFNOSUPPORT'), { code: 'EAFNOSUPPORT' })));
        return s;
      }) as typeof s.bind;
    }
    return s;
  };
  const { u, sessions } = underlay({ makeSocket });
  await u.bind();
  try {
    assert.deepEqual(tried, ['udp6', 'udp4']);
    assert.equal(u.family, 'ipv4');
    assert.equal(u.address().address, '0.0.0.0');
    const v4 = await bound('udp4', '127.0.0.1');
    v4.send(Buffer.from([PacketType.Data]), u.address().port, '127.0.0.1');
    await until(() => sessions.length === 1);
    u.sendUdp(Buffer.from([1]), '::1', 9); // an IPv6 destination is skipped, not an error
    v4.close();
  } finally {
    u.close();
    await u.closeSocket();
  }
});

test('a literal --listen keeps its family', () => {
  assert.deepEqual(
    socketPlans('10.0.0.5').map((p) => p.type),
    ['udp4'],
  );
  assert.deepEqual(socketPlans('[2001:db8::5]'), [{ type: 'udp6', host: '2001:db8::5', family: 'ipv6' }]);
  assert.deepEqual(
    socketPlans('0.0.0.0').map((p) => `${p.type} ${p.host}`),
    ['udp6 ::', 'udp4 0.0.0.0'],
  );
});

test('NAT64 edge: IPv4 destinations are synthesised in the prefix, sources in it come back as IPv4', () => {
  const prefix = nat64Prefix('64:ff9b::')!;
  const e = new EdgeAddresses('ipv6', prefix);
  assert.equal(e.outboundUdp('198.51.100.1'), '64:ff9b::c633:6401');
  assert.equal(e.outboundTcp('198.51.100.1'), '64:ff9b::c633:6401');
  assert.equal(e.inbound('64:ff9b::c633:6401'), '198.51.100.1');
  assert.equal(e.normalize('64:ff9b:0:0:0:0:c633:6401'), '198.51.100.1', 'any spelling (config, DNS)');
  assert.equal(e.normalize('::FFFF:198.51.100.1'), '198.51.100.1');
  assert.equal(e.inbound('2001:db8::7'), '2001:db8::7');
  assert.equal(e.outboundUdp('2001:db8::7'), '2001:db8::7');
  const dual = new EdgeAddresses('dual');
  assert.equal(dual.outboundUdp('10.0.0.1'), '::ffff:10.0.0.1');
  assert.equal(dual.outboundTcp('10.0.0.1'), '10.0.0.1');
  assert.equal(dual.inbound('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(dual.inbound('2001:db8::1'), '2001:db8::1');
  assert.equal(new EdgeAddresses('ipv4').reaches('2001:db8::1'), false);
});

test('RFC 7050: the prefix in front of 192.0.0.170 from ipv4only.arpa; none: the well-known 64:ff9b::/96', async () => {
  const nsp = await discoverNat64(async () => [{ address: '2001:db8:64::c000:aa' }]);
  assert.equal(nsp.source, 'rfc7050');
  assert.equal(formatIpv6(Uint8Array.from([...nsp.prefix, 0, 0, 0, 0])), '2001:db8:64::');
  // An answer that is not ipv4only.arpa's address (a broken or lying resolver) is not taken for a prefix.
  const junk = await discoverNat64(async () => [{ address: '2001:db8:64::1:2' }]);
  assert.equal(junk.source, 'well-known');
  const none = await discoverNat64(async () => {
    throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
  });
  assert.equal(none.source, 'well-known');
  assert.equal(formatIpv6(Uint8Array.from([...none.prefix, 0, 0, 0, 0])), '64:ff9b::');
});

test('rendezvous by name: IPv4 first with IPv4, IPv6 (DNS64) first on an IPv6-only host; literals as given', async () => {
  const answers = async () => [
    { address: '2001:db8:64::c633:6401', family: 6 },
    { address: '198.51.100.1', family: 4 },
  ];
  assert.equal(await resolveRendezvous('rdv.example', false, answers), '198.51.100.1');
  assert.equal(await resolveRendezvous('rdv.example', true, answers), '2001:db8:64::c633:6401');
  assert.equal(await resolveRendezvous('2001:DB8::0:1', false, answers), '2001:db8::1');
  await assert.rejects(
    resolveRendezvous('nowhere.example', false, async () => {
      throw new Error('ENOTFOUND');
    }),
    (e: { code?: string }) => e.code === 'UNREACHABLE',
  );
});

test('IPv6-only host: global or ULA IPv6 and no IPv4 beyond loopback and link-local', () => {
  const ni = (address: string, family: 'IPv4' | 'IPv6', internal = false) => ({ address, family, internal });
  assert.equal(ipv6Only({ lo: [ni('127.0.0.1', 'IPv4', true), ni('::1', 'IPv6', true)], eth0: [ni('2001:db8:3::10', 'IPv6'), ni('fe80::1', 'IPv6')] }), true);
  assert.equal(ipv6Only({ eth0: [ni('2001:db8:3::10', 'IPv6'), ni('10.0.0.2', 'IPv4')] }), false, 'dual-stack');
  assert.equal(ipv6Only({ eth0: [ni('fe80::1', 'IPv6'), ni('169.254.3.3', 'IPv4')] }), false, 'link-local only: no network at all');
});

test('dual-stack edge: the mapped form of an IPv4 destination is remembered per address, in a bounded table', () => {
  const dual = new EdgeAddresses('dual');
  for (let i = 0; i < 600; i++) {
    const ip = `10.0.${i >> 8}.${i & 255}`;
    assert.equal(dual.outboundUdp(ip), `::ffff:${ip}`);
    assert.equal(dual.outboundUdp(ip), `::ffff:${ip}`, 'again, from the table');
  }
  assert.equal(dual.outboundUdp('10.0.0.0'), '::ffff:10.0.0.0', 'after the table was cleared');
  assert.equal(dual.outboundUdp('2001:db8::7'), '2001:db8::7', 'IPv6 is never mapped');
});
