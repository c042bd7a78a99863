// The path manager on a fake clock: a peer's candidates must not turn us into
// a cannon (issue 15, hole 3). Punching only for trusted peers, LAN candidates
// only on our subnets, birthday only at the rendezvous-observed address, and
// probe bytes capped per peer and in total.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PathManager, type PathOptions } from '../../src/nat/path-manager.ts';
import { PROBE_WIRE_BYTES, PROBE_WINDOW_MS } from '../../src/nat/probe-budget.ts';
import { Inner, encodeCandidates } from '../../src/nat/inner.ts';
import type { NatType } from '../../src/nat/nat-type.ts';
import type { Path } from '../../src/nat/path.ts';

const VICTIM = '203.0.113.99';

function rig(o: { nat?: NatType; trusted?: Set<number>; opts?: PathOptions } = {}) {
  let now = 1_000_000;
  const trusted = o.trusted ?? new Set<number>();
  const sent: Array<{ key: number; msg: Buffer; path: Path }> = [];
  let sprayOpened = 0;
  const pm = new PathManager(
    {
      now: () => now,
      sendVia: (key, msg, path) => {
        sent.push({ key, msg: Buffer.from(msg), path });
        return true;
      },
      local: () => ({ eps: ['198.51.100.11:4000'], nat: o.nat ?? 'none' }),
      openSprayPorts: (n) => {
        sprayOpened += n;
        return Array.from({ length: n }, (_, i) => i + 1);
      },
      releaseSprayPorts: () => {},
      mayPunch: (key) => trusted.has(key),
      probeable: (host) => host.startsWith('10.1.0.'), // "our" LAN is 10.1.0.0/24
    },
    o.opts,
  );
  return {
    pm,
    sent,
    trusted,
    advance(ms: number) {
      for (let t = 0; t < ms; t += 100) {
        now += 100;
        pm.tick();
      }
    },
    get sprayOpened() {
      return sprayOpened;
    },
  };
}

const probes = (sent: Array<{ msg: Buffer; path: Path }>, host?: string) =>
  sent.filter((s) => s.msg[0] === Inner.Probe && s.path.kind === 'direct' && (host === undefined || s.path.host === host));

test('an untrusted peer announcing a victim with nat edm gets nothing probed, no birthday, no candidates back', () => {
  const r = rig({ nat: 'none' });
  const ATTACKER = 9;
  // the registry lists the attacker's observed endpoint first, then the LAN endpoints it claims
  r.pm.setRegistryCandidates(ATTACKER, [
    { host: '198.51.100.66', port: 4000 },
    { host: VICTIM, port: 53 },
  ]);
  r.pm.onAuthenticated(ATTACKER, { kind: 'relay' });
  r.pm.onSession(ATTACKER);
  r.pm.onInner(ATTACKER, encodeCandidates({ eps: [`${VICTIM}:53`, `${VICTIM}:123`, '10.1.0.7:9'], nat: 'edm', reply: true }), { kind: 'relay' });
  r.advance(35_000);
  assert.equal(probes(r.sent).length, 0, 'no probes at all');
  assert.equal(r.sent.filter((s) => s.msg[0] === Inner.Candidates).length, 0, 'no candidates sent to an untrusted peer');
  assert.equal(r.sprayOpened, 0);
  assert.deepEqual(r.pm.handshakeTargets(ATTACKER, 'resp'), [], 'our answers to its handshakes go nowhere extra');
  assert.deepEqual(r.pm.handshakeTargets(ATTACKER, 'init'), [{ host: '198.51.100.66', port: 4000 }], 'our own handshake: the observed endpoint only');
  assert.equal(r.pm.counters.birthdayAttempts, 0);
});

test('once the peer becomes trusted, candidates are swapped and punching starts', () => {
  const r = rig();
  const P = 3;
  r.pm.setRegistryCandidates(P, [{ host: '198.51.100.12', port: 5000 }]);
  r.pm.onAuthenticated(P, { kind: 'relay' });
  r.pm.onSession(P);
  r.advance(1000);
  assert.equal(probes(r.sent).length, 0);
  r.trusted.add(P);
  r.advance(1000);
  assert.equal(r.sent.filter((s) => s.msg[0] === Inner.Candidates).length, 1);
  assert.ok(probes(r.sent, '198.51.100.12').length >= 3);
});

