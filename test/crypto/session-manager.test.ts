import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { SessionManager } from '../../src/crypto/session-manager.ts';
import { DATA_HEADER_BYTES } from '../../src/crypto/session.ts';
import { TAG_BYTES } from '../../src/crypto/aead.ts';
import { MSG1_BYTES } from '../../src/crypto/handshake.ts';
import { responderKeys, stampMacs } from '../../src/crypto/cookie.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { addressKey } from '../../src/wire/address.ts';
import { makePair, peerOf, sleep, texts, tick, until, type Node, type PairPath } from './pair.ts';

const events = (n: Node, name: string): unknown[][] => n.events.filter((e) => e[0] === name).map((e) => e.slice(1));
const info = (from: Node, to: Node) => from.mgr.sessionInfo(addressKey(to.addr))!;
/** Both sides send on the same session: my local index is the peer's remote index and vice versa. */
const converged = (a: Node, b: Node): boolean => {
  const ia = info(a, b);
  const ib = info(b, a);
  if (ia === undefined || ib === undefined) return false; // a peer not (yet) known after closeSession: not converged
  return ia.established && ib.established && ia.localIndex === ib.remoteIndex && ia.remoteIndex === ib.localIndex;
};

test('handshake on demand: queued data flushed in order, both directions, session events, nothing in plaintext', async () => {
  const p = makePair();
  const { a, b } = p;
  const secret = 'very-secret-payload';
  for (let i = 0; i < 5; i++) a.mgr.sendTo(peerOf(b), Buffer.from(`${secret}-${i}`));
  assert.equal(a.mgr.hasSession(addressKey(b.addr)), false);
  assert.equal(info(a, b).queued, 5);
  await until(() => b.got.length === 5);
  assert.deepEqual(
    texts(b.got),
    [0, 1, 2, 3, 4].map((i) => `${secret}-${i}`),
  );
  b.mgr.sendTo(peerOf(a), Buffer.from('back'));
  await until(() => a.got.length === 1);
  assert.equal(String(a.got[0]), 'back');

  assert.equal(a.mgr.stats.handshakesInitiated, 1);
  assert.equal(a.mgr.stats.handshakesCompleted, 1);
  assert.equal(b.mgr.stats.handshakesResponded, 1);
  assert.equal(b.mgr.stats.handshakesCompleted, 1);
  assert.ok(converged(a, b));
  // 'session' on both sides with the peer's identity and boot id.
  const [ka, sa] = events(a, 'session')[0] as [number, { address: unknown; publicKey: Buffer; bootId: Buffer }];
  assert.equal(ka, addressKey(b.addr));
  assert.deepEqual(sa.address, b.addr);
  assert.ok(sa.publicKey.equals(b.id.publicKey) && sa.bootId.equals(b.bootId));
  const [kb, sb] = events(b, 'session')[0] as [number, { bootId: Buffer; path: unknown }];
  assert.equal(kb, addressKey(a.addr));
  assert.ok(sb.bootId.equals(a.bootId));
  assert.deepEqual(sb.path, { from: 'a' });
  assert.ok(events(b, 'path').length >= 5);
  for (const pkt of [...a.wire, ...b.wire]) {
    assert.ok(!pkt.includes(Buffer.from(secret)) && !pkt.includes(Buffer.from('back')), 'no plaintext on the wire');
    assert.ok([0x10, 0x11, 0x12].includes(pkt[0]!), `only handshake and data packets, saw ${pkt[0]}`);
  }
  p.destroy();
});

