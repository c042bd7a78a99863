// Issue 19, roaming back to direct: our candidates go by a path that works (the
// relay, and the direct path if any) and go again whenever the path state
// changes, on both sides. The PathManager on a controlled clock; the real thing
// (a host moving between NATs 10 times) is test/nat/roaming-direct.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PathManager } from '../../src/nat/path-manager.ts';
import { CandidateSync, REPLY_GAP_MS, sameEndpoints } from '../../src/nat/candidate-sync.ts';
import { Inner, decodeCandidates, encodeCandidates } from '../../src/nat/inner.ts';
import type { Path } from '../../src/nat/path.ts';

const PEER = 7;
const D: Path = { kind: 'direct', host: '198.51.100.12', port: 5000 };

function rig() {
  let now = 1_000_000;
  let eps = ['198.51.100.66:4000', '10.2.0.50:4000'];
  const sent: Array<{ msg: Buffer; path: Path; at: number }> = [];
  const changes: Array<{ path: Path | undefined; reason: string }> = [];
  let lost = 0;
  const pm = new PathManager({
    now: () => now,
    sendVia: (_k, msg, path) => {
      sent.push({ msg: Buffer.from(msg), path, at: now });
      return true;
    },
    local: () => ({ eps, nat: 'eim' }),
    openSprayPorts: () => [],
    releaseSprayPorts: () => {},
    mayPunch: () => true,
    pathLost: () => lost++,
  });
  pm.on('change', (_k, path, reason) => changes.push({ path, reason }));
  return {
    pm,
    sent,
    changes,
    setEps(e: string[]) {
      eps = e;
    },
    advance(ms: number, sending = false) {
      for (let t = 0; t < ms; t += 100) {
        now += 100;
        if (sending) pm.noteSent(PEER);
        pm.tick();
      }
    },
    get now() {
      return now;
    },
    get lost() {
      return lost;
    },
  };
}

const candidatesIn = (sent: Array<{ msg: Buffer; path: Path }>) =>
  sent.filter((s) => s.msg[0] === Inner.Candidates).map((s) => ({ path: s.path, ...decodeCandidates(s.msg.subarray(1)) }));

/** A pair that went direct and has swapped candidates. */
function direct() {
  const r = rig();
  r.pm.onSession(PEER);
  r.pm.onAuthenticated(PEER, D);
  r.pm.onInner(PEER, encodeCandidates({ eps: ['198.51.100.12:5000'], nat: 'eim', reply: false }), D);
  r.advance(500);
  return r;
}

test('our network changes while direct: candidates go by the relay too (the direct path may be dead), asking for the peer back', () => {
  const r = direct();
  const before = r.sent.length;
  r.setEps(['198.51.100.67:4000', '10.3.0.50:4000']);
  r.pm.localChanged();
  r.advance(100);
  const c = candidatesIn(r.sent.slice(before));
  assert.ok(
    c.some((x) => x.path.kind === 'relay'),
    `candidates went by the relay: ${JSON.stringify(c.map((x) => x.path))}`,
  );
  assert.ok(c.some((x) => x.path.kind === 'direct'));
  assert.ok(
    c.every((x) => x.reply && x.eps[0] === '198.51.100.67:4000'),
    'the new endpoints, and a request for the peer to answer with its own',
  );
  // and the direct path is checked at once: unanswered, the relay within about a second, not 2.5 s
  const t0 = r.now;
  while (r.changes.at(-1)!.path?.kind === 'direct' && r.now - t0 < 5000) r.advance(100);
  assert.ok(r.now - t0 <= 1500, `fell back after ${r.now - t0} ms`);
});

test('a direct path that dies: candidates again by the relay (both sides re-swap), and the network is re-checked', () => {
  const r = direct();
  const before = r.sent.length;
  const t0 = r.now;
  while (r.changes.at(-1)!.path?.kind === 'direct' && r.now - t0 < 5000) r.advance(100, true);
  assert.deepEqual(r.changes.at(-1)!.path, { kind: 'relay' });
  r.advance(100);
  const c = candidatesIn(r.sent.slice(before));
  assert.equal(c.length, 1, `one candidates message after the fall back: ${JSON.stringify(c)}`);
  assert.deepEqual(c[0]!.path, { kind: 'relay' });
  assert.equal(c[0]!.reply, true);
  assert.equal(r.lost, 1, 'the host was told to re-check its network');
});

test("the peer's candidates change while we are direct: probe its new endpoints now and check the old path", () => {
  const r = direct();
  const before = r.sent.length;
  r.pm.onInner(PEER, encodeCandidates({ eps: ['198.51.100.68:5000'], nat: 'eim', reply: true }), { kind: 'relay' });
  const probes = r.sent.slice(before).filter((s) => s.msg[0] === Inner.Probe);
  assert.ok(
    probes.some((s) => s.path.kind === 'direct' && s.path.host === '198.51.100.68'),
    'the new endpoint probed at once',
  );
  assert.ok(
    probes.some((s) => s.path.kind === 'direct' && s.path.host === '198.51.100.12'),
    'the old path checked',
  );
  // its probe reply from the new endpoint moves the path there
  r.pm.onAuthenticated(PEER, { kind: 'direct', host: '198.51.100.68', port: 5000 });
  assert.equal(r.changes.at(-1)!.reason, 'peer moved');
  // unchanged candidates (a mere re-send) do not disturb a working path
  const n = r.sent.length;
  r.pm.onInner(PEER, encodeCandidates({ eps: ['198.51.100.68:5000'], nat: 'eim', reply: false }), { kind: 'relay' });
  assert.equal(r.sent.length, n);
});

test('a request for our candidates that arrives twice (relay and direct) is answered once', () => {
  const r = direct();
  const before = r.sent.length;
  const m = encodeCandidates({ eps: ['198.51.100.12:5000'], nat: 'eim', reply: true });
  r.pm.onInner(PEER, m, { kind: 'relay' });
  r.pm.onInner(PEER, m, D);
  r.advance(REPLY_GAP_MS + 100);
  const c = candidatesIn(r.sent.slice(before));
  assert.equal(c.length, 2, 'one answer, by the relay and the direct path');
  assert.ok(
    c.every((x) => !x.reply),
    'an answer asks for nothing back (no ping-pong)',
  );
});

test('CandidateSync: coalesced sends, rate-limited answers, relay always first', () => {
  const s = new CandidateSync();
  assert.equal(s.take(1), undefined);
  s.schedule(1, false);
  s.schedule(1, true);
  assert.deepEqual(s.take(1), { reply: true });
  assert.equal(s.take(1), undefined);
  s.answer(1, 0);
  s.answer(1, REPLY_GAP_MS - 1);
  assert.deepEqual(s.take(1), { reply: false });
  assert.equal(s.take(1), undefined);
  s.answer(1, REPLY_GAP_MS);
  assert.deepEqual(s.take(1), { reply: false });
  assert.deepEqual(CandidateSync.paths(undefined), [{ kind: 'relay' }]);
  assert.deepEqual(CandidateSync.paths(D), [{ kind: 'relay' }, D]);
  assert.ok(
    sameEndpoints(
      [
        { host: 'a', port: 1 },
        { host: 'b', port: 2 },
      ],
      [
        { host: 'b', port: 2 },
        { host: 'a', port: 1 },
      ],
    ),
  );
  assert.ok(!sameEndpoints([{ host: 'a', port: 1 }], [{ host: 'a', port: 2 }]));
});
