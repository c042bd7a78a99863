// NAT classification, our candidates and network-change detection, with fake
// interfaces, a fake rendezvous (hello answers) and a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type os from 'node:os';
import { NetCheck, NAT_RECHECK_MS, FORCED_CHECK_GAP_MS } from '../../src/daemon/netcheck.ts';
import type { UplinkKind } from '../../src/nat/path.ts';
import { silentLogger } from '../../src/util/logger.ts';

function ni(address: string, internal = false): os.NetworkInterfaceInfo {
  return { address, family: 'IPv4', internal, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: `${address}/24` };
}

function rig() {
  const s = {
    now: 1_000_000,
    bound: '0.0.0.0',
    port: 4000,
    ifaces: { lo: [ni('127.0.0.1', true)], eth0: [ni('10.0.0.5')] } as Record<string, os.NetworkInterfaceInfo[]>,
    uplink: 'udp' as UplinkKind,
    first: { observed: '203.0.113.7:4000', altPort: 9001 as number | undefined },
    second: '203.0.113.7:4000' as string | undefined,
    log: [] as string[],
    mapped: undefined as string | undefined,
  };
  const net = new NetCheck({
    log: silentLogger(),
    now: () => s.now,
    boundAddress: () => ({ address: s.bound, port: s.port }),
    uplinkKind: () => s.uplink,
    hello: async () => (s.log.push('hello'), { ...s.first }),
    helloAlt: async (port) => (s.log.push(`alt ${port}`), port === undefined ? undefined : s.second),
    maybeBackToUdp: async () => void s.log.push('back-to-udp?'),
    heartbeat: async () => void s.log.push('heartbeat'),
    natChanged: () => s.log.push('nat-changed'),
    localChanged: () => s.log.push('local-changed'),
    interfaces: () => s.ifaces,
    mapped: () => s.mapped,
  });
  return { net, s };
}

test('classification: same mapping twice = eim, different = edm, our own address = none, no second answer = unknown', async () => {
  const { net, s } = rig();
  await net.checkNat();
  assert.equal(net.natType, 'eim');
  assert.deepEqual(s.log, ['hello', 'alt 9001', 'nat-changed']);
  s.second = '203.0.113.7:4100';
  await net.checkNat();
  assert.equal(net.natType, 'edm');
  s.first = { observed: '10.0.0.5:4000', altPort: 9001 };
  await net.checkNat();
  assert.equal(net.natType, 'none');
  s.first = { observed: '203.0.113.7:4000', altPort: undefined };
  s.log.length = 0;
  await net.checkNat();
  assert.equal(net.natType, 'unknown');
  assert.deepEqual(s.log, ['hello', 'alt undefined', 'nat-changed']);
  // Same class again: the rendezvous need not hear it early.
  s.log.length = 0;
  await net.checkNat();
  assert.deepEqual(s.log, ['hello', 'alt undefined']);
  // Over a TCP uplink there is no UDP mapping to classify.
  s.uplink = 'tcp';
  net.natType = 'eim';
  await net.checkNat();
  assert.equal(net.natType, 'unknown');
});

test('candidates: the mapped endpoint (UDP uplink only) then LAN endpoints, at most four, no loopback', async () => {
  const { net, s } = rig();
  await net.checkNat();
  assert.deepEqual(net.localCandidates(), ['203.0.113.7:4000', '10.0.0.5:4000']);
  s.ifaces = { eth: ['10.0.0.5', '10.0.1.5', '10.0.2.5', '10.0.3.5', '10.0.4.5'].map((a) => ni(a)) };
  assert.equal(net.lanEndpoints().length, 4);
  s.bound = '192.168.1.9';
  assert.deepEqual(net.lanEndpoints(), ['192.168.1.9:4000'], 'bound to one address: that one');
  s.uplink = 'websocket';
  assert.deepEqual(net.localCandidates(), ['192.168.1.9:4000']);
  net.observed = 'not an endpoint';
  s.uplink = 'udp';
  assert.deepEqual(net.localCandidates(), ['192.168.1.9:4000']);
});

test('candidates: the port mapping (issue 19) comes first, kind "mapped", also over a TCP uplink; a bad one is left out', async () => {
  const { net, s } = rig();
  await net.checkNat();
  s.mapped = '198.51.100.9:41000';
  assert.deepEqual(net.localCandidates(), ['198.51.100.9:41000', '203.0.113.7:4000', '10.0.0.5:4000']);
  assert.deepEqual(
    net.candidateKinds().map((c) => c.kind),
    ['mapped', 'observed', 'lan'],
  );
  // The gateway mapped us on the very endpoint the rendezvous saw (port-preserving NAT): once, as mapped.
  s.mapped = '203.0.113.7:4000';
  assert.deepEqual(net.candidateKinds(), [
    { endpoint: '203.0.113.7:4000', kind: 'mapped' },
    { endpoint: '10.0.0.5:4000', kind: 'lan' },
  ]);
  s.uplink = 'tcp';
  assert.deepEqual(net.localCandidates(), ['203.0.113.7:4000', '10.0.0.5:4000'], 'a mapping works for peers even when the rendezvous is reached over TCP');
  s.mapped = 'garbage';
  assert.deepEqual(net.localCandidates(), ['10.0.0.5:4000']);
});

