// IPv6 in the NAT lab (real netfilter/ip6tables and a real NAT64, tayga), the
// pairs of test/nat/ipv6-lab.ts:
// - dual-stack pairs go direct over IPv6 through two stateful IPv6 home-router
//   firewalls: cone x cone (IPv4 direct would work too: IPv6 is preferred) and
//   symmetric x symmetric (IPv4 alone can only relay); one agent reaches the
//   rendezvous at its IPv6 address over UDP (before, its IPv4-only socket could
//   not, and it fell back to TCP);
// - an IPv6-only agent behind NAT64 reaches the IPv4-only rendezvous by name
//   (DNS64 in /etc/netns/<ns>/hosts), learns the NAT64 prefix (RFC 7050), and
//   streams to / pings an IPv4-only agent, direct through the NAT64.
// Proof of "direct" is both the daemons' `peers` and the routers' own counters.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { natLabSupport } from '../helpers/natlab.ts';
import { nat64Support, v6LabSupport } from '../helpers/natlab-v6.ts';
import { runIpv6Lab, wants, type V6LabRun, type V6PairResult } from './ipv6-lab.ts';

const support = natLabSupport();
const v6 = v6LabSupport();
const n64 = nat64Support();
const skip = !support.ok ? support.reason : !v6.ok ? v6.reason : !n64.ok ? n64.reason : false;

describe('IPv6 and NAT64 in the NAT lab', { skip, timeout: 240_000 }, () => {
  let m: V6LabRun;
  before(async () => {
    m = await runIpv6Lab({ log: (l) => console.log(`# ${l}`) });
  });
  const pair = (a: string, b: string): V6PairResult => {
    const r = m.results.find((x) => x.a === a && x.b === b)!;
    assert.ok(r.ok, `${a} x ${b}: ${r.error}`);
    return r;
  };

  test('a rendezvous at an IPv6 address is reached over UDP, not the TCP uplink', () => {
    const f = m.agents.dc1!;
    assert.equal(f.startError, undefined, f.startError);
    assert.equal(f.uplink, 'udp');
    assert.match(f.observed ?? '', /^\[2001:db8:1::10\]:\d+$/, 'the rendezvous saw our IPv6 address (no NAT in front of it)');
  });

  test('IPv6-only behind NAT64, rendezvous given as an IPv4 literal: synthesised with the learnt prefix, UDP uplink', () => {
    const f = m.agents.n64l!;
    assert.equal(f.startError, undefined, f.startError);
    assert.equal(f.uplink, 'udp');
    assert.equal(f.nat64, 'rfc7050');
    assert.match(f.observed ?? '', /^198\.51\.100\.\d+:\d+$/, "the rendezvous saw the NAT64 router's IPv4 address");
  });

  for (const kind of ['dual-cone', 'dual-sym']) {
    test(`${kind} x ${kind}: direct over IPv6 through both IPv6 firewalls`, () => {
      const r = pair(kind, kind);
      assert.ok(wants('ipv6', r.viewA) && wants('ipv6', r.viewB), `paths ${JSON.stringify(r.viewA)} / ${JSON.stringify(r.viewB)}`);
      assert.ok(r.intact);
      assert.equal(r.pingReceived, 3);
      // At least the 2 MiB sent after going direct crossed each router on the hosts' IPv6 flow.
      for (const b of r.routerBytes!) assert.ok(b > 2 * 1024 * 1024, `router IPv6 bytes ${r.routerBytes}`);
      assert.ok(r.directMs !== undefined, 'time to direct measured');
    });
  }

  test('IPv6-only behind NAT64 to an IPv4-only agent: by name, prefix learnt, streams and ping, direct through the NAT64', () => {
    const f = m.agents.n64!;
    assert.equal(f.startError, undefined, f.startError);
    assert.equal(f.uplink, 'udp', 'UDP through NAT64');
    assert.equal(f.nat64, 'rfc7050', 'the NAT64 prefix learnt from ipv4only.arpa');
    const r = pair('nat64', 'v4-cone');
    assert.ok(r.intact);
    assert.equal(r.pingReceived, 3);
    assert.ok(r.nat64Packets! > 1000, `tayga translated ${r.nat64Packets} packets`);
    assert.ok(wants('ipv4', r.viewA) && wants('ipv4', r.viewB), `paths ${JSON.stringify(r.viewA)} / ${JSON.stringify(r.viewB)}`);
    assert.match(r.viewA!.endpoint!, /^198\.51\.100\.\d+:\d+$/, 'the edge turns the synthesised address back into IPv4');
    assert.ok(r.routerBytes![0]! > 2 * 1024 * 1024, `the IPv4-only side's router saw ${r.routerBytes} bytes with the NAT64's address`);
  });
});
