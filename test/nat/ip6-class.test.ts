// Which IPv6 candidates a peer may make us probe (the IPv6 half of the
// forged-candidate rules, issue 15): global unicast yes, ULA only on a prefix we
// are attached to, link-local / multicast / loopback / unspecified / NAT64 never,
// and an IPv4-mapped candidate is judged as the IPv4 address it maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { advertisableIpv6, isPublicIPv6, onAttachedIpv6Subnet } from '../../src/nat/ip6-class.ts';
import { probeable, type Ifaces } from '../../src/nat/ip-class.ts';
import { decodeCandidates, encodeCandidates } from '../../src/nat/inner.ts';
import { parseEndpoint } from '../../src/nat/path.ts';
import { PathManager } from '../../src/nat/path-manager.ts';

const IFACES: Ifaces = {
  eth0: [
    { family: 'IPv4', address: '10.1.0.10', netmask: '255.255.255.0', cidr: '10.1.0.10/24' },
    { family: 'IPv6', address: '2001:db8:1::10', netmask: 'ffff:ffff:ffff:ffff::', cidr: '2001:db8:1::10/64' },
    { family: 'IPv6', address: 'fd00:1:2:3::10', netmask: 'ffff:ffff:ffff:ffff::', cidr: 'fd00:1:2:3::10/64' },
    { family: 'IPv6', address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', cidr: 'fe80::1/64' },
  ],
};

test('public IPv6: global unicast (and the documentation prefix the lab uses), nothing else', () => {
  for (const ip of ['2001:4860::8888', '2a00:1450::1', '2001:db8::1']) assert.equal(isPublicIPv6(ip), true, ip);
  for (const ip of ['::', '::1', 'fe80::1', 'fd00::1', 'fc00::1', 'ff02::1', 'ff0e::1', '::ffff:8.8.8.8', '64:ff9b::808:808', '100::1', 'not-ip'])
    assert.equal(isPublicIPv6(ip), false, ip);
});

test('forged IPv6 candidates from a peer are not probed; ULA only on our own prefix', () => {
  const cases: Array<[string, boolean]> = [
    ['2001:db8:9::5', true], // global: anyone may be reached
    ['fd00:1:2:3::99', true], // ULA on our /64
    ['fd00:9:9:9::1', false], // someone else's ULA
    ['fe80::2', false], // link-local: needs a zone, never from a peer
    ['ff02::1', false], // multicast
    ['::', false],
    ['::1', false],
    ['64:ff9b::a01:5', false], // NAT64 form of 10.1.0.5: we synthesise those ourselves
  ];
  for (const [ip, ok] of cases) assert.equal(probeable(ip, IFACES), ok, ip);
  assert.equal(onAttachedIpv6Subnet('fe80::2', IFACES), false, 'our link-local prefix does not make a peer link-local address ours');
  assert.equal(advertisableIpv6('fe80::1'), false);
  assert.equal(advertisableIpv6('fd00:1:2:3::10'), true);
  assert.equal(advertisableIpv6('fd7a:115c:a1e0::da01:a867'), false, "Tailscale's own ULA range: another overlay's tunnel");
  assert.equal(advertisableIpv6('2a00:1450::1'), true);
});

test('endpoints: [v6]:port parsed and canonical; v4-mapped judged as the IPv4 it maps; junk refused', () => {
  assert.deepEqual(parseEndpoint('[2001:DB8:0::1]:4000'), { host: '2001:db8::1', port: 4000 });
  assert.deepEqual(parseEndpoint('[::ffff:10.1.0.5]:53'), { host: '10.1.0.5', port: 53 });
  assert.deepEqual(parseEndpoint('[::ffff:192.168.9.9]:53'), { host: '192.168.9.9', port: 53 });
  assert.equal(probeable(parseEndpoint('[::ffff:192.168.9.9]:53')!.host, IFACES), false, 'mapped-to-private: as private IPv4 elsewhere');
  assert.equal(probeable(parseEndpoint('[::ffff:8.8.8.8]:53')!.host, IFACES), true);
  for (const bad of [
    '[fe80::1%eth0]:4000',
    '[2001:db8::1]:0',
    '[2001:db8::1]:65536',
    '2001:db8::1:4000',
    '[2001:db8::g]:1',
    '[1.2.3.4]:5',
    `[${'1:'.repeat(40)}1]:5`,
  ])
    assert.equal(parseEndpoint(bad), undefined, bad);
  assert.deepEqual(parseEndpoint('198.51.100.1:9000'), { host: '198.51.100.1', port: 9000 }, 'IPv4 as before');
});

test('CANDIDATES carries IPv6 endpoints; a forged mix reaches probing only with the acceptable ones', () => {
  const m = decodeCandidates(
    encodeCandidates({
      eps: ['[2001:db8:9::5]:4000', '[fe80::2]:53', '[ff02::1]:53', '[::ffff:10.77.0.5]:53', '[::]:53', '198.51.100.7:4000'],
      nat: 'eim',
      reply: false,
    }).subarray(1),
  );
  assert.equal(m.eps.length, 6, 'the codec keeps every well-formed endpoint; probing filters');
  let now = 0;
  const probed: string[] = [];
  const pm = new PathManager({
    now: () => now,
    sendVia: (_k, msg, path) => {
      if (msg[0] === 0x01 && path.kind === 'direct') probed.push(path.host);
      return true;
    },
    local: () => ({ eps: [], nat: 'eim' }),
    openSprayPorts: () => [],
    releaseSprayPorts: () => {},
    mayPunch: () => true,
    probeable: (h) => probeable(h, IFACES),
  });
  pm.onAuthenticated(1, { kind: 'relay' });
  pm.onSession(1);
  pm.onInner(1, encodeCandidates({ eps: m.eps, nat: 'eim', reply: false }), { kind: 'relay' });
  for (let i = 0; i < 5; i++) {
    now += 100;
    pm.tick();
  }
  assert.deepEqual([...new Set(probed)].sort(), ['198.51.100.7', '2001:db8:9::5']);
});