test('tampered, replayed and garbage packets are dropped, counted, never thrown, and do not disturb the session', async () => {
  const p = makePair();
  const { a, b } = p;
  a.mgr.sendTo(peerOf(b), Buffer.from('one'));
  await until(() => b.got.length === 1);
  const data = a.wire.filter((x) => x[0] === 0x12);
  const last = data[data.length - 1]!;

  b.mgr.handlePacket(Buffer.from(last), { from: 'a' }); // replay
  assert.equal(b.mgr.stats.dropReplay, 1);

  const bad = Buffer.from(last);
  bad[bad.length - 3]! ^= 0x40;
  bad.writeUInt32BE(bad.readUInt32BE(9) + 1000, 9); // fresh counter, altered body: must fail auth
  b.mgr.handlePacket(bad, { from: 'a' });
  assert.equal(b.mgr.stats.dropAuth, 1);

  const before = { ...b.mgr.stats };
  const junk: Buffer[] = [
    Buffer.alloc(0),
    Buffer.from([0x12, 1, 2]),
    Buffer.from([0x13]),
    Buffer.from([0x10, 0, 0, 0, 1]),
    Buffer.from([0x11, 0, 0, 0, 1, 0, 0, 0, 2]),
    Buffer.from([0x99, 1]),
  ];
  for (let i = 0; i < 300; i++) {
    const t = [0x10, 0x11, 0x12, 0x13][i % 4]!;
    const len = [5, 9, 29, 123, 79, 200][i % 6]!;
    const g = crypto.randomBytes(len);
    g[0] = t;
    junk.push(g);
  }
  for (const j of junk) assert.doesNotThrow(() => b.mgr.handlePacket(j, { from: 'mallory' }));
  assert.doesNotThrow(() => b.mgr.handlePacket('nope' as unknown as Buffer, null));
  const s = b.mgr.stats;
  assert.ok(s.dropMalformed > before.dropMalformed);
  assert.ok(s.dropAuth + s.dropUnknownIndex + s.dropStaleHandshake > before.dropAuth + before.dropUnknownIndex + before.dropStaleHandshake);
  assert.equal(s.internalErrors, 0, String(b.mgr.lastError));
  assert.equal(s.handshakesResponded, before.handshakesResponded, 'garbage never produced a session');
  assert.equal(b.got.length, 1);

  a.mgr.sendTo(peerOf(b), Buffer.from('two'));
  await until(() => b.got.length === 2);
  assert.equal(String(b.got[1]), 'two', 'forged counters did not move the window');
  p.destroy();
});

test('a replayed handshake message 1 is refused (timestamp), even if it arrives from elsewhere', async () => {
  const p = makePair();
  const { a, b } = p;
  a.mgr.sendTo(peerOf(b), Buffer.from('x'));
  await until(() => b.got.length === 1);
  const init = a.wire.find((x) => x[0] === 0x10)!;
  const responded = b.mgr.stats.handshakesResponded;
  b.mgr.handlePacket(Buffer.from(init), { from: 'attacker' });
  await sleep(20);
  assert.equal(b.mgr.stats.dropStaleHandshake, 1);
  assert.equal(b.mgr.stats.handshakesResponded, responded);
  assert.ok(!events(b, 'path').some((e) => (e[1] as { from: string }).from === 'attacker'), 'no path update from a replay');
  assert.equal(b.wire.filter((x) => x[0] === 0x11).length, 1, 'no second message 2');
  p.destroy();
});

test('verifyPeer false refuses the session and the initiator gets handshake-failed; the queue is dropped', async () => {
  const p = makePair({ verify: () => false, mgr: { handshakeRetryMs: 50, handshakeTimeoutMs: 600 } });
  const { a, b } = p;
  a.mgr.sendTo(peerOf(b), Buffer.from('x'));
  await until(() => events(a, 'handshake-failed').length === 1, 3000);
  assert.deepEqual(events(a, 'handshake-failed')[0], [addressKey(b.addr)]);
  assert.ok(b.mgr.stats.dropRejectedPeer >= 1);
  assert.equal(a.mgr.stats.handshakesFailed, 1);
  assert.equal(a.mgr.stats.dropNoSession, 1);
  assert.equal(info(a, b).queued, 0);
  assert.equal(b.got.length, 0);
  p.destroy();
});

test('async verifyPeer: a resolved true works; a rejection or a throw only refuses', async () => {
  const ok = makePair({ verify: async () => true });
  ok.a.mgr.sendTo(peerOf(ok.b), Buffer.from('async ok'));
  await until(() => ok.b.got.length === 1);
  ok.destroy();
  for (const verify of [
    () => Promise.reject(new Error('registry down')),
    (): boolean => {
      throw new Error('bug');
    },
  ]) {
    const p = makePair({ verify, mgr: { handshakeTimeoutMs: 200 } });
    p.a.mgr.sendTo(peerOf(p.b), Buffer.from('x'));
    await until(() => events(p.a, 'handshake-failed').length === 1);
    assert.ok(p.b.mgr.stats.dropRejectedPeer >= 1);
    assert.equal(p.b.mgr.stats.internalErrors, 0);
    p.destroy();
  }
});