test('LAN candidates are probed only on a subnet we are attached to', () => {
  const P = 3;
  const r = rig({ trusted: new Set([P]) });
  r.pm.onAuthenticated(P, { kind: 'relay' });
  r.pm.onSession(P);
  r.pm.onInner(P, encodeCandidates({ eps: ['10.1.0.20:4000', '10.9.0.20:4000', '192.168.1.1:80', '127.0.0.1:22'], nat: 'eim', reply: false }), {
    kind: 'relay',
  });
  r.advance(2000);
  assert.ok(probes(r.sent, '10.1.0.20').length >= 3, 'our subnet: probed');
  for (const h of ['10.9.0.20', '192.168.1.1', '127.0.0.1']) assert.equal(probes(r.sent, h).length, 0, `${h} is not ours`);
});

test('birthday goes only at the rendezvous-observed address, never at what CANDIDATES claims', () => {
  const P = 3;
  const r = rig({ nat: 'eim', trusted: new Set([P]) });
  r.pm.setRegistryCandidates(P, [{ host: '198.51.100.13', port: 6000 }]);
  r.pm.onAuthenticated(P, { kind: 'relay' });
  r.pm.onSession(P);
  r.pm.onInner(P, encodeCandidates({ eps: [`${VICTIM}:53`], nat: 'edm', reply: false }), { kind: 'relay' });
  r.advance(5000);
  assert.ok(probes(r.sent, '198.51.100.13').length > 1000, 'birthday at the observed address');
  assert.ok(probes(r.sent, VICTIM).length < 20, `claimed address: plain rounds only (${probes(r.sent, VICTIM).length})`);

  // No observed address from the registry: no birthday at all.
  const q = rig({ nat: 'eim', trusted: new Set([P]) });
  q.pm.onAuthenticated(P, { kind: 'relay' });
  q.pm.onSession(P);
  q.pm.onInner(P, encodeCandidates({ eps: [`${VICTIM}:53`], nat: 'edm', reply: false }), { kind: 'relay' });
  q.advance(5000);
  assert.equal(q.pm.counters.birthdayAttempts, 0);
  assert.ok(probes(q.sent, VICTIM).length < 20);
});

test('probe bytes are capped per peer and in total (token buckets over 30 s)', () => {
  const peerBudget = 20_000;
  const totalBudget = 60_000;
  const keys = Array.from({ length: 10 }, (_, i) => 100 + i);
  const r = rig({ nat: 'eim', trusted: new Set(keys), opts: { probeBudgetPeer: peerBudget, probeBudgetTotal: totalBudget } });
  for (const k of keys) {
    r.pm.setRegistryCandidates(k, [{ host: `198.51.100.${k}`, port: 6000 }]);
    r.pm.onAuthenticated(k, { kind: 'relay' });
    r.pm.onSession(k);
    r.pm.onInner(k, encodeCandidates({ eps: [`198.51.100.${k}:6000`], nat: 'edm', reply: false }), { kind: 'relay' });
  }
  r.advance(10_000);
  const bytes = (k?: number) => probes(r.sent.filter((s) => k === undefined || s.key === k)).length * PROBE_WIRE_BYTES;
  // within 10 s: at most the bucket plus a third of its refill
  const slack = (b: number) => b + (b * 10_000) / PROBE_WINDOW_MS;
  for (const k of keys) assert.ok(bytes(k) <= slack(peerBudget), `peer ${k}: ${bytes(k)} bytes`);
  assert.ok(bytes() <= slack(totalBudget), `total: ${bytes()} bytes`);
  assert.ok(r.pm.counters.probesDenied > 0, 'the budget did refuse probes');
  // and the budget is really the limit: without it, one birthday attempt alone is ~1536 probes per peer
  assert.ok(bytes() >= totalBudget * 0.9, `the total budget is used: ${bytes()}`);
});
