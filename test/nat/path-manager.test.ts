// The path state machine on a controlled clock (the real thing runs in the NAT lab tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PathManager, BIRTHDAY_PORTS, KEEPALIVE_MS } from '../../src/nat/path-manager.ts';
import { Inner, encodeCandidates } from '../../src/nat/inner.ts';
import type { NatType } from '../../src/nat/nat-type.ts';
import type { Path } from '../../src/nat/path.ts';

function rig(nat: NatType = 'eim') {
  let now = 1_000_000;
  const sent: Array<{ msg: Buffer; path: Path }> = [];
  const changes: Array<{ path: Path | undefined; reason: string }> = [];
  let sprayOpened = 0;
  const pm = new PathManager({
    now: () => now,
    sendVia: (_k, msg, path) => {
      sent.push({ msg: Buffer.from(msg), path });
      return true;
    },
    local: () => ({ eps: ['198.51.100.11:4000', '10.1.0.2:4000'], nat }),
    openSprayPorts: (n) => {
      sprayOpened += n;
      return Array.from({ length: n }, (_, i) => i + 1);
    },
    releaseSprayPorts: () => {},
    mayPunch: () => true,
  });
  pm.on('change', (_k, path, reason) => changes.push({ path, reason }));
  return {
    pm,
    sent,
    changes,
    advance(ms: number) {
      for (let t = 0; t < ms; t += 100) {
        now += 100;
        pm.tick();
      }
    },
    get now() {
      return now;
    },
    get sprayOpened() {
      return sprayOpened;
    },
  };
}

const PEER = 7;
/** The peer answers our last probe, if that was one: the reply authenticates on `d` and carries its nonce. */
function answer(r: ReturnType<typeof rig>, d: Path): void {
  const last = r.sent.at(-1);
  r.pm.onAuthenticated(PEER, d);
  if (last?.msg[0] === Inner.Probe) r.pm.onInner(PEER, Buffer.concat([Buffer.from([Inner.ProbeReply]), last.msg.subarray(1)]), d);
}
const probesTo = (sent: Array<{ msg: Buffer; path: Path }>, host: string) =>
  sent.filter((s) => s.msg[0] === Inner.Probe && s.path.kind === 'direct' && s.path.host === host);

test('relay first, candidates swapped, probe rounds, then direct in place', () => {
  const r = rig();
  r.pm.setRegistryCandidates(PEER, [{ host: '198.51.100.12', port: 5000 }]);
  r.pm.onAuthenticated(PEER, { kind: 'relay' });
  assert.deepEqual(r.changes.at(-1), { path: { kind: 'relay' }, reason: 'relay' });
  r.pm.onSession(PEER);
  assert.equal(r.sent[0]!.msg[0], Inner.Candidates);
  assert.deepEqual(r.sent[0]!.path, { kind: 'relay' });
  r.advance(1000);
  // rounds at 0, 100, 200 (+100), 400, 800 ms: several probes to the candidate
  const n = probesTo(r.sent, '198.51.100.12').length;
  assert.ok(n >= 4 && n <= 6, `probes in the first second: ${n}`);
  r.pm.onAuthenticated(PEER, { kind: 'direct', host: '198.51.100.12', port: 5000 });
  assert.equal(r.changes.at(-1)!.reason, 'upgraded to direct');
  const before = r.sent.length;
  r.advance(2000);
  assert.equal(probesTo(r.sent.slice(before), '198.51.100.12').length, 0, 'no punching once direct');
});

test("the peer's candidates message adds endpoints, asks for ours back, and restarts rounds", () => {
  const r = rig();
  r.pm.onAuthenticated(PEER, { kind: 'relay' });
  r.pm.onSession(PEER);
  r.advance(5000);
  const msg = encodeCandidates({ eps: ['203.0.113.9:7000'], nat: 'eim', reply: true });
  const before = r.sent.length;
  r.pm.onInner(PEER, msg, { kind: 'relay' });
  r.advance(100);
  // answered at the next tick (coalesced, src/nat/candidate-sync.ts)
  assert.ok(
    r.sent.slice(before).some((s) => s.msg[0] === Inner.Candidates),
    'answered with our candidates',
  );
  assert.ok(probesTo(r.sent, '203.0.113.9').length >= 1);
});

test('a probe is answered on the path it came in on', () => {
  const r = rig();
  const path: Path = { kind: 'direct', host: '198.51.100.12', port: 5000, sock: 3 };
  r.pm.onInner(PEER, Buffer.from([Inner.Probe, 1, 2, 3, 4, 5, 6, 7, 8]), path);
  assert.equal(r.sent.at(-1)!.msg[0], Inner.ProbeReply);
  assert.deepEqual(r.sent.at(-1)!.path, path);
  // malformed: ignored
  const n = r.sent.length;
  r.pm.onInner(PEER, Buffer.from([Inner.Probe, 1]), path);
  r.pm.onInner(PEER, Buffer.from([0x7f, 1, 2]), path);
  assert.equal(r.sent.length, n);
});