test('without verifyPeer an unknown key cannot take over an address we already know', async () => {
  const p = makePair();
  const { a, b } = p;
  a.mgr.sendTo(peerOf(b), Buffer.from('x'));
  await until(() => b.got.length === 1);
  // An impostor with its own key claims a's address towards b.
  const impostor = new SessionManager({
    identity: generateIdentity(),
    localAddress: a.addr,
    bootId: crypto.randomBytes(8),
    send: (_k, pkt) => setImmediate(() => b.mgr.handlePacket(pkt, { from: 'impostor' })),
    handshakeRetryMs: 50,
    handshakeTimeoutMs: 200,
  });
  impostor.sendTo(peerOf(b), Buffer.from('evil'));
  await sleep(100);
  assert.ok(b.mgr.stats.dropRejectedPeer >= 1);
  assert.equal(b.got.length, 1);
  impostor.destroy();
  p.destroy();
});

test('simultaneous initiation converges to one session, in order and over a reordering, duplicating link', async () => {
  const plain = makePair();
  plain.a.mgr.sendTo(peerOf(plain.b), Buffer.from('from-a'));
  plain.b.mgr.sendTo(peerOf(plain.a), Buffer.from('from-b'));
  await until(() => plain.a.got.length === 1 && plain.b.got.length === 1);
  await until(() => converged(plain.a, plain.b));
  assert.equal(plain.a.mgr.stats.dropTieBreak + plain.b.mgr.stats.dropTieBreak, 1, 'exactly one message 1 lost the tie-break');
  assert.equal(plain.a.mgr.stats.handshakesCompleted, 1);
  assert.equal(plain.b.mgr.stats.handshakesCompleted, 1);
  plain.destroy();

  for (let seed = 1; seed <= 25; seed++) {
    const p = makePair({ seed, reorderMs: 8, dup: 0.2 });
    const { a, b } = p;
    a.mgr.sendTo(peerOf(b), Buffer.from('a0'));
    b.mgr.sendTo(peerOf(a), Buffer.from('b0'));
    await until(() => converged(a, b), 3000, `convergence (seed ${seed})`);
    // Both can now exchange data, and keep agreeing.
    for (let i = 1; i <= 10; i++) {
      a.mgr.sendTo(peerOf(b), Buffer.from(`a${i}`));
      b.mgr.sendTo(peerOf(a), Buffer.from(`b${i}`));
    }
    await until(() => new Set(texts(b.got)).has('a10') && new Set(texts(a.got)).has('b10'), 3000, `data (seed ${seed})`);
    await sleep(20);
    assert.ok(converged(a, b), `still converged (seed ${seed})`);
    assert.equal(new Set(texts(b.got)).size, b.got.length, 'no duplicates delivered');
    assert.equal(a.mgr.stats.handshakesFailed + b.mgr.stats.handshakesFailed, 0);
    p.destroy();
  }
});

test('simultaneous initiation: a message 1 that crossed the answer is refused as stale, not answered', async () => {
  let held: Buffer | null = null;
  let loser: 'a' | 'b' = 'a';
  const p = makePair({
    filter: (pkt, from) => {
      if (from === loser && pkt[0] === 0x10 && held === null) {
        held = pkt; // the loser's message 1 is delayed until after the winner's handshake completed
        return null;
      }
      return pkt;
    },
  });
  loser = Buffer.compare(p.a.id.publicKey, p.b.id.publicKey) < 0 ? 'a' : 'b';
  const L = p.nodes[loser];
  const W = p.nodes[loser === 'a' ? 'b' : 'a'];
  W.mgr.sendTo(peerOf(L), Buffer.from('from-winner'));
  L.mgr.sendTo(peerOf(W), Buffer.from('from-loser'));
  await until(() => L.got.length === 1 && W.got.length === 1 && converged(W, L));
  assert.ok(held);
  const responded = W.mgr.stats.handshakesResponded;
  W.mgr.handlePacket(held!, { from: loser });
  assert.equal(W.mgr.stats.dropStaleHandshake, 1, 'written before the loser answered: stale');
  assert.equal(W.mgr.stats.handshakesResponded, responded);
  await sleep(10);
  assert.ok(converged(W, L));
  p.destroy();
});

