// Dual-stack paths: a live IPv6 direct path is kept when IPv4 replies of the same
// punching round arrive after it (both race), and given up for IPv4 once quiet.
import { test } from 'node:test';
import net from 'node:net';
import assert from 'node:assert/strict';
import { PathManager } from '../../src/nat/path-manager.ts';
import { Inner, encodeCandidates } from '../../src/nat/inner.ts';
import { holdIpv6, V6_HOLD_MS } from '../../src/nat/family-preference.ts';
import type { Path } from '../../src/nat/path.ts';

function rig() {
  let now = 1_000_000;
  const sent: Array<{ msg: Buffer; path: Path }> = [];
  const pm = new PathManager({
    now: () => now,
    sendVia: (_k, msg, path) => {
      sent.push({ msg: Buffer.from(msg), path });
      return true;
    },
    local: () => ({ eps: ['[2001:db8:1::10]:4000', '198.51.100.11:4000'], nat: 'eim' }),
    openSprayPorts: () => [],
    releaseSprayPorts: () => {},
    mayPunch: () => true,
  });
  return {
    pm,
    sent,
    advance(ms: number) {
      for (let t = 0; t < ms; t += 100) {
        now += 100;
        pm.tick();
      }
    },
  };
}

const PEER = 3;
const V6: Path = { kind: 'direct', host: '2001:db8:2::10', port: 5000 };
const V4: Path = { kind: 'direct', host: '198.51.100.12', port: 6000 };

test('IPv6 and IPv4 candidates are both probed; the IPv6 path is kept against later IPv4 packets', () => {
  const r = rig();
  r.pm.onAuthenticated(PEER, { kind: 'relay' });
  r.pm.onSession(PEER);
  r.pm.onInner(PEER, encodeCandidates({ eps: ['[2001:db8:2::10]:5000', '198.51.100.12:6000'], nat: 'eim', reply: false }), { kind: 'relay' });
  r.advance(200);
  const probed = new Set(r.sent.filter((s) => s.msg[0] === Inner.Probe && s.path.kind === 'direct').map((s) => (s.path as { host: string }).host));
  assert.deepEqual([...probed].sort(), ['198.51.100.12', '2001:db8:2::10']);
  r.pm.onAuthenticated(PEER, V6);
  r.pm.onAuthenticated(PEER, V4); // the IPv4 reply of the same round, a moment later
  assert.deepEqual(r.pm.current(PEER), V6, 'IPv6 held');
  // IPv4 first, then IPv6: moves up to IPv6.
  const s = rig();
  s.pm.onAuthenticated(PEER, { kind: 'relay' });
  s.pm.onSession(PEER);
  s.pm.onAuthenticated(PEER, V4);
  s.pm.onAuthenticated(PEER, V6);
  assert.deepEqual(s.pm.current(PEER), V6);
});

test('an IPv6 path that went quiet gives way to IPv4 at once', () => {
  const r = rig();
  r.pm.onAuthenticated(PEER, { kind: 'relay' });
  r.pm.onSession(PEER);
  r.pm.onAuthenticated(PEER, V6);
  r.advance(V6_HOLD_MS + 100);
  r.pm.onAuthenticated(PEER, V4);
  assert.deepEqual(r.pm.current(PEER), V4);
});

test('holdIpv6 only ever holds a direct IPv6 path against a direct IPv4 one', () => {
  assert.equal(holdIpv6(V6, V4, 0), true);
  assert.equal(holdIpv6(V6, V4, V6_HOLD_MS), false);
  assert.equal(holdIpv6(V4, V6, 0), false);
  assert.equal(holdIpv6(V6, { ...V6, port: 5001 }, 0), false, 'the peer moved within IPv6: follow it');
  assert.equal(holdIpv6({ kind: 'relay' }, V4, 0), false);
  assert.equal(holdIpv6(undefined, V4, 0), false);
});

test('holdIpv6 on IPv4 paths (every packet of an IPv4 transfer) runs no IPv6 regular expression', (t) => {
  let calls = 0;
  const isIPv6 = net.isIPv6;
  net.isIPv6 = (h: string) => (calls++, isIPv6(h));
  t.after(() => {
    net.isIPv6 = isIPv6;
  });
  const v4: Path = { kind: 'direct', host: '198.51.100.7', port: 4000 };
  const v4b: Path = { kind: 'direct', host: '198.51.100.8', port: 4000 };
  const v6: Path = { kind: 'direct', host: '2001:db8::7', port: 4000 };
  assert.equal(holdIpv6(v4, v4b, 0), false);
  assert.equal(holdIpv6(v4, v4, 0), false);
  assert.equal(calls, 0);
  // The answers with IPv6 on either side are unchanged.
  assert.equal(holdIpv6(v6, v4, 0), true);
  assert.equal(holdIpv6(v6, v4, V6_HOLD_MS), false);
  assert.equal(holdIpv6(v6, { kind: 'direct', host: '2001:db8::8', port: 1 }, 0), false);
  assert.equal(holdIpv6(v4, v6, 0), false);
});
