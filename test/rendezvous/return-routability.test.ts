// Cookies for UDP return routability: bound to the source ip:port, rotating,
// refreshed before they expire, never answered with more than was received.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReturnRoutability } from '../../src/rendezvous/return-routability.ts';
import { buildHello, buildResponse, decodeCookieReply, newNonce } from '../../src/registry/envelope.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import type { Link } from '../../src/rendezvous/link.ts';
import { startServer, udpPeer } from './helpers.ts';

function link(observed: string, kind: 'udp' | 'tcp' = 'udp'): Link & { sent: Buffer[] } {
  const sent: Buffer[] = [];
  return { kind, id: `${kind}:${observed}`, observed, sent, send: (p) => (sent.push(p), true) };
}

test('a cookie is valid only for its source, for one to two rotation periods, and is refreshed on the way', () => {
  const t0 = 1_000_000;
  const rr = new ReturnRoutability(1000, t0);
  const a = link('192.0.2.1:4000');
  const cookie = rr.cookieFor(a, t0);
  assert.deepEqual(rr.check(a, cookie, t0 + 10), { ok: true });
  assert.equal(rr.check(link('192.0.2.1:4001'), cookie, t0 + 10).ok, false, 'another port');
  assert.equal(rr.check(link('192.0.2.2:4000'), cookie, t0 + 10).ok, false, 'another address');
  assert.equal(rr.check(a, undefined, t0).ok, false);
  assert.equal(rr.check(a, 'AAAAAAAAAAAAAAAAAAAAAA==', t0).ok, false);
  const later = rr.check(a, cookie, t0 + 1500);
  assert.ok(later.ok && later.refresh !== undefined && later.refresh !== cookie, 'previous secret: still valid, with a fresh cookie');
  assert.deepEqual(rr.check(a, later.ok ? later.refresh : undefined, t0 + 1600), { ok: true });
  assert.equal(rr.check(a, cookie, t0 + 2600).ok, false, 'two rotations later it has expired');
  assert.deepEqual(rr.check(link('10.0.0.1:1', 'tcp'), undefined, t0), { ok: true }, 'TCP is return-routable');
});

test('cookie replies are bound to the request nonce and never larger than the request', () => {
  const rr = new ReturnRoutability();
  const a = link('192.0.2.1:4000');
  const nonce = newNonce();
  rr.sendCookieReply(a, nonce, 300);
  assert.equal(a.sent.length, 1);
  assert.ok(a.sent[0]!.length <= 300);
  const d = decodeCookieReply(a.sent[0]!);
  assert.equal(d?.reqNonce, nonce);
  assert.deepEqual(rr.check(a, d?.cookie), { ok: true });
  rr.sendCookieReply(a, nonce, 20);
  assert.equal(a.sent.length, 1, 'withheld: bigger than the request');
  assert.equal(rr.counters.cookieRepliesWithheld, 1);
});

test('the largest hello answer fits in a padded hello (1x before validation)', () => {
  const server = generateIdentity();
  const observed = `[fe80::1234:5678:9abc:def0%${'x'.repeat(80)}]:65535`.slice(0, 128);
  const answer = buildResponse(
    server,
    'abcdef012345',
    newNonce(),
    { ok: true, result: { serverKey: server.publicKey.toString('base64'), observed, altPort: 65535, relayDf: true, cookie: 'A'.repeat(22) + '==' } },
    observed,
  );
  assert.ok(answer.length <= buildHello().packet.length, `${answer.length} > ${buildHello().packet.length}`);
});

test('clients keep working across secret rotations without cookie round trips, and re-prove a new address', async (t) => {
  const s = await startServer({ cookieRotateMs: 500 });
  t.after(() => s.close());
  const p = await udpPeer(s.port);
  t.after(() => p.close());
  await p.client.hello();
  await p.client.register({ email: 'r@example.com' });
  for (let i = 0; i < 12; i++) {
    await p.client.heartbeat();
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(s.stats().routability.cookieReplies, 0, 'refreshed cookies: no extra round trip');
  // A client that never said hello (pinned key) pays one cookie round trip, once.
  const q = await udpPeer(s.port, { serverKey: s.publicKey });
  t.after(() => q.close());
  await q.client.register({ email: 'q@example.com' });
  await q.client.heartbeat();
  assert.equal(s.stats().routability.cookieReplies, 1);
});