test('rekey by volume keeps data flowing both ways without losing a message', async () => {
  const p = makePair({ mgr: { rekeyAfterBytes: 10_000 } });
  const { a, b } = p;
  for (let i = 0; i < 60; i++) {
    a.mgr.sendTo(peerOf(b), Buffer.alloc(1000, i));
    if (i % 3 === 0) b.mgr.sendTo(peerOf(a), Buffer.from(`r${i}`));
    await tick();
  }
  await until(() => b.got.length === 60 && a.got.length === 20);
  assert.deepEqual(
    b.got.map((m) => m[0]),
    [...Array(60).keys()],
    'every message, in order',
  );
  assert.deepEqual(
    texts(a.got),
    [...Array(20).keys()].map((i) => `r${i * 3}`),
  );
  assert.ok(info(a, b).rekeys >= 4, `rekeyed by volume (${info(a, b).rekeys})`);
  await until(() => converged(a, b), 3000, 'last rekey settles');
  assert.equal(a.mgr.stats.dropReplay + b.mgr.stats.dropReplay + a.mgr.stats.dropUnknownIndex + b.mgr.stats.dropUnknownIndex, 0);
  p.destroy();
});

test('rekey by time; the old session still receives during the grace period; nothing is sent on an expired key', async () => {
  let t = 1_000_000;
  let oldIndex = -1;
  const held: Buffer[] = [];
  // Hold back b's first two packets on the old session after the rekey started, to deliver them late.
  const p = makePair({
    mgr: { rekeyAfterMs: 60_000, graceMs: 30_000, now: () => t },
    filter: (pkt, from) => {
      if (from === 'b' && pkt[0] === 0x12 && pkt.readUInt32BE(1) === oldIndex && held.length < 2 && t > 1_000_000) {
        held.push(pkt);
        return null;
      }
      return pkt;
    },
  });
  const { a, b } = p;
  a.mgr.sendTo(peerOf(b), Buffer.from('hello'));
  await until(() => b.got.length === 1);
  oldIndex = info(a, b).localIndex!;

  t += 61_000; // past rekeyAfterMs, before the hard limit (1.5x)
  for (let i = 0; i < 5; i++) {
    a.mgr.sendTo(peerOf(b), Buffer.from(`a${i}`));
    b.mgr.sendTo(peerOf(a), Buffer.from(`b${i}`));
    await tick();
  }
  await until(() => b.got.length === 6 && a.got.length === 3);
  assert.deepEqual(texts(b.got).slice(1), ['a0', 'a1', 'a2', 'a3', 'a4'], 'nothing lost while rekeying');
  assert.equal(info(a, b).rekeys, 1);
  assert.notEqual(info(a, b).localIndex, oldIndex);
  assert.equal(info(a, b).previousSessions, 1);
  await until(() => converged(a, b));
  assert.equal(held.length, 2, 'b kept sending on the old session until the new one was confirmed');

  // Late but within grace: accepted on the retired session.
  t += 10_000;
  a.mgr.handlePacket(held[0]!, { from: 'b' });
  assert.deepEqual(texts(a.got), ['b2', 'b3', 'b4', 'b0']);
  // After the grace period: refused.
  t += 21_000;
  a.mgr.handlePacket(held[1]!, { from: 'b' });
  assert.equal(a.mgr.stats.dropExpired, 1);
  assert.equal(a.got.length, 4);

  // Long silence: past the hard limit the old key is never used; a new handshake carries the data.
  t += 200_000;
  const sentBefore = a.wire.length;
  a.mgr.sendTo(peerOf(b), Buffer.from('after the silence'));
  assert.equal(a.wire[sentBefore]![0], 0x10, 'the first packet out is a handshake, not data on an expired key');
  await until(() => texts(b.got).includes('after the silence'));
  p.destroy();
});

