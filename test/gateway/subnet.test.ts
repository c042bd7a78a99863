// Subnet parsing and address allocation order for gateway mappings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostAddresses, inSubnet, intToIp, ipToInt, isLoopback127, parseSubnet } from '../../src/gateway/subnet.ts';

test('subnets: normalised, host addresses skip network and broadcast', () => {
  const s = parseSubnet('10.4.3.9/16');
  assert.equal(s.cidr, '10.4.0.0/16');
  const it = hostAddresses(s);
  assert.equal(it.next().value, '10.4.0.1');
  assert.equal(it.next().value, '10.4.0.2');
  assert.deepEqual([...hostAddresses(parseSubnet('127.4.0.0/30'))], ['127.4.0.1', '127.4.0.2']);
  assert.equal(inSubnet(s, '10.4.255.254'), true);
  assert.equal(inSubnet(s, '10.5.0.1'), false);
  assert.equal(intToIp(ipToInt('192.168.1.200')), '192.168.1.200');
});

test('subnets: 127/8 needs no alias; bad input is a coded error', () => {
  assert.equal(isLoopback127('127.4.0.1'), true);
  assert.equal(isLoopback127('10.4.0.1'), false);
  for (const bad of ['10.4.0.0', '10.4.0.0/31', '10.4.0.0/4', '300.1.1.1/16', 'x/16']) {
    assert.throws(
      () => parseSubnet(bad),
      (e: { code?: string }) => e.code === 'BAD_ARGUMENT',
      bad,
    );
  }
  assert.throws(
    () => ipToInt('10.4.0'),
    (e: { code?: string }) => e.code === 'BAD_ARGUMENT',
  );
});
