// mac1 / mac2 / cookie replies (src/crypto/cookie.ts), the per-source buckets
// and load meter (rate-limit.ts), and the session manager's under-load mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { CookieChecker, COOKIE_REPLY_BYTES, COOKIE_SECRET_MS, openCookieReply, responderKeys, stampMacs } from '../../src/crypto/cookie.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { MSG1_BYTES } from '../../src/crypto/handshake.ts';
import { LoadMeter, SourceBuckets } from '../../src/crypto/rate-limit.ts';
import { makePair, peerOf, texts, until } from './pair.ts';

const INIT_BYTES = 5 + MSG1_BYTES + 32;

function junkInit(): Buffer {
  const b = crypto.randomBytes(INIT_BYTES);
  b[0] = 0x10;
  return b;
}

test('mac1 is keyed by the responder public key and covers the whole message', () => {
  const id = generateIdentity();
  const other = generateIdentity();
  const checker = new CookieChecker(id.publicKey);
  const pkt = junkInit();
  stampMacs(pkt, responderKeys(id.publicKey), undefined);
  assert.ok(checker.mac1Ok(pkt));
  assert.ok(
    pkt.subarray(INIT_BYTES - 16).every((x) => x === 0),
    'no cookie: mac2 is zero',
  );
  const forOther = Buffer.from(pkt);
  stampMacs(forOther, responderKeys(other.publicKey), undefined);
  assert.ok(!checker.mac1Ok(forOther), 'written for another key');
  for (const at of [0, 4, 5, 60, INIT_BYTES - 33, INIT_BYTES - 20]) {
    const t = Buffer.from(pkt);
    t[at]! ^= 1;
    assert.ok(!checker.mac1Ok(t), `byte ${at} altered`);
  }
  assert.ok(!checker.mac1Ok(junkInit()), 'random junk');
});

test('cookie reply: smaller than message 1, only the initiator that wrote it can open it, mac2 binds the source', () => {
  let t = 1_000_000;
  const id = generateIdentity();
  const keys = responderKeys(id.publicKey);
  const checker = new CookieChecker(id.publicKey, () => t);
  const pkt = junkInit();
  const mac1 = stampMacs(pkt, keys, undefined);
  assert.ok(!checker.mac2Ok(pkt, '10.0.0.1:5000'), 'a zero mac2 never passes');
  const reply = checker.reply(pkt, '10.0.0.1:5000');
  assert.equal(reply.length, COOKIE_REPLY_BYTES);
  assert.ok(reply.length < pkt.length, `no amplification: ${reply.length} < ${pkt.length}`);
  assert.equal(reply[0], 0x14);
  assert.equal(reply.readUInt32BE(1), pkt.readUInt32BE(1), 'answers the sender index');
  assert.equal(openCookieReply(reply, keys, crypto.randomBytes(16)), null, 'another message 1 (mac1) cannot use it');
  assert.equal(openCookieReply(reply, responderKeys(generateIdentity().publicKey), mac1), null, 'not from that responder');
  const tampered = Buffer.from(reply);
  tampered[40]! ^= 1;
  assert.equal(openCookieReply(tampered, keys, mac1), null);
  const cookie = openCookieReply(reply, keys, mac1);
  assert.ok(cookie !== null);

  const next = junkInit();
  stampMacs(next, keys, cookie);
  assert.ok(checker.mac1Ok(next));
  assert.ok(checker.mac2Ok(next, '10.0.0.1:5000'));
  assert.ok(!checker.mac2Ok(next, '10.0.0.1:5001'), 'another port');
  assert.ok(!checker.mac2Ok(next, '10.0.0.2:5000'), 'another address (a spoofer never sees the cookie)');
  const bad = Buffer.from(next);
  bad[20]! ^= 1;
  assert.ok(!checker.mac2Ok(bad, '10.0.0.1:5000'), 'mac2 covers the message');

  // The secret rotates every 2 minutes; a cookie from the previous secret still counts, one from two rotations ago does not.
  t += COOKIE_SECRET_MS + 1;
  assert.ok(checker.mac2Ok(next, '10.0.0.1:5000'));
  t += COOKIE_SECRET_MS + 1;
  assert.ok(!checker.mac2Ok(next, '10.0.0.1:5000'));
});

