// Forged, altered, replayed and stale requests are refused; byte-identical
// retransmissions get the cached answer without running the method again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRequest, newNonce, openServerMessage } from '../../src/registry/envelope.ts';
import { generateIdentity, sign, type Identity } from '../../src/registry/signing.ts';
import type { ResponseStatement } from '../../src/registry/protocol.ts';
import { cookieOf, startServer, udpPeer, type Peer } from './helpers.ts';

function packet(env: object): Buffer {
  return Buffer.concat([Buffer.from([0x01]), Buffer.from(JSON.stringify(env))]);
}

function signedPacket(stmt: object, signer: Identity, id = 'r1'): Buffer {
  const text = JSON.stringify(stmt);
  return packet({ id, stmt: text, sig: sign(Buffer.from(text), signer.secretKey).toString('base64') });
}

async function answer(p: Peer, serverKey: Buffer): Promise<ResponseStatement> {
  const pkt = await p.nextPacket(0x02);
  const opened = openServerMessage(pkt, serverKey);
  assert.ok(opened && 'msg' in opened && opened.msg.type === 'response', 'a response signed by the server');
  return opened.msg.stmt as ResponseStatement;
}

function errCode(r: ResponseStatement): string | undefined {
  return r.ok ? undefined : r.error.code;
}

test('forged requests are refused with a code', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const p = await udpPeer(s.port);
  t.after(() => p.close());
  const cookie = await cookieOf(p);
  const victim = generateIdentity();
  const mallory = generateIdentity();
  const base = () => ({
    method: 'register',
    params: { email: 'v@example.com' },
    key: victim.publicKey.toString('base64'),
    server: s.publicKey.toString('base64'),
    ts: Date.now(),
    nonce: newNonce(),
    cookie,
  });

  // Signed by the wrong key.
  const st1 = base();
  p.sendRaw(signedPacket(st1, mallory));
  const r = await answer(p, s.publicKey);
  assert.equal(errCode(r), 'BAD_SIGNATURE');
  assert.equal(r.reqNonce, st1.nonce, 'the error is bound to the request');

  // Params altered after signing.
  const good = buildRequest(victim, s.publicKey, 'register', { email: 'v@example.com' }, Date.now(), cookie);
  const env = JSON.parse(good.packet.subarray(1).toString());
  env.stmt = env.stmt.replace('v@example.com', 'm@example.com');
  p.sendRaw(packet(env));
  assert.equal(errCode(await answer(p, s.publicKey)), 'BAD_SIGNATURE');

  // Addressed to another server.
  p.sendRaw(signedPacket({ ...base(), server: generateIdentity().publicKey.toString('base64') }, victim));
  assert.equal(errCode(await answer(p, s.publicKey)), 'BAD_SIGNATURE');

  // Stale and future timestamps.
  p.sendRaw(signedPacket({ ...base(), ts: Date.now() - 120_000 }, victim));
  assert.equal(errCode(await answer(p, s.publicKey)), 'STALE_REQUEST');
  p.sendRaw(signedPacket({ ...base(), ts: Date.now() + 120_000 }, victim));
  assert.equal(errCode(await answer(p, s.publicKey)), 'STALE_REQUEST');

  // Unknown method, extra fields.
  p.sendRaw(signedPacket({ ...base(), method: 'drop_tables' }, victim));
  assert.equal(errCode(await answer(p, s.publicKey)), 'BAD_REQUEST');
  p.sendRaw(signedPacket({ ...base(), params: { email: 'v@example.com', admin: true } }, victim));
  assert.equal(errCode(await answer(p, s.publicKey)), 'BAD_REQUEST');

  // None of that registered anything.
  assert.equal(s.stats().registry.executed, 2, 'only the two well-signed bad-params requests reached a method');
  const q = await udpPeer(s.port);
  t.after(() => q.close());
  await q.client.register({ email: 'q@example.com' });
  await assert.rejects(q.client.resolve({ publicKey: victim.publicKey.toString('base64') }), (e: { code: string }) => e.code === 'NOT_FOUND');
});