test('keepalives alone (sendVia) rekey an idle session before it runs out, for as long as they go on (issue 19)', async () => {
  let t = 1_000_000;
  const p = makePair({ mgr: { rekeyAfterMs: 60_000, graceMs: 30_000, now: () => t } });
  const { a, b } = p;
  a.mgr.sendTo(peerOf(b), Buffer.from('hello'));
  await until(() => b.got.length === 1);
  const keepalive = Buffer.from([0x01, 1, 2, 3, 4, 5, 6, 7, 8]); // a path probe's size; what it says does not matter here
  // Ten minutes of nothing but keepalives both ways every 10 s: sessions are 90 s from their hard limit at most.
  for (let i = 0; i < 60; i++) {
    t += 10_000;
    assert.ok(a.mgr.sendVia(peerOf(b), keepalive, null), `a still has a session to send its keepalive on at +${(i + 1) * 10} s`);
    assert.ok(b.mgr.sendVia(peerOf(a), keepalive, null), `b still has a session to send its keepalive on at +${(i + 1) * 10} s`);
    await until(() => !info(a, b).handshaking && !info(b, a).handshaking && converged(a, b), 3000, `rekey settles at +${(i + 1) * 10} s`);
  }
  assert.ok(info(a, b).rekeys >= 4, `rekeyed by keepalives (${info(a, b).rekeys} rekeys)`);
  assert.ok(info(a, b).ageMs! < 90_000, `the session in use is young (${info(a, b).ageMs} ms)`);
  p.destroy();
});

test('a restarted peer is recovered through the 0x13 hint and peer-restarted is emitted', async () => {
  const p = makePair();
  const { a } = p;
  a.mgr.sendTo(peerOf(p.b), Buffer.from('before'));
  await until(() => p.b.got.length === 1);
  const b2 = p.restart('b'); // same identity and address, new bootId, no sessions
  a.mgr.sendTo(peerOf(b2), Buffer.from('lost: old session'));
  await until(() => events(a, 'peer-restarted').length === 1);
  assert.deepEqual(events(a, 'peer-restarted')[0], [addressKey(b2.addr)]);
  assert.ok(b2.mgr.stats.hintsSent >= 1);
  assert.equal(a.mgr.stats.hintRehandshakes, 1);
  assert.equal(a.mgr.stats.peerRestarts, 1);
  assert.equal(info(a, b2).remoteBootId, b2.bootId.toString('hex'));
  // peer-restarted comes before the new 'session'.
  const order = a.events.map((e) => e[0]).filter((e) => e === 'peer-restarted' || e === 'session');
  assert.deepEqual(order.slice(-2), ['peer-restarted', 'session']);
  a.mgr.sendTo(peerOf(b2), Buffer.from('after'));
  await until(() => texts(b2.got).includes('after'));
  assert.equal(events(b2, 'peer-restarted').length, 0, 'the restarted side knew nothing to reset');
  p.destroy();
});

test('a restarted peer that initiates is detected on the responder side', async () => {
  const p = makePair();
  const { a } = p;
  p.b.mgr.sendTo(peerOf(a), Buffer.from('first life'));
  await until(() => a.got.length === 1);
  const b2 = p.restart('b');
  b2.mgr.sendTo(peerOf(a), Buffer.from('second life'));
  await until(() => texts(a.got).includes('second life'));
  assert.equal(events(a, 'peer-restarted').length, 1);
  a.mgr.sendTo(peerOf(b2), Buffer.from('welcome back'));
  await until(() => texts(b2.got).includes('welcome back'));
  assert.ok(converged(a, b2));
  p.destroy();
});