test('SourceBuckets: one source cannot take more than its share, others are unaffected; the table is bounded and swept', () => {
  const b = new SourceBuckets(20, 5, 100);
  let ok = 0;
  for (let i = 0; i < 100; i++) if (b.allow('flood', 0)) ok++;
  assert.equal(ok, 5, 'burst');
  assert.ok(b.allow('honest', 0));
  assert.ok(!b.allow('flood', 10), 'no refill yet');
  assert.ok(b.allow('flood', 60), 'refills at 20/s');
  for (let i = 0; i < 1000; i++) b.allow(`spoof-${i}`, 100);
  assert.equal(b.size, 100);
  b.sweep(100 + 1000);
  assert.equal(b.size, 0, 'refilled entries are dropped');
});

test('LoadMeter: under load above the threshold and for a second after', () => {
  const m = new LoadMeter(10);
  for (let i = 0; i < 10; i++) assert.equal(m.note(0), false);
  assert.equal(m.note(1), true);
  assert.equal(m.note(500), true);
  assert.equal(m.note(1400), true, 'still within a second of the last overload');
  assert.equal(m.note(2500), false);
  assert.equal(m.note(3000, true), true, 'busy (verifications queued) counts as load');
});

test('one source past its share is dropped (dropSourceLimited) while another completes a handshake', async () => {
  const p = makePair({ mgr: { underLoadInitsPerSecond: 10_000 } });
  const { a, b } = p;
  const keys = responderKeys(b.id.publicKey);
  for (let i = 0; i < 50; i++) {
    const j = junkInit();
    stampMacs(j, keys, undefined);
    b.mgr.handlePacket(j, { from: 'flood' });
  }
  assert.equal(b.mgr.stats.dropAuth, 5, 'the burst of 5 was read');
  assert.equal(b.mgr.stats.dropSourceLimited, 45);
  a.mgr.sendTo(peerOf(b), Buffer.from('fair share'));
  await until(() => b.got.length === 1, 5000, 'message');
  assert.deepEqual(texts(b.got), ['fair share']);
  p.destroy();
});

test('under load: message 1s without a cookie get a cookie reply only; the real initiator resends with mac2 at once and gets through', async () => {
  let replies = 0;
  const p = makePair({
    mgr: { underLoadInitsPerSecond: 5, handshakeRetryMs: 5000, handshakeTimeoutMs: 20_000 },
    filter: (pkt) => {
      if (pkt[0] === 0x14) replies++;
      return pkt;
    },
  });
  const { a, b } = p;
  const keys = responderKeys(b.id.publicKey);
  // A flood with valid mac1s (the responder key is public) from spoofed sources.
  for (let i = 0; i < 200; i++) {
    const j = junkInit();
    stampMacs(j, keys, undefined);
    b.mgr.handlePacket(j, { from: `spoof-${i % 20}` });
  }
  const s = b.mgr.stats;
  assert.equal(s.dropAuth, 5, 'only the message 1s before load was detected reached the DH work');
  assert.equal(s.cookieRepliesSent + s.cookieRepliesLimited, 195);
  assert.equal(s.cookieRepliesSent, 20 * 5, 'cookie replies are capped per source (burst 5)');
  const t0 = Date.now();
  a.mgr.sendTo(peerOf(b), Buffer.from('through the flood'));
  await until(() => b.got.length === 1, 4000, 'message');
  assert.ok(Date.now() - t0 < 4000, 'well before the 5 s retry: the cookie reply triggered an immediate resend');
  assert.equal(a.mgr.stats.cookieRepliesReceived, 1);
  assert.equal(b.mgr.stats.handshakesResponded, 1);
  assert.ok(replies >= 1);
  p.destroy();
});
