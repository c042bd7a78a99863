// IPv6 text <-> bytes, RFC 5952 canonical form (checked against the WHATWG URL
// parser's own IPv6 serialiser on random addresses), mapped IPv4 and NAT64 (RFC 6052).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { canonicalIp, classifyIpv6, extractNat64, formatIpv6, nat64Prefix, parseIpv6, synthesizeNat64, unmapIpv4 } from '../../src/util/ip6.ts';

test('RFC 5952 examples', () => {
  assert.equal(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'the first of two equal runs');
  assert.equal(canonicalIp('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1', 'a single zero group is not shortened');
  assert.equal(canonicalIp('::'), '::');
  assert.equal(canonicalIp('::1'), '::1');
  assert.equal(canonicalIp('64:ff9b::198.51.100.1'), '64:ff9b::c633:6401');
  assert.equal(canonicalIp('198.51.100.1'), '198.51.100.1');
  assert.equal(parseIpv6('fe80::1%eth0'), undefined, 'zone ids are not addresses');
  assert.equal(parseIpv6('1.2.3.4'), undefined);
});

test('fuzz: random addresses round-trip and match the URL parser', () => {
  for (let i = 0; i < 5000; i++) {
    const b = crypto.randomBytes(16);
    // Runs of zero groups, so "::" placement gets exercised.
    const zeroFrom = crypto.randomInt(8);
    const zeroLen = crypto.randomInt(9 - zeroFrom);
    b.fill(0, zeroFrom * 2, (zeroFrom + zeroLen) * 2);
    const text = formatIpv6(b);
    assert.deepEqual(Buffer.from(parseIpv6(text)!), b, text);
    const url = new URL(`http://[${text}]/`).hostname.slice(1, -1);
    if (!/^::ffff:/.test(url)) assert.equal(text, url, `bytes ${b.toString('hex')}`);
  }
});

test('mapped IPv4 and NAT64 synthesis/extraction', () => {
  assert.equal(unmapIpv4('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(unmapIpv4('::ffff:a00:1'), '10.0.0.1');
  assert.equal(unmapIpv4('::10.0.0.1'), '::10.0.0.1', 'IPv4-compatible (deprecated) is not mapped');
  assert.equal(unmapIpv4('2001:db8::1'), '2001:db8::1');
  const wkp = nat64Prefix('64:ff9b::')!;
  assert.equal(synthesizeNat64(wkp, '192.0.2.33'), '64:ff9b::c000:221', 'RFC 6052 section 2.4 example');
  assert.equal(extractNat64(wkp, '64:ff9b::c000:221'), '192.0.2.33');
  assert.equal(extractNat64(wkp, '2001:db8::c000:221'), undefined);
  const nsp = nat64Prefix('2001:db8:122:344::')!;
  assert.equal(synthesizeNat64(nsp, '192.0.2.33'), '2001:db8:122:344::c000:221');
});

test('classes', () => {
  const c: Record<string, string> = {
    '::': 'unspecified',
    '::1': 'loopback',
    '::ffff:1.2.3.4': 'v4-mapped',
    '64:ff9b::1.2.3.4': 'nat64',
    'fe80::1': 'link-local',
    'febf::1': 'link-local',
    'fec0::1': 'other',
    'fd12::1': 'ula',
    'fc00::1': 'ula',
    'ff02::1': 'multicast',
    '2001:db8::1': 'documentation',
    '2a00::1': 'global',
    '3fff::1': 'global',
    '4000::1': 'other',
  };
  for (const [ip, cls] of Object.entries(c)) assert.equal(classifyIpv6(ip), cls, ip);
  assert.equal(classifyIpv6('1.2.3.4'), undefined);
});