test('a direct path that stops answering falls back to the relay within seconds; NAT rebinding moves it', () => {
  const r = rig();
  const d: Path = { kind: 'direct', host: '198.51.100.12', port: 5000 };
  r.pm.onSession(PEER);
  r.pm.onAuthenticated(PEER, d);
  const t0 = r.now;
  // we keep sending, nothing comes back
  for (let i = 0; i < 40 && r.changes.at(-1)!.path?.kind === 'direct'; i++) {
    r.pm.noteSent(PEER);
    r.advance(100);
  }
  assert.deepEqual(r.changes.at(-1)!.path, { kind: 'relay' });
  assert.ok(r.now - t0 <= 3000, `detected after ${r.now - t0} ms`);
  // the peer shows up from a new mapping: moved there at once
  r.pm.onAuthenticated(PEER, { kind: 'direct', host: '198.51.100.21', port: 5000 });
  assert.equal(r.changes.at(-1)!.reason, 'upgraded to direct');
  r.pm.onAuthenticated(PEER, { kind: 'direct', host: '198.51.100.22', port: 6000 });
  assert.equal(r.changes.at(-1)!.reason, 'peer moved');
});

test('an idle direct path gets keepalive probes, and stays up while they are answered', () => {
  const r = rig();
  const d: Path = { kind: 'direct', host: '198.51.100.12', port: 5000 };
  r.pm.onSession(PEER);
  r.pm.onAuthenticated(PEER, d);
  const before = r.sent.length;
  for (let t = 0; t < 3 * KEEPALIVE_MS + 500; t += 100) {
    r.advance(100);
    const last = r.sent.at(-1)!;
    if (r.sent.length > before && last.msg[0] === Inner.Probe) answer(r, d); // the peer answers
  }
  const keepalives = probesTo(r.sent.slice(before), '198.51.100.12').length;
  assert.ok(keepalives >= 2 && keepalives <= 4, `keepalives: ${keepalives}`);
  assert.equal(r.changes.at(-1)!.path?.kind, 'direct');
});

test('an idle path whose NAT mapping lapsed is down within ~1 s of its keepalive, and keepalives come sooner from then on (issue 19)', () => {
  const r = rig();
  const d: Path = { kind: 'direct', host: '198.51.100.12', port: 5000 };
  r.pm.onSession(PEER);
  r.pm.onAuthenticated(PEER, d);
  for (let t = 0; t < 2_000; t += 100) {
    r.advance(100);
    if (r.sent.at(-1)!.msg[0] === Inner.Probe) answer(r, d); // answered while the mapping lives
  }
  r.pm.onAuthenticated(PEER, d);
  const t0 = r.now;
  const sentBefore = r.sent.length;
  // The peer answers nothing any more (the mapping lapsed): 'peers' must not keep saying direct.
  let downAt = 0;
  while (r.now - t0 < 3 * KEEPALIVE_MS && downAt === 0) {
    r.advance(100);
    if (r.pm.current(PEER)?.kind === 'relay') downAt = r.now - t0;
  }
  assert.ok(downAt > 0 && downAt <= KEEPALIVE_MS + 1_300, `down ${downAt} ms after the last answer (keepalive at ${KEEPALIVE_MS} ms)`);
  assert.match(r.changes.at(-1)!.reason, /stopped answering \(idle; keepalive now every \d+ ms\)/);
  const checks = probesTo(r.sent.slice(sentBefore), '198.51.100.12').length;
  assert.ok(checks >= 2 && checks <= 4, `one lost packet is not a dead path: the check was resent (${checks} probes)`);
  const every = r.pm.tuner.interval(PEER);
  assert.ok(every >= 2_000 && every <= KEEPALIVE_MS / 2, `at most half the idle time that lapsed: ${every} ms`);
  // Direct again (punching found it): keepalives now every 5 s, each answered.
  r.pm.onAuthenticated(PEER, d);
  const before = r.sent.length;
  for (let t = 0; t < 20_000; t += 100) {
    r.advance(100);
    if (r.sent.length > before && r.sent.at(-1)!.msg[0] === Inner.Probe) answer(r, d);
  }
  const n = probesTo(r.sent.slice(before), '198.51.100.12').length;
  assert.ok(n >= Math.floor(20_000 / every) - 1 && n <= Math.ceil(20_000 / (0.75 * every)), `keepalives in 20 s at ${every} ms (less a random quarter): ${n}`);
  assert.equal(r.pm.current(PEER)?.kind, 'direct');
});

