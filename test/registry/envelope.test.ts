import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildHello, buildPush, buildRequest, buildResponse, openServerMessage, parseRequest, verifyRequest } from '../../src/registry/envelope.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { normalizeHostname } from '../../src/registry/hostname.ts';
import { parseEndpoint } from '../../src/registry/endpoint.ts';
import type { PilotError } from '../../src/util/errors.ts';

const node = generateIdentity();
const server = generateIdentity();

test('request round trip: parse + verify', () => {
  const r = buildRequest(node, server.publicKey, 'heartbeat', {});
  assert.equal(r.packet[0], 0x01);
  const p = parseRequest(r.packet);
  assert.equal(p.kind, 'signed');
  if (p.kind !== 'signed') return;
  assert.equal(p.nonce, r.nonce);
  verifyRequest(p, server.publicKey);
  assert.throws(
    () => verifyRequest(p, generateIdentity().publicKey),
    (e: PilotError) => e.code === 'BAD_SIGNATURE',
  );
  assert.throws(
    () => verifyRequest(p, server.publicKey, Date.now() + 61_000),
    (e: PilotError) => e.code === 'STALE_REQUEST',
  );
  assert.throws(
    () => verifyRequest(p, server.publicKey, Date.now() - 61_000),
    (e: PilotError) => e.code === 'STALE_REQUEST',
  );
});

test('hello is unsigned; other statements must be signed', () => {
  assert.equal(parseRequest(buildHello().packet).kind, 'hello');
  const r = buildRequest(node, server.publicKey, 'heartbeat', {});
  const env = JSON.parse(r.packet.subarray(1).toString());
  delete env.sig;
  const pkt = Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify(env))]);
  assert.throws(
    () => parseRequest(pkt),
    (e: PilotError) => e.code === 'BAD_SIGNATURE',
  );
});

test('malformed requests are BAD_REQUEST, oversized FRAME_TOO_LARGE', () => {
  for (const bad of ['', '{', '[]', '{"id":"1","stmt":"{}"}', '{"id":"1","stmt":"{","sig":"x"}', '{"id":1,"stmt":"{}"}']) {
    assert.throws(
      () => parseRequest(Buffer.concat([Buffer.from([1]), Buffer.from(bad)])),
      (e: PilotError) => e.code === 'BAD_REQUEST' || e.code === 'BAD_SIGNATURE',
      bad,
    );
  }
  assert.throws(
    () => parseRequest(Buffer.alloc(1300, 1)),
    (e: PilotError) => e.code === 'FRAME_TOO_LARGE',
  );
});

test('responses and pushes verify only under the right key', () => {
  const resp = buildResponse(server, 'id1', 'AAAAAAAAAAAAAAAAAAAAAAAA', { ok: true, result: { x: 1 } });
  const ok = openServerMessage(resp, server.publicKey);
  assert.ok(ok && 'msg' in ok && ok.msg.type === 'response' && ok.msg.stmt.ok);
  const other = openServerMessage(resp, generateIdentity().publicKey);
  assert.ok(other && 'badKey' in other);
  // Tampering with the statement breaks the signature: dropped.
  const tampered = Buffer.from(resp.toString('latin1').replace('\\"x\\":1', '\\"x\\":2'), 'latin1');
  assert.notDeepEqual(tampered, resp);
  assert.equal(openServerMessage(tampered, server.publicKey), undefined);
  const push = openServerMessage(buildPush(server, 'ping', { a: 1 }), server.publicKey);
  assert.ok(push && 'msg' in push && push.msg.type === 'push' && push.msg.stmt.push.event === 'ping');
  assert.equal(openServerMessage(Buffer.from([2, 0x7b]), server.publicKey), undefined);
});

test('hostname rules', () => {
  assert.equal(normalizeHostname('Agent-Alpha'), 'agent-alpha');
  assert.equal(normalizeHostname('a'), 'a');
  assert.equal(normalizeHostname('x'.repeat(63)), 'x'.repeat(63));
  for (const bad of ['', '-a', 'a-', 'a_b', 'a.b', 'x'.repeat(64), '42', '0x2a', 'é', ' a', 5]) {
    assert.throws(
      () => normalizeHostname(bad),
      (e: PilotError) => e.code === 'BAD_ARGUMENT',
      String(bad),
    );
  }
});

test('endpoint parsing', () => {
  assert.deepEqual(parseEndpoint('1.2.3.4:5'), { host: '1.2.3.4', port: 5 });
  assert.deepEqual(parseEndpoint('[::1]:9000'), { host: '::1', port: 9000 });
  for (const bad of ['1.2.3.4', 'host:1', '1.2.3.4:0', '1.2.3.4:70000', '::1:5', '[zz]:1', '999.1.1.1:1']) assert.equal(parseEndpoint(bad), undefined, bad);
});
