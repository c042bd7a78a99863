// Path-layer messages and NAT classification: pure functions, hostile input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Inner, decodeCandidates, encodeCandidates, encodeProbe } from '../../src/nat/inner.ts';
import { classifyNat, directLikely } from '../../src/nat/nat-type.ts';
import { isPublicIPv4 } from '../../src/nat/ip-class.ts';
import { parseEndpoint, samePath } from '../../src/nat/path.ts';

test('candidates round trip; hostile candidates are filtered, never thrown past the parser', () => {
  const m = encodeCandidates({ eps: ['198.51.100.7:4000', '10.0.0.2:4000'], nat: 'eim', reply: true });
  assert.equal(m[0], Inner.Candidates);
  assert.deepEqual(decodeCandidates(m.subarray(1)), { eps: ['198.51.100.7:4000', '10.0.0.2:4000'], nat: 'eim', reply: true });
  const evil = Buffer.from(JSON.stringify({ eps: ['999.1.1.1:5', 'x', 7, '1.2.3.4:0', '1.2.3.4:70000', '1.2.3.4:5'], nat: 'weird', reply: 'yes' }));
  assert.deepEqual(decodeCandidates(evil), { eps: ['1.2.3.4:5'], nat: 'unknown', reply: false });
  assert.throws(() => decodeCandidates(Buffer.from('{')), /not JSON/);
  assert.throws(() => decodeCandidates(Buffer.from('null')), /not an object/);
  assert.throws(() => decodeCandidates(Buffer.alloc(5000, 0x20)), /too large/);
  const many = Buffer.from(JSON.stringify({ eps: Array.from({ length: 50 }, (_, i) => `1.2.3.4:${i + 1}`), nat: 'edm' }));
  assert.equal(decodeCandidates(many).eps.length, 8);
});

test('probe messages carry an 8-byte nonce', () => {
  const n = Buffer.from('0102030405060708', 'hex');
  const p = encodeProbe(Inner.Probe, n);
  assert.equal(p.length, 9);
  assert.equal(p[0], Inner.Probe);
  assert.deepEqual(p.subarray(1), n);
});

test('NAT classification from two beacon answers', () => {
  assert.equal(classifyNat('198.51.100.5:4000', '198.51.100.5:4000', ['10.0.0.2']), 'eim');
  assert.equal(classifyNat('198.51.100.5:4000', '198.51.100.5:4001', ['10.0.0.2']), 'edm');
  assert.equal(classifyNat('198.51.100.5:4000', undefined, ['10.0.0.2']), 'unknown');
  assert.equal(classifyNat('198.51.100.5:4000', '198.51.100.5:4000', ['198.51.100.5']), 'none');
  assert.equal(classifyNat(undefined, undefined, []), 'unknown');
  assert.equal(directLikely('edm', 'edm'), false);
  assert.equal(directLikely('edm', 'eim'), true);
});

test('endpoints and address classes', () => {
  assert.deepEqual(parseEndpoint('198.51.100.1:9000'), { host: '198.51.100.1', port: 9000 });
  for (const bad of ['1.2.3:4', '1.2.3.4', '1.2.3.4:0', '256.1.1.1:5', '1.2.3.4:65536', ' 1.2.3.4:5', '::1:5'])
    assert.equal(parseEndpoint(bad), undefined, bad);
  assert.equal(isPublicIPv4('198.51.100.1'), true);
  for (const p of ['10.1.2.3', '192.168.1.1', '172.16.0.1', '127.0.0.1', '100.64.0.1', '169.254.1.1', 'x']) assert.equal(isPublicIPv4(p), false, p);
  assert.equal(samePath({ kind: 'direct', host: 'a', port: 1 }, { kind: 'direct', host: 'a', port: 1, sock: 2 }), false);
  assert.equal(samePath({ kind: 'relay' }, { kind: 'relay' }), true);
});