test('network check: nothing until 60 s pass or the addresses change; a change heartbeats and re-punches', async () => {
  const { net, s } = rig();
  await net.start();
  net.stop();
  s.log.length = 0;
  s.now += NAT_RECHECK_MS - 1;
  await net.checkNetwork();
  assert.deepEqual(s.log, []);

  // 60 s on: a re-check, nothing changed.
  s.now += 1;
  await net.checkNetwork();
  assert.deepEqual(s.log, ['back-to-udp?', 'hello', 'alt 9001']);

  // A new mapped endpoint (NAT rebinding) without new addresses: peers must hear of it.
  s.log.length = 0;
  s.now += NAT_RECHECK_MS;
  s.first = { observed: '203.0.113.7:5000', altPort: 9001 };
  s.second = '203.0.113.7:5000';
  await net.checkNetwork();
  assert.deepEqual(s.log, ['back-to-udp?', 'hello', 'alt 9001', 'local-changed']);

  // New addresses: at once, with a heartbeat first (the registry learns the new LAN endpoints).
  s.log.length = 0;
  s.now += 1;
  s.ifaces = { wlan0: [ni('192.168.7.20')] };
  await net.checkNetwork();
  assert.deepEqual(s.log, ['back-to-udp?', 'heartbeat', 'hello', 'alt 9001', 'local-changed']);
  s.log.length = 0;
  s.now += 1;
  await net.checkNetwork();
  assert.deepEqual(s.log, [], 'the same addresses again: nothing');
});

test('no UDP socket (--listen none, port 0): no LAN candidates at all, not IP:0 ones (issue 19)', () => {
  const { net, s } = rig();
  assert.deepEqual(net.lanEndpoints(), ['10.0.0.5:4000']);
  s.port = 0;
  s.uplink = 'wss';
  assert.deepEqual(net.lanEndpoints(), []);
  assert.deepEqual(net.localCandidates(), []);
});

test('dual-stack candidates: IPv6 global first, then IPv4, then ULA; never link-local; a rendezvous seeing our own IPv6 = no NAT', async () => {
  const { net, s } = rig();
  const ni6 = (address: string): os.NetworkInterfaceInfo => ({
    address,
    family: 'IPv6',
    internal: false,
    netmask: 'ffff:ffff:ffff:ffff::',
    mac: '00:00:00:00:00:00',
    cidr: `${address}/64`,
    scopeid: 0,
  });
  s.bound = '::';
  s.ifaces = { lo: [ni('127.0.0.1', true)], eth0: [ni('10.0.0.5'), ni6('fe80::1'), ni6('fd00:1::5'), ni6('2001:db8:1::10')] };
  assert.deepEqual(net.lanEndpoints(), ['[2001:db8:1::10]:4000', '10.0.0.5:4000', '[fd00:1::5]:4000']);
  s.bound = '0.0.0.0';
  assert.deepEqual(net.lanEndpoints(), ['10.0.0.5:4000'], 'an IPv4 socket advertises no IPv6');
  s.bound = '2001:db8:1::10';
  assert.deepEqual(net.lanEndpoints(), ['[2001:db8:1::10]:4000']);
  s.bound = '::';
  s.first = { observed: '[2001:db8:1::10]:4000', altPort: 9001 };
  s.second = '[2001:db8:1::10]:4000';
  await net.checkNat();
  assert.equal(net.natType, 'none');
  assert.deepEqual(net.localCandidates(), ['[2001:db8:1::10]:4000', '10.0.0.5:4000', '[fd00:1::5]:4000']);
});

test('issue 19: a dead direct path forces a re-check (heartbeat + reflexive address) with no interface change, at most every 2 s', async () => {
  const { net, s } = rig();
  await net.start();
  net.stop();
  s.log.length = 0;
  s.first = { observed: '203.0.113.9:4000', altPort: 9001 }; // a new NAT upstream, same LAN address
  net.recheck();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(s.log.slice(0, 2), ['back-to-udp?', 'heartbeat']);
  assert.ok(s.log.includes('local-changed'), `the new reflexive address goes to peers: ${s.log}`);
  s.log.length = 0;
  net.recheck(); // many peers' paths die together: one check
  await new Promise((r) => setImmediate(r));
  assert.equal(s.log.length, 0);
  s.now += FORCED_CHECK_GAP_MS;
  net.recheck();
  await new Promise((r) => setImmediate(r));
  assert.ok(s.log.includes('heartbeat'));
});

test('issue 19: a new reflexive address from a heartbeat is news for peers; the same one is not', () => {
  const { net, s } = rig();
  net.setObserved('203.0.113.7:4000');
  assert.equal(s.log.length, 0, 'the first one is no change');
  net.setObserved('203.0.113.7:4000');
  assert.equal(s.log.length, 0);
  net.setObserved('203.0.113.8:4000');
  assert.deepEqual(s.log, ['local-changed']);
});