test("a peer's keepalives make ours wait (one side keeps the path); a keepalive whose first probe went unanswered is a lapse, even if the path works (issue 19)", () => {
  const r = rig();
  const d: Path = { kind: 'direct', host: '198.51.100.12', port: 5000 };
  r.pm.onSession(PEER);
  r.pm.onAuthenticated(PEER, d);
  r.advance(200);
  answer(r, d); // whatever went out first is answered
  const before = r.sent.length;
  // The peer probes us every 4 s and we answer: we send no keepalive of our own in 30 s.
  for (let i = 0; i < 8; i++) {
    r.advance(4_000);
    r.pm.onAuthenticated(PEER, d);
    r.pm.onInner(PEER, Buffer.from([Inner.Probe, 1, 2, 3, 4, 5, 6, 7, 8]), d);
  }
  const ours = r.sent.slice(before);
  assert.equal(ours.filter((s) => s.msg[0] === Inner.Probe).length, 0, 'no keepalive of ours');
  assert.equal(ours.filter((s) => s.msg[0] === Inner.ProbeReply).length, 8, 'every one of theirs answered');
  assert.equal(r.pm.tuner.shortest(), 4_000, 'their short cadence hints our rendezvous keepalive');
  assert.equal(r.pm.tuner.interval(PEER), KEEPALIVE_MS);

  // Silence: our keepalive goes out and gets no reply; the peer's own keepalive crosses it 100 ms
  // later and gets through (the mapping ours opened), so the path works again at once, but the
  // first probe was lost: the mapping had lapsed.
  const t0 = r.now;
  while (r.sent.at(-1)!.msg[0] !== Inner.Probe) r.advance(100);
  const idle = r.now - t0;
  r.advance(100);
  r.pm.onAuthenticated(PEER, d);
  r.pm.onInner(PEER, Buffer.from([Inner.Probe, 8, 7, 6, 5, 4, 3, 2, 1]), d);
  answer(r, d); // our resends are answered from now on
  r.advance(1_000);
  assert.equal(r.pm.current(PEER)?.kind, 'direct', 'the path works');
  const every = r.pm.tuner.interval(PEER);
  assert.ok(every < KEEPALIVE_MS && every <= idle / 2 + 100, `learned from the unanswered first probe: ${every} ms (idle ${idle} ms)`);

  // A healthy keepalive (its own reply within the RTT) teaches nothing.
  while (r.sent.at(-1)!.msg[0] !== Inner.Probe || r.sent.at(-1)!.path.kind !== 'direct') r.advance(100);
  answer(r, d);
  r.advance(1_000);
  assert.equal(r.pm.tuner.interval(PEER), every);
});

test('birthday probing: symmetric side opens many ports, cone side probes random ports, bounded; never sym x sym', () => {
  const sym = rig('edm');
  sym.pm.setRegistryCandidates(PEER, [{ host: '198.51.100.12', port: 5000 }]);
  sym.pm.onAuthenticated(PEER, { kind: 'relay' });
  sym.pm.onSession(PEER);
  sym.pm.onInner(PEER, encodeCandidates({ eps: ['198.51.100.12:5000'], nat: 'eim', reply: false }), { kind: 'relay' });
  sym.advance(200);
  assert.equal(sym.sprayOpened, BIRTHDAY_PORTS);
  assert.ok(sym.sent.filter((s) => s.path.kind === 'direct' && s.path.sock !== undefined).length >= BIRTHDAY_PORTS);

  const cone = rig('eim');
  // birthday aims at the endpoint the rendezvous observed for the peer (its NAT's public address)
  cone.pm.setRegistryCandidates(PEER, [{ host: '198.51.100.13', port: 6000 }]);
  cone.pm.onAuthenticated(PEER, { kind: 'relay' });
  cone.pm.onSession(PEER);
  cone.pm.onInner(PEER, encodeCandidates({ eps: ['198.51.100.13:6000', '10.3.0.2:6000'], nat: 'edm', reply: false }), { kind: 'relay' });
  cone.advance(5000);
  const random = probesTo(cone.sent, '198.51.100.13').length;
  assert.ok(random > 1000 && random < 2000, `random-port probes: ${random}`);
  assert.equal(probesTo(cone.sent, '10.3.0.2').length < 20, true, 'LAN candidates get plain rounds only');
  const ports = new Set(probesTo(cone.sent, '198.51.100.13').map((s) => (s.path as { port: number }).port));
  assert.ok(ports.size > 900, 'probes spread over many ports');

  const both = rig('edm');
  both.pm.onAuthenticated(PEER, { kind: 'relay' });
  both.pm.onSession(PEER);
  both.pm.onInner(PEER, encodeCandidates({ eps: ['198.51.100.13:6000'], nat: 'edm', reply: false }), { kind: 'relay' });
  both.advance(5000);
  assert.equal(both.sprayOpened, 0);
  assert.ok(probesTo(both.sent, '198.51.100.13').length < 20);
});
