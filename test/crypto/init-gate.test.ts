// InitGate (src/crypto/init-gate.ts) on a controlled clock: which message 1s
// get the Noise work, which only a cookie reply, and what each drop counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { InitGate, MAX_VERIFYING, type InitGateOptions } from '../../src/crypto/init-gate.ts';
import { INIT_BYTES } from '../../src/crypto/initiator.ts';
import { COOKIE_REPLY_BYTES, openCookieReply, responderKeys, stampMacs } from '../../src/crypto/cookie.ts';
import { newSessionStats } from '../../src/crypto/session-stats.ts';

const publicKey = crypto.randomBytes(32);
const keys = responderKeys(publicKey);

/** A message 1 with a valid mac1 (the key is public), optionally a mac2 from `cookie`. */
function init(cookie?: Buffer): { pkt: Buffer; mac1: Buffer } {
  const pkt = crypto.randomBytes(INIT_BYTES);
  pkt[0] = 0x10;
  const mac1 = stampMacs(pkt, keys, cookie);
  return { pkt, mac1 };
}

function rig(opts: Partial<InitGateOptions> = {}, replies = true) {
  let now = 1_000_000;
  const stats = newSessionStats();
  const sent: Array<{ reply: Buffer; path: string }> = [];
  const gate = new InitGate<string>(
    {
      now: () => now,
      // path "ip:port": limits count per ip, cookies bind ip:port
      sourceOf: (path) => ({ bucket: path.split(':')[0]!, cookie: path }),
      ...(replies ? { sendCookie: (reply: Buffer, path: string) => sent.push({ reply, path }) } : {}),
    },
    { publicKey, maxInitsPerSecond: 500, underLoadInitsPerSecond: 100, sourceInitsPerSecond: 20, ...opts },
    stats,
  );
  return {
    gate,
    stats,
    sent,
    advance(ms: number) {
      now += ms;
    },
  };
}

test('not under load: a right mac1 is admitted, a wrong one is dropped (dropMac1) without a reply', () => {
  const r = rig();
  assert.equal(r.gate.admit(init().pkt, '192.0.2.1:1'), true);
  const bad = init().pkt;
  bad[10]! ^= 1; // mac1 no longer matches
  assert.equal(r.gate.admit(bad, '192.0.2.1:1'), false);
  assert.equal(r.stats.dropMac1, 1);
  assert.equal(r.sent.length, 0);
});

test('per source: a burst of 5, then dropSourceLimited until tokens refill; other sources are not affected', () => {
  const r = rig();
  for (let i = 0; i < 5; i++) assert.equal(r.gate.admit(init().pkt, '192.0.2.1:1'), true);
  assert.equal(r.gate.admit(init().pkt, '192.0.2.1:2'), false, 'another port of the same IP shares its bucket');
  assert.equal(r.stats.dropSourceLimited, 1);
  assert.equal(r.gate.admit(init().pkt, '192.0.2.2:1'), true);
  r.advance(50); // 20/s: one token
  assert.equal(r.gate.admit(init().pkt, '192.0.2.1:1'), true);
  assert.equal(r.gate.admit(init().pkt, '192.0.2.1:1'), false);
});

test('global budget: past maxInitsPerSecond in one second, dropBusy; a new second has a fresh budget', () => {
  const r = rig({ maxInitsPerSecond: 3 });
  for (let i = 0; i < 3; i++) assert.equal(r.gate.admit(init().pkt, `192.0.2.${i}:1`), true);
  assert.equal(r.gate.admit(init().pkt, '192.0.2.9:1'), false);
  assert.equal(r.stats.dropBusy, 1);
  r.advance(1000);
  assert.equal(r.gate.admit(init().pkt, '192.0.2.9:1'), true);
});

test('under load: no cookie earns a cookie reply only; its cookie (bound to the source) then gets through', () => {
  const r = rig({ underLoadInitsPerSecond: 2 });
  assert.equal(r.gate.admit(init().pkt, '192.0.2.1:1'), true);
  assert.equal(r.gate.admit(init().pkt, '192.0.2.1:1'), true);
  const m = init();
  assert.equal(r.gate.admit(m.pkt, '192.0.2.1:1'), false, 'third in a second: under load');
  assert.equal(r.stats.cookieRepliesSent, 1);
  assert.equal(r.sent.length, 1);
  const { reply, path } = r.sent[0]!;
  assert.equal(path, '192.0.2.1:1', 'answered where it came from');
  assert.equal(reply.length, COOKIE_REPLY_BYTES);
  assert.ok(reply.length < m.pkt.length, 'no amplification');
  const cookie = openCookieReply(reply, keys, m.mac1);
  assert.ok(cookie !== null, 'the initiator that wrote the message can open it');
  assert.equal(r.gate.admit(init(cookie).pkt, '192.0.2.1:1'), true, 'with mac2 from that cookie');
  assert.equal(r.gate.admit(init(cookie).pkt, '192.0.2.1:7'), false, 'the cookie is bound to ip:port');
  assert.equal(r.stats.cookieRepliesSent, 2, 'a wrong mac2 earns a fresh cookie reply');
  r.advance(1000); // load lasts a second after the last overload
  assert.equal(r.gate.admit(init().pkt, '192.0.2.3:1'), true, 'no longer under load');
});

test('under load: a source past its share of cookie replies gets nothing (cookieRepliesLimited), checked before any hashing', () => {
  const r = rig({ underLoadInitsPerSecond: 1 });
  r.gate.admit(init().pkt, '198.51.100.1:1');
  for (let i = 0; i < 10; i++) {
    const junk = crypto.randomBytes(INIT_BYTES); // not even a right mac1: the share is checked first
    junk[0] = 0x10;
    junk.fill(0, INIT_BYTES - 16);
    assert.equal(r.gate.admit(junk, '203.0.113.5:1'), false);
  }
  assert.equal(r.stats.cookieRepliesLimited, 5, 'burst 5, then limited');
  assert.equal(r.stats.dropMac1, 5, 'only the ones within the share were hashed');
  assert.equal(r.stats.cookieRepliesSent, 0, 'a wrong mac1 earns no reply');
});

test('without a way to reply, nothing is sent or counted as sent', () => {
  const r = rig({ underLoadInitsPerSecond: 1 }, false);
  r.gate.admit(init().pkt, '192.0.2.1:1');
  assert.equal(r.gate.admit(init().pkt, '192.0.2.1:1'), false);
  assert.equal(r.stats.cookieRepliesSent, 0);
});

test('message 1s waiting on peer checks: half the queue means load, a full queue means dropBusy', () => {
  const r = rig();
  for (let i = 0; i < MAX_VERIFYING / 2; i++) r.gate.verifyStarted();
  assert.equal(r.gate.admit(init().pkt, '192.0.2.1:1'), false, 'cookie demanded');
  assert.equal(r.stats.cookieRepliesSent, 1);
  for (let i = 0; i < MAX_VERIFYING / 2; i++) r.gate.verifyStarted();
  const m = init();
  r.gate.admit(m.pkt, '192.0.2.2:1');
  const c2 = openCookieReply(r.sent[1]!.reply, keys, m.mac1)!;
  assert.equal(r.gate.admit(init(c2).pkt, '192.0.2.2:1'), false);
  assert.equal(r.stats.dropBusy, 1, 'a valid cookie, but no room to verify');
  for (let i = 0; i < MAX_VERIFYING; i++) r.gate.verifyDone();
  r.advance(1000);
  assert.equal(r.gate.admit(init().pkt, '192.0.2.3:1'), true);
});
