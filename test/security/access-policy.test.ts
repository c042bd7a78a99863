// The access policy on its own (no processes): every combination of
// trusted/untrusted x we public/private x peer public/private x port 7/other
// x direction x echo request sent or not, against the rules written out plainly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AccessPolicy } from '../../src/daemon/access-policy.ts';
import type { Address } from '../../src/wire/address.ts';

const PEER: Address = { network: 0, node: 42 };
const OTHER: Address = { network: 0, node: 43 };
const ECHO = 7;
const PORTS = [ECHO, 1000, 1001, 5000, 49_152];

function rig(o: { trusted: boolean; amPublic: boolean; peerPublic: boolean }, now = { t: 0 }) {
  return new AccessPolicy(
    {
      isTrusted: (a) => o.trusted && a.node === PEER.node,
      amPublic: () => o.amPublic,
      peerIsPublic: () => o.peerPublic,
    },
    { now: () => now.t, maxEchoRequests: 4, echoReplyMs: 10_000 },
  );
}

const bools = [false, true];

test('every combination: untrusted peers reach echo only, replies only for echo requests we sent', () => {
  let cases = 0;
  for (const trusted of bools)
    for (const amPublic of bools)
      for (const peerPublic of bools)
        for (const src of PORTS)
          for (const dst of PORTS)
            for (const requested of bools) {
              const p = rig({ trusted, amPublic, peerPublic });
              const ourPort = dst; // a reply from the peer's `src` lands on our `dst`
              if (requested) p.sendRefusal(PEER, ourPort === ECHO ? 40_000 : ourPort, ECHO); // an echo request from our port
              const label = JSON.stringify({ trusted, amPublic, peerPublic, src, dst, requested });

              // incoming datagram src -> dst
              let inOk: boolean;
              if (src === ECHO && dst === ECHO)
                inOk = false; // echo never answers echo (loops)
              else if (trusted) inOk = true;
              else if (dst === ECHO)
                inOk = amPublic; // a request to our echo: only when we are public
              else if (src === ECHO)
                inOk = peerPublic && requested; // a reply to a request we sent (only a public peer's is allowed)
              else inOk = false;
              assert.equal(p.mayReceiveDatagram(PEER, src, dst), inOk, `receive ${label}`);

              // outgoing datagram from a local client
              const q = rig({ trusted, amPublic, peerPublic });
              const out = q.sendRefusal(PEER, src, dst);
              const outOk = src === ECHO ? 'echo-source' : trusted || (dst === ECHO && peerPublic) ? undefined : 'not-trusted';
              assert.equal(out, outOk, `send ${label}`);

              // streams
              assert.equal(q.mayAcceptStream(PEER, dst), trusted || (dst === ECHO && amPublic), `accept stream ${label}`);
              assert.equal(q.mayOpenStream(PEER, dst), trusted || (dst === ECHO && peerPublic), `open stream ${label}`);
              cases++;
            }
  assert.equal(cases, 2 * 2 * 2 * PORTS.length * PORTS.length * 2);
});

test('an echo reply matches peer + our source port only, and expires', () => {
  const now = { t: 0 };
  const p = rig({ trusted: false, amPublic: true, peerPublic: true }, now);
  assert.equal(p.sendRefusal(PEER, 40_000, ECHO), undefined);
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 40_000), true, 'the reply to our request');
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 40_001), false, 'another of our ports');
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 1000), false, 'the stdio queue');
  assert.equal(p.mayReceiveDatagram(OTHER, ECHO, 40_000), false, 'another peer');
  assert.equal(p.mayReceiveDatagram(PEER, 8, 40_000), false, 'not from echo');
  now.t = 10_001;
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 40_000), false, 'expired');
  assert.equal(p.pendingEchoRequests, 0);
});

test('echo requests are bounded: the oldest is forgotten first; a refreshed one stays', () => {
  const p = rig({ trusted: false, amPublic: false, peerPublic: true });
  for (let port = 40_000; port < 40_004; port++) p.sendRefusal(PEER, port, ECHO);
  p.sendRefusal(PEER, 40_000, ECHO); // refreshed: now the newest
  p.sendRefusal(PEER, 40_010, ECHO); // evicts 40_001
  assert.equal(p.pendingEchoRequests, 4);
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 40_000), true);
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 40_001), false);
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 40_010), true);
});

test('a refused request records nothing: no reply gets in for it', () => {
  const p = rig({ trusted: false, amPublic: true, peerPublic: false });
  assert.equal(p.sendRefusal(PEER, 40_000, ECHO), 'not-trusted', 'a private untrusted peer is not pingable');
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 40_000), false);
  assert.equal(p.pendingEchoRequests, 0);
});

test('fleets: every combination of untrusted co-member (policy lets it reach us / lets us reach it) x ports x direction', () => {
  // The network policy is a fake here (networks.ts and networks-part.test.ts test the real one):
  // the co-member may reach our ports in IN, we may reach its ports in OUT; a non-member gets 'no-network'.
  const IN = new Set([ECHO, 1000]);
  const OUT = new Set([ECHO, 1001]);
  let cases = 0;
  for (const member of bools)
    for (const src of PORTS)
      for (const dst of PORTS) {
        const p = new AccessPolicy({
          isTrusted: () => false,
          amPublic: () => false,
          peerIsPublic: () => false,
          coMemberMayReach: (a, port) => member && a.node === PEER.node && IN.has(port),
          coMemberOutgoing: (a, port) => (!member || a.node !== PEER.node ? 'no-network' : OUT.has(port) ? true : { refusedBy: ['fleet'] }),
        });
        const label = JSON.stringify({ member, src, dst });
        const inOk = !(src === ECHO && dst === ECHO) && member && IN.has(dst);
        assert.equal(p.mayReceiveDatagram(PEER, src, dst), inOk, `receive ${label}`);
        assert.equal(p.mayAcceptStream(PEER, dst), member && IN.has(dst), `accept ${label}`);
        assert.equal(p.mayOpenStream(PEER, dst), member && OUT.has(dst), `open ${label}`);
        assert.equal(p.sendRefusal(PEER, src, dst), src === ECHO ? 'echo-source' : member && OUT.has(dst) ? undefined : 'not-trusted', `send ${label}`);
        assert.deepEqual(p.policyRefusal(PEER, dst), member && !OUT.has(dst) ? ['fleet'] : [], `refusal ${label}`);
        assert.equal(p.mayOpenStream(OTHER, dst), false, `another node ${label}`);
        cases++;
      }
  assert.equal(cases, 2 * PORTS.length * PORTS.length);
});

test('fleets: an echo reply from a co-member gets in only for a request we sent to it', () => {
  const p = new AccessPolicy(
    {
      isTrusted: () => false,
      amPublic: () => false,
      peerIsPublic: () => false,
      coMemberMayReach: () => false, // the policy does not let it reach us
      coMemberOutgoing: (a, port) => (a.node === PEER.node && port === ECHO ? true : 'no-network'),
    },
    { now: () => 0 },
  );
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 40_000), false);
  assert.equal(p.sendRefusal(PEER, 40_000, ECHO), undefined);
  assert.equal(p.mayReceiveDatagram(PEER, ECHO, 40_000), true);
  assert.equal(p.mayReceiveDatagram(OTHER, ECHO, 40_000), false);
});