test('a forged 0x13 only triggers a (rate-limited) re-handshake; nothing is torn down', async () => {
  const p = makePair();
  const { a, b } = p;
  a.mgr.sendTo(peerOf(b), Buffer.from('x'));
  await until(() => b.got.length === 1 && converged(a, b));
  const hint = Buffer.alloc(5);
  hint[0] = 0x13;
  hint.writeUInt32BE(info(a, b).remoteIndex!, 1);
  const hs = a.mgr.stats.handshakesInitiated;
  a.mgr.handlePacket(Buffer.from(hint), { from: 'mallory' });
  a.mgr.handlePacket(Buffer.from(hint), { from: 'mallory' });
  assert.equal(a.mgr.stats.handshakesInitiated, hs + 1, 'one re-handshake, the second hint is rate-limited');
  assert.equal(a.mgr.hasSession(addressKey(b.addr)), true, 'the session is still there');
  a.mgr.sendTo(peerOf(b), Buffer.from('still fine'));
  await until(() => texts(b.got).includes('still fine'));
  const unknown = Buffer.from([0x13, 1, 2, 3, 4]);
  a.mgr.handlePacket(unknown, {});
  assert.equal(a.mgr.stats.handshakesInitiated, hs + 1, 'hints for indexes we do not send on are ignored');
  await until(() => converged(a, b));
  p.destroy();
});

test('0x13 answers are rate-limited per source', async () => {
  const p = makePair();
  const { b } = p;
  for (let i = 0; i < 20; i++) {
    const pkt = crypto.randomBytes(60);
    pkt[0] = 0x12;
    b.mgr.handlePacket(pkt, { from: 'a' });
  }
  assert.equal(b.mgr.stats.dropUnknownIndex, 20);
  assert.equal(b.mgr.stats.hintsSent, 1);
  p.destroy();
});

test('handshake timeout: handshake-failed after handshakeTimeoutMs with retries, queue dropped', async () => {
  const p = makePair({ filter: () => null, mgr: { handshakeRetryMs: 40, handshakeTimeoutMs: 400 } });
  const { a, b } = p;
  const t0 = Date.now();
  for (let i = 0; i < 3; i++) a.mgr.sendTo(peerOf(b), Buffer.from(`q${i}`));
  assert.equal(info(a, b).handshaking, true);
  await until(() => events(a, 'handshake-failed').length === 1, 3000);
  const took = Date.now() - t0;
  assert.ok(took >= 380, `not before the timeout (${took} ms)`);
  assert.equal(a.mgr.stats.handshakeRetries, 9, 'one message 1 per retry interval');
  assert.equal(a.mgr.stats.dropNoSession, 3);
  assert.equal(info(a, b).handshaking, false);
  assert.equal(info(a, b).queued, 0);
  p.destroy();
});

test('slow path: a message 2 answering an earlier retry still completes the handshake', async () => {
  // Every packet takes 120 ms, retries every 50 ms: the first answer arrives after several retries.
  const p = makePair({ mgr: { handshakeRetryMs: 50, handshakeTimeoutMs: 2000 } });
  const { a, b } = p;
  const slow = (m: SessionManager<PairPath>, from: 'a' | 'b') => (pkt: Buffer) => setTimeout(() => m.handlePacket(pkt, { from }), 120);
  (a.mgr as unknown as { opts: { send: unknown } }).opts.send = (_k: number, pkt: Buffer) => slow(b.mgr, 'a')(Buffer.from(pkt));
  (b.mgr as unknown as { opts: { send: unknown } }).opts.send = (_k: number, pkt: Buffer) => slow(a.mgr, 'b')(Buffer.from(pkt));
  a.mgr.sendTo(peerOf(b), Buffer.from('slow'));
  await until(() => b.got.length === 1, 3000);
  assert.ok(a.mgr.stats.handshakeRetries >= 2);
  assert.equal(a.mgr.stats.handshakesFailed, 0);
  await until(() => converged(a, b), 3000);
  p.destroy();
});

test('lossy, duplicating, reordering link: no duplicates, no corruption, handshake survives loss', async () => {
  const p = makePair({ seed: 7, drop: 0.2, dup: 0.15, reorderMs: 5 });
  const { a, b } = p;
  a.mgr.sendTo(peerOf(b), Buffer.from('hs'));
  await until(() => a.mgr.hasSession(addressKey(b.addr)) && info(a, b).established, 3000);
  const sent = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const m = `p${i}:${crypto.randomBytes(8).toString('hex')}`;
    sent.add(m);
    a.mgr.sendTo(peerOf(b), Buffer.from(m));
  }
  await sleep(60);
  const got = texts(b.got).filter((m) => m !== 'hs');
  assert.equal(new Set(got).size, got.length, 'no duplicates delivered');
  for (const m of got) assert.ok(sent.has(m), `not corrupted: ${m}`);
  assert.ok(got.length > 180 && got.length <= 300, `${got.length} delivered`);
  assert.ok(b.mgr.stats.dropReplay >= 1, 'duplicates were caught by the replay window');
  p.destroy();
});

