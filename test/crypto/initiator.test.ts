// Initiator (src/crypto/initiator.ts) with mocked timers and a controlled clock:
// retries, timeout, message 2 matching (any retry's), cookie replies. The
// responder side is the real Noise responder, called directly.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { INIT_BYTES, INIT_HEADER, Initiator, RESP_HEADER } from '../../src/crypto/initiator.ts';
import { IkResponder, MSG1_BYTES, type Hello } from '../../src/crypto/handshake.ts';
import { CookieChecker } from '../../src/crypto/cookie.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { newSessionStats } from '../../src/crypto/session-stats.ts';
import { addressKey } from '../../src/wire/address.ts';

const me = { id: generateIdentity(), addr: { network: 0, node: 1 } };
const peer = { id: generateIdentity(), addr: { network: 0, node: 2 } };
const peerKey = addressKey(peer.addr);

function rig(t: TestContext, opts = { retryMs: 100, timeoutMs: 350 }) {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 1_000_000;
  let ts = 0;
  let index = 0;
  const stats = newSessionStats();
  const sent: Array<{ peerKey: number; pkt: Buffer }> = [];
  const failed: number[] = [];
  const errors: unknown[] = [];
  const ini = new Initiator(
    {
      identity: me.id,
      hello: (): Hello => ({ address: me.addr, bootId: Buffer.alloc(8, 1), timestamp: ++ts }),
      newIndex: () => ++index,
      send: (k, pkt) => sent.push({ peerKey: k, pkt: Buffer.from(pkt) }),
      failed: (k) => failed.push(k),
      onError: (err) => errors.push(err),
      now: () => now,
    },
    opts,
    stats,
  );
  return {
    ini,
    stats,
    sent,
    failed,
    errors,
    advance(ms: number) {
      now += ms;
      t.mock.timers.tick(ms);
    },
  };
}

/** The peer's message 2 to one of our message 1s: [0x11][its index][our index][msg2]. */
function answerTo(init: Buffer, from = peer): Buffer {
  const r = IkResponder.read(from.id, init.subarray(INIT_HEADER, INIT_HEADER + MSG1_BYTES))!;
  const { message2 } = r.reply({ address: from.addr, bootId: Buffer.alloc(8, 2), timestamp: Date.now() })!;
  const pkt = Buffer.alloc(RESP_HEADER + message2.length);
  pkt[0] = 0x11;
  pkt.writeUInt32BE(777, 1);
  pkt.writeUInt32BE(init.readUInt32BE(1), 5);
  message2.copy(pkt, RESP_HEADER);
  return pkt;
}

test('start sends one message 1 with a fresh index and a right mac1; starting again while pending does nothing', (t) => {
  const r = rig(t);
  r.ini.start(peerKey, peer.id.publicKey);
  assert.equal(r.sent.length, 1);
  const { peerKey: k, pkt } = r.sent[0]!;
  assert.equal(k, peerKey);
  assert.equal(pkt.length, INIT_BYTES);
  assert.equal(pkt[0], 0x10);
  assert.equal(pkt.readUInt32BE(1), 1);
  assert.ok(new CookieChecker(peer.id.publicKey).mac1Ok(pkt), 'mac1 keyed by the peer key');
  assert.ok(
    pkt.subarray(INIT_BYTES - 16).every((b) => b === 0),
    'no cookie: mac2 zero',
  );
  assert.ok(r.ini.pending(peerKey) && r.ini.has(1));
  assert.equal(r.ini.attemptsOf(peerKey), 1);
  r.ini.start(peerKey, peer.id.publicKey);
  assert.equal(r.sent.length, 1);
  assert.equal(r.stats.handshakesInitiated, 1);
});

test('a new message 1 every retryMs; past timeoutMs the handshake fails once and its indexes are forgotten', (t) => {
  const r = rig(t);
  r.ini.start(peerKey, peer.id.publicKey);
  r.advance(100);
  r.advance(100);
  r.advance(100);
  assert.equal(r.sent.length, 4);
  assert.deepEqual(
    r.sent.map((s) => s.pkt.readUInt32BE(1)),
    [1, 2, 3, 4],
  );
  assert.equal(r.stats.handshakeRetries, 3);
  assert.equal(r.ini.attemptsOf(peerKey), 4);
  assert.deepEqual(r.failed, []);
  r.advance(100); // 4 x 100 >= 350
  assert.deepEqual(r.failed, [peerKey]);
  assert.equal(r.stats.handshakesFailed, 1);
  assert.equal(r.ini.pending(peerKey), false);
  assert.ok(![1, 2, 3, 4].some((i) => r.ini.has(i)));
  r.advance(1000);
  assert.equal(r.sent.length, 4, 'nothing more');
});