test('replayed nonce is REPLAYED; identical retransmission gets the cached answer', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const p = await udpPeer(s.port);
  t.after(() => p.close());
  const id = generateIdentity();
  const req = buildRequest(id, s.publicKey, 'register', { email: 'a@example.com', hostname: 'once' }, Date.now(), await cookieOf(p));
  p.sendRaw(req.packet);
  const first = await p.nextPacket(0x02);
  const executed = s.stats().registry.executed;

  p.sendRaw(req.packet);
  p.sendRaw(req.packet);
  const second = await p.nextPacket(0x02);
  const third = await p.nextPacket(0x02);
  assert.deepEqual(second, first, 'byte-identical cached answer');
  assert.deepEqual(third, first);
  assert.equal(s.stats().registry.executed, executed, 'not executed again');
  assert.equal(s.stats().registry.retransmits, 2);

  // Same signed statement under another envelope id: a replay, not a retransmission.
  const env = JSON.parse(req.packet.subarray(1).toString());
  p.sendRaw(packet({ ...env, id: 'other' }));
  const r = await answer(p, s.publicKey);
  assert.equal(errCode(r), 'REPLAYED');
  // A fresh statement reusing the nonce, validly signed: also a replay.
  const st = JSON.parse(env.stmt);
  p.sendRaw(signedPacket({ ...st, method: 'deregister', params: {} }, id));
  assert.equal(errCode(await answer(p, s.publicKey)), 'REPLAYED');
  assert.equal(s.stats().registry.executed, executed);
});

test('client retries are idempotent through lost answers', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const p = await udpPeer(s.port);
  t.after(() => p.close());
  await p.client.hello();
  // Drop the first two answers the client would see.
  const orig = p.client.handlePacket.bind(p.client);
  let dropped = 0;
  p.client.handlePacket = (pkt: Buffer) => {
    if (pkt[0] === 0x02 && dropped < 2) {
      dropped++;
      return;
    }
    orig(pkt);
  };
  const r = await p.client.register({ email: 'a@example.com', hostname: 'retry' });
  assert.equal(r.hostname, 'retry');
  assert.equal(dropped, 2);
  assert.equal(s.stats().registry.retransmits, 2);
});

test('identical request re-sent after the response-cache window is REPLAYED, not re-executed', async (t) => {
  const s = await startServer({ responseCacheMs: 150 });
  t.after(() => s.close());
  const p = await udpPeer(s.port);
  t.after(() => p.close());
  const id = generateIdentity();
  const req = buildRequest(id, s.publicKey, 'register', { email: 'a@example.com' }, Date.now(), await cookieOf(p));
  p.sendRaw(req.packet);
  const first = await answer(p, s.publicKey);
  assert.equal(first.ok, true);
  p.sendRaw(req.packet);
  assert.equal((await answer(p, s.publicKey)).ok, true, 'within the window: the cached answer');
  await new Promise((r) => setTimeout(r, 300));
  p.sendRaw(req.packet);
  const late = await answer(p, s.publicKey);
  assert.equal(errCode(late), 'REPLAYED');
  assert.equal(late.reqNonce, req.nonce);
  assert.equal(s.stats().registry.executed, 1);
  assert.equal(s.stats().registry.retransmits, 1);
});

test('every answer carries the observed endpoint, errors included', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const p = await udpPeer(s.port);
  t.after(() => p.close());
  const st = {
    method: 'heartbeat',
    params: {},
    key: generateIdentity().publicKey.toString('base64'),
    server: s.publicKey.toString('base64'),
    ts: Date.now(),
    nonce: newNonce(),
    cookie: await cookieOf(p),
  };
  p.sendRaw(signedPacket(st, generateIdentity()));
  const r = await answer(p, s.publicKey);
  assert.equal(errCode(r), 'BAD_SIGNATURE');
  assert.equal((r as { observed?: string }).observed, `127.0.0.1:${p.localPort}`);
});
