// RegistryClient failure modes: nothing listening, send failures, key changes, close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { RegistryClient } from '../../src/registry/client.ts';
import { buildPush } from '../../src/registry/envelope.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import type { PilotError } from '../../src/util/errors.ts';
import { startServer, udpPeer } from '../rendezvous/helpers.ts';

async function deadPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('TIMEOUT naming the rendezvous when nothing listens', async (t) => {
  const port = await deadPort();
  const p = await udpPeer(port, { timeoutMs: 100, retries: 2, rendezvous: `127.0.0.1:${port}` });
  t.after(() => p.close());
  const started = Date.now();
  await assert.rejects(p.client.hello(), (e: PilotError) => {
    assert.equal(e.code, 'TIMEOUT');
    assert.match(e.message, new RegExp(`127.0.0.1:${port}`));
    assert.match(e.hint ?? '', /pilot-rendezvous/);
    return true;
  });
  assert.ok(Date.now() - started >= 250);
  // Signed calls without a pinned key try hello first, and fail the same way.
  await assert.rejects(p.client.register({ email: 'a@example.com' }), (e: PilotError) => e.code === 'TIMEOUT');
});

test('UNREACHABLE when sending fails', async () => {
  const c = new RegistryClient({
    identity: generateIdentity(),
    serverKey: generateIdentity().publicKey,
    timeoutMs: 50,
    retries: 1,
    send: () => {
      throw new Error('EHOSTUNREACH');
    },
  });
  await assert.rejects(c.heartbeat({}), (e: PilotError) => e.code === 'UNREACHABLE' && /EHOSTUNREACH/.test(e.message));
  c.close();
});

test('a pinned key that does not match the server: BAD_SIGNATURE, answers never trusted', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const p = await udpPeer(s.port, { serverKey: generateIdentity().publicKey, timeoutMs: 100, retries: 1 });
  t.after(() => p.close());
  await assert.rejects(p.client.register({ email: 'a@example.com' }), (e: PilotError) => e.code === 'BAD_SIGNATURE' && /different server key/.test(e.message));
  await assert.rejects(p.client.hello(), (e: PilotError) => e.code === 'BAD_SIGNATURE');
});

test('close() rejects pending calls and clears timers', async () => {
  const c = new RegistryClient({ identity: generateIdentity(), serverKey: generateIdentity().publicKey, send: () => {}, timeoutMs: 10_000 });
  const pending = c.heartbeat({});
  c.close();
  await assert.rejects(pending, (e: PilotError) => e.code === 'CONNECTION_RESET');
  await assert.rejects(c.heartbeat({}), (e: PilotError) => e.code === 'CONNECTION_RESET');
});

test('pushes: only fresh, unreplayed, signed by the pinned key', () => {
  const server = generateIdentity();
  const c = new RegistryClient({ identity: generateIdentity(), serverKey: server.publicKey, send: () => {} });
  const got: unknown[] = [];
  c.on('push', (p) => got.push(p));
  const push = buildPush(server, 'punch', { x: 1 });
  c.handlePacket(push);
  c.handlePacket(push); // replay
  c.handlePacket(buildPush(generateIdentity(), 'evil', {})); // other key
  c.handlePacket(buildPush(server, 'old', {}, Date.now() - 120_000)); // stale
  c.handlePacket(Buffer.from([0x03, 0x7b, 0x7d]));
  assert.deepEqual(got, [{ event: 'punch', data: { x: 1 } }]);
  c.close();
});

test('request(): generic signed call, hello and known results validated', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const p = await udpPeer(s.port);
  t.after(() => p.close());
  const hello = await p.client.request<{ serverKey: Buffer; observed: string }>('hello');
  assert.deepEqual(hello.serverKey, s.publicKey);
  const r = await p.client.request<{ address: string }>('register', { email: 'a@example.com' });
  assert.equal(r.address, '0:0000.0000.0001');
  await assert.rejects(p.client.request('no_such_method', {}), (e: PilotError) => e.code === 'BAD_REQUEST' && /unknown method/.test(e.message));
  assert.deepEqual(await p.client.request('trust_list', {}), { trusted: [], more: false });
});

test('the hello a client sends is padded enough to be answered over UDP', async () => {
  const { buildHello } = await import('../../src/registry/envelope.ts');
  const { MIN_HELLO_PACKET } = await import('../../src/registry/protocol.ts');
  assert.ok(buildHello().packet.length >= MIN_HELLO_PACKET);
});