test('a message 2 answering an earlier retry completes the handshake; later ones are stale', (t) => {
  const r = rig(t);
  r.ini.start(peerKey, peer.id.publicKey);
  r.advance(100);
  const first = r.sent[0]!.pkt;
  const a = r.ini.answer(answerTo(first));
  assert.ok(a !== undefined);
  assert.equal(a.peerKey, peerKey);
  assert.equal(a.localIndex, 1);
  assert.equal(a.remoteIndex, 777);
  assert.ok(a.result.remoteStatic.equals(peer.id.publicKey));
  assert.ok(a.result.bootId.equals(Buffer.alloc(8, 2)));
  assert.equal(r.ini.pending(peerKey), false);
  assert.equal(r.ini.answer(answerTo(r.sent[1]!.pkt)), undefined, 'the other retry was cancelled with it');
  assert.equal(r.stats.dropStaleHandshake, 1);
  r.advance(1000);
  assert.equal(r.sent.length, 2, 'no more retries');
});

test('a message 2 of the wrong size, tampered, or for another address is dropped and counted', (t) => {
  const r = rig(t);
  r.ini.start(peerKey, peer.id.publicKey);
  const init = r.sent[0]!.pkt;
  assert.equal(r.ini.answer(Buffer.alloc(10, 0x11)), undefined);
  assert.equal(r.stats.dropMalformed, 1);
  assert.equal(IkResponder.read(generateIdentity(), init.subarray(INIT_HEADER, INIT_HEADER + MSG1_BYTES)), null, 'only the peer key reads it');
  const tampered = answerTo(init);
  tampered[tampered.length - 1]! ^= 1;
  assert.equal(r.ini.answer(tampered), undefined);
  assert.equal(r.stats.dropAuth, 1);
  assert.equal(r.ini.has(1), false, 'its Noise state is spent');
  assert.equal(r.ini.pending(peerKey), true, 'the handshake itself goes on');
  r.advance(100);
  const elsewhere = answerTo(r.sent[1]!.pkt, { id: peer.id, addr: { network: 0, node: 3 } });
  assert.equal(r.ini.answer(elsewhere), undefined, 'the right key claiming another address');
  assert.equal(r.stats.dropAuth, 2);
});

test('a cookie reply is opened with the mac1 it answers and triggers one immediate resend with mac2', (t) => {
  const r = rig(t, { retryMs: 5000, timeoutMs: 20_000 });
  const responder = new CookieChecker(peer.id.publicKey, () => 1_000_000);
  r.ini.start(peerKey, peer.id.publicKey);
  const reply = responder.reply(r.sent[0]!.pkt, '192.0.2.1:9');
  r.ini.onCookieReply(reply);
  assert.equal(r.stats.cookieRepliesReceived, 1);
  assert.equal(r.sent.length, 2, 'resent at once, not after retryMs');
  const resent = r.sent[1]!.pkt;
  assert.ok(responder.mac2Ok(resent, '192.0.2.1:9'), 'mac2 from the cookie');
  assert.equal(r.ini.attemptsOf(peerKey), 1, 'not counted as a retry attempt');
  r.ini.onCookieReply(reply);
  assert.equal(r.sent.length, 2, 'one resend per message 1');
  r.ini.onCookieReply(responder.reply(resent, '192.0.2.1:9'));
  r.ini.onCookieReply(responder.reply(r.sent[2]!.pkt, '192.0.2.1:9'));
  assert.equal(r.sent.length, 3, 'at most two cookie resends per handshake');
  r.ini.onCookieReply(Buffer.alloc(5, 0x14));
  assert.equal(r.stats.dropMalformed, 1);
  const forged = Buffer.from(reply);
  forged[forged.length - 1]! ^= 1;
  forged.writeUInt32BE(3, 1);
  r.ini.onCookieReply(forged);
  assert.equal(r.stats.dropAuth, 1);
});

test('cancel stops retries; forget also drops the cookie; an unusable key fails at once; destroy ends everything', (t) => {
  const r = rig(t, { retryMs: 100, timeoutMs: 10_000 });
  r.ini.start(peerKey, peer.id.publicKey);
  r.ini.onCookieReply(new CookieChecker(peer.id.publicKey, () => 1_000_000).reply(r.sent[0]!.pkt, 'src'));
  r.ini.cancel(peerKey);
  r.advance(500);
  assert.equal(r.sent.length, 2);
  r.ini.start(peerKey, peer.id.publicKey);
  assert.ok(
    r.sent[2]!.pkt.subarray(INIT_BYTES - 16).some((b) => b !== 0),
    'the cookie is still used after cancel',
  );
  r.ini.forget(peerKey);
  r.ini.start(peerKey, peer.id.publicKey);
  assert.ok(
    r.sent[3]!.pkt.subarray(INIT_BYTES - 16).every((b) => b === 0),
    'but not after forget',
  );

  const bad = 9;
  r.ini.start(bad, Buffer.alloc(32, 0xff)); // not a point on the curve
  assert.deepEqual(r.failed, [bad]);
  assert.equal(r.ini.pending(bad), false);

  r.ini.destroy();
  r.advance(1000);
  r.ini.start(peerKey, crypto.randomBytes(32));
  assert.equal(r.sent.length, 4, 'nothing after destroy');
  assert.deepEqual(r.errors, []);
});