test('sendToInPlace encrypts inside the caller buffer; closeSession / hasSession / sessionInfo / destroy', async () => {
  const p = makePair();
  const { a, b } = p;
  const body = Buffer.from('zero copy');
  const pkt = Buffer.alloc(DATA_HEADER_BYTES + body.length + TAG_BYTES);
  body.copy(pkt, DATA_HEADER_BYTES);
  a.mgr.sendToInPlace(peerOf(b), pkt); // no session yet: queued as a copy
  await until(() => b.got.length === 1);
  assert.equal(String(b.got[0]), 'zero copy');
  const pkt2 = Buffer.alloc(DATA_HEADER_BYTES + 4 + TAG_BYTES);
  pkt2.write('two!', DATA_HEADER_BYTES);
  a.mgr.sendToInPlace(peerOf(b), pkt2);
  assert.equal(a.wire[a.wire.length - 1]!.equals(pkt2), true, 'the very buffer went out');
  await until(() => b.got.length === 2);

  const k = addressKey(b.addr);
  const i = a.mgr.sessionInfo(k)!;
  assert.equal(i.established, true);
  assert.equal(i.role, 'initiator');
  assert.equal(info(b, a).role, 'responder');
  assert.equal(i.remoteBootId, b.bootId.toString('hex'));
  assert.equal(a.mgr.sessionInfo(12345), undefined);
  a.mgr.closeSession(k);
  assert.equal(a.mgr.hasSession(k), false);
  assert.equal(a.mgr.sessionInfo(k), undefined);
  // b still sends on its session: a answers with a hint, b re-handshakes and it works again.
  b.mgr.sendTo(peerOf(a), Buffer.from('after close'));
  await until(() => b.mgr.stats.hintRehandshakes > 0);
  assert.equal(texts(a.got).includes('after close'), false, 'a closed session does not decrypt');
  await until(() => converged(a, b));
  b.mgr.sendTo(peerOf(a), Buffer.from('again'));
  await until(() => texts(a.got).includes('again'));
  a.mgr.destroy();
  a.mgr.sendTo(peerOf(b), Buffer.from('ignored'));
  a.mgr.handlePacket(Buffer.from([0x12]), {});
  assert.equal(a.mgr.hasSession(k), false);
  p.destroy();
});

test('listener exceptions never escape handlePacket', async () => {
  const p = makePair();
  const { a, b } = p;
  b.mgr.on('message', () => {
    throw new Error('listener bug');
  });
  a.mgr.sendTo(peerOf(b), Buffer.from('x'));
  await until(() => b.got.length === 1);
  assert.ok(b.mgr.stats.listenerErrors >= 1);
  assert.equal(b.mgr.stats.internalErrors, 0);
  p.destroy();
});

test("responder: 'session' and 'path' come before message 2 leaves, and 'peer-restarted' before them", async () => {
  let seenAtResp: string[][] = [];
  const p = makePair({
    filter: (pkt, from) => {
      if (pkt[0] === 0x11 && from === 'b') seenAtResp.push(p.b.events.map((e) => e[0]));
      return pkt;
    },
  });
  const { a } = p;
  a.mgr.sendTo(peerOf(p.b), Buffer.from('hello'));
  await until(() => p.b.got.length === 1);
  assert.equal(seenAtResp.length, 1);
  assert.deepEqual(seenAtResp[0], ['session', 'path'], 'the daemon knows the peer and its path before the answer is sent');

  // Peer a restarts and initiates: b detects it from message 1 itself.
  seenAtResp = [];
  const a2 = p.restart('a');
  const before = p.b.events.length;
  a2.mgr.sendTo(peerOf(p.b), Buffer.from('second life'));
  await until(() => texts(p.b.got).includes('second life'));
  assert.deepEqual(seenAtResp[0]!.slice(before), ['peer-restarted', 'session', 'path']);
  assert.equal(events(p.b, 'peer-restarted').length, 1);
  assert.equal(events(p.b, 'session').length, 2, "one 'session' per handshake, not another at key confirmation");
  assert.equal(p.b.mgr.sessionInfo(addressKey(a2.addr))!.remoteBootId, a2.bootId.toString('hex'));
  p.destroy();
});

