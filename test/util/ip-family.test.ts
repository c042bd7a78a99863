import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { MAX_IP_FAMILY_ENTRIES, ipFamily, rememberedFamilies } from '../../src/util/ip-family.ts';

test('ipFamily answers as net.isIP does, asked once or many times', () => {
  const hosts = ['127.0.0.1', '10.0.0.255', '::1', '::ffff:127.0.0.1', 'fe80::1%eth0', '2001:db8::7', 'example.com', '', '1.2.3', '300.1.1.1', ':::'];
  for (let round = 0; round < 3; round++) for (const h of hosts) assert.equal(ipFamily(h), net.isIP(h), h);
});

test('a flood of new addresses (from peers) keeps the table bounded and the answers right', () => {
  for (let i = 0; i < 5000; i++) {
    const h = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    assert.equal(ipFamily(h), 4);
    assert.ok(rememberedFamilies() <= MAX_IP_FAMILY_ENTRIES);
  }
  assert.equal(ipFamily('2001:db8::1'), 6);
  assert.equal(ipFamily('not-an-ip'), 0);
});