test('a flood of message 1s is capped per second (dropBusy) and real handshakes work again afterwards', async () => {
  let t = 1_000_000;
  // Per-source shares and cookies (tested in test/crypto/cookie.test.ts) out of the way: this is about the global budget.
  const p = makePair({ mgr: { maxInitsPerSecond: 20, underLoadInitsPerSecond: 1000, sourceInitsPerSecond: 1000, now: () => t } });
  const { a, b } = p;
  // Without a valid mac1 junk costs one hash and no budget.
  for (let i = 0; i < 100; i++) {
    const junk = crypto.randomBytes(5 + MSG1_BYTES + 32);
    junk[0] = 0x10;
    b.mgr.handlePacket(junk, { from: 'flood' });
  }
  assert.equal(b.mgr.stats.dropMac1, 100);
  assert.equal(b.mgr.stats.dropAuth + b.mgr.stats.dropBusy, 0);
  // Right length, junk content, valid mac1 (b's key is public): each costs a Noise read until the budget is spent.
  for (let i = 0; i < 100; i++) {
    const junk = crypto.randomBytes(5 + MSG1_BYTES + 32);
    junk[0] = 0x10;
    stampMacs(junk, responderKeys(b.id.publicKey), undefined);
    b.mgr.handlePacket(junk, { from: 'flood' });
  }
  assert.equal(b.mgr.stats.dropAuth, 20);
  assert.equal(b.mgr.stats.dropBusy, 80);
  t += 1000; // next second: a fresh budget
  a.mgr.sendTo(peerOf(b), Buffer.from('still works'));
  await until(() => b.got.length === 1);
  assert.equal(String(b.got[0]), 'still works');
  p.destroy();
});

test('message 1 replay memory is bounded: past maxHelloKeys the key heard from longest ago is forgotten, recent keys stay protected', async () => {
  const b = { id: generateIdentity(), addr: { network: 0, node: 100 } };
  const initiators: SessionManager<string>[] = [];
  const byKey = new Map<number, SessionManager<string>>();
  const wire: Buffer[][] = [];
  const responder: SessionManager<number> = new SessionManager<number>({
    identity: b.id,
    localAddress: b.addr,
    bootId: crypto.randomBytes(8),
    maxHelloKeys: 3,
    send: (peerKey, pkt) => setImmediate(() => byKey.get(peerKey)?.handlePacket(Buffer.from(pkt), 'b')),
  });
  let established = 0;
  responder.on('session', () => established++);
  for (let i = 0; i < 8; i++) {
    const sent: Buffer[] = [];
    wire.push(sent);
    const addr = { network: 0, node: 200 + i };
    initiators.push(
      new SessionManager<string>({
        identity: generateIdentity(),
        localAddress: addr,
        bootId: crypto.randomBytes(8),
        send: (_peer, pkt) => {
          sent.push(Buffer.from(pkt));
          setImmediate(() => responder.handlePacket(Buffer.from(pkt), i));
        },
        sendRaw: (pkt) => setImmediate(() => responder.handlePacket(Buffer.from(pkt), i)),
      }),
    );
    byKey.set(addressKey(addr), initiators[i]!);
    initiators[i]!.sendTo({ address: b.addr, publicKey: b.id.publicKey }, Buffer.from('hi'));
    await until(() => established === i + 1);
    assert.ok(responder.rememberedHelloKeys <= 3, `remembered ${responder.rememberedHelloKeys} keys`);
  }
  // The newest initiator's message 1, replayed: still refused.
  const init = wire[7]!.find((x) => x[0] === 0x10)!;
  const stale = responder.stats.dropStaleHandshake;
  responder.handlePacket(Buffer.from(init), 7);
  await sleep(20);
  assert.equal(responder.stats.dropStaleHandshake, stale + 1);
  for (const m of initiators) m.destroy();
  responder.destroy();
});
