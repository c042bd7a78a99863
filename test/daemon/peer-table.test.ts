// The peer table with a fake registry and a fake clock: the resolve cache,
// key changes, session verification, and the bounds on untrusted peers
// (least recently active evicted at the cap, idle ones forgotten).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerTable, RESOLVE_TTL_MS, type PeerTableHost } from '../../src/daemon/peer-table.ts';
import type { ResolvedNode } from '../../src/daemon/targets.ts';
import { addressKey, formatAddress, makeAddress, type Address } from '../../src/wire/address.ts';
import type { HostPort } from '../../src/util/hostport.ts';
import { PilotError as PilotErrorClass, type PilotError } from '../../src/util/errors.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { routePmtuSupported } from '../../src/nat/link-mtu.ts';
import { RELAY_OVERHEAD } from '../../src/wire/packet-types.ts';

const ME = makeAddress(1, 1);
/** A network this node may be a member of (rig({ inNetworks: true })). */
const FLEET = 7;
const key = (n: number): Buffer => Buffer.alloc(32, n);

function node(n: number, extra: Partial<ResolvedNode> = {}): ResolvedNode {
  return { address: makeAddress(1, n), publicKey: key(n), hostname: `agent-${n}`, endpoints: [], public: false, online: true, ...extra };
}

function rig(opts: { maxUntrustedPeers?: number; untrustedIdleMs?: number; amPublic?: boolean; inNetworks?: boolean; relayProbeHost?: string } = {}) {
  const s = {
    now: 1_000_000,
    trusted: new Set<number>(),
    records: new Map<number, ResolvedNode>(),
    lookups: 0,
    verifies: 0,
    log: [] as string[],
    candidates: new Map<number, HostPort[]>(),
    counters: { refusedUntrusted: 0, untrustedEvicted: 0 },
    sent: 0,
  };
  const lookup = async (a: Address): Promise<ResolvedNode> => {
    s.lookups++;
    const r = s.records.get(addressKey(a));
    if (!r) throw new Error('not found');
    return r;
  };
  const host: PeerTableHost = {
    log: silentLogger(),
    counters: s.counters,
    now: () => s.now,
    localAddress: () => ME,
    // as the daemon's networks do: a member of network 7 names a node 7:<node> or by its own address
    globalAddress: (a) => {
      if (a.network !== FLEET) return a;
      if (!opts.inNetworks) throw new PilotErrorClass('NOT_FOUND', `not a member of network ${FLEET}`);
      return makeAddress(1, a.node);
    },
    isTrusted: (a) => s.trusted.has(addressKey(a)),
    amPublic: () => opts.amPublic ?? false,
    inNetworks: () => opts.inNetworks ?? false,
    resolve: (q) => lookup(q.address),
    resolveTarget: async (t) => {
      s.lookups++;
      for (const r of s.records.values()) if (r.hostname === t || formatAddress(r.address) === t) return r;
      throw new Error('not found');
    },
    verify: async (a, k) => {
      s.verifies++;
      const r = s.records.get(addressKey(a));
      // as the daemon does with every answer: the networks it names make the node a (hinted) co-member
      if (r?.publicKey.equals(k) && r.networks?.length) s.trusted.add(addressKey(a));
      return r?.publicKey.equals(k) ? r : undefined;
    },
    sendInPlace: () => {
      s.sent++;
    },
    incomingStream: () => {},
    incomingDatagram: () => {},
    closeSession: (k) => s.log.push(`close-session ${k}`),
    forgetPath: (k) => s.log.push(`forget-path ${k}`),
    setCandidates: (k, c) => s.candidates.set(k, c),
    relayProbeHost: () => opts.relayProbeHost,
  };
  const table = new PeerTable(host, opts);
  return { table, s };
}

test('the resolve cache: one registry lookup per 30 s, by address or by hostname', async (t) => {
  const { table, s } = rig();
  t.after(() => table.close());
  s.trusted.add(addressKey(makeAddress(1, 2)));
  s.records.set(addressKey(makeAddress(1, 2)), node(2));
  const p = await table.peerFor(makeAddress(1, 2));
  assert.equal(await table.peerFor(makeAddress(1, 2)), p);
  assert.equal(await table.peerFor('agent-2'), p);
  assert.equal(s.lookups, 1);
  assert.equal(table.freshPeer(makeAddress(1, 2)), p);
  s.now += RESOLVE_TTL_MS;
  assert.equal(table.freshPeer(makeAddress(1, 2)), undefined, 'stale: the caller asks the registry');
  await table.peerFor('agent-2');
  assert.equal(s.lookups, 2);
  s.records.set(addressKey(ME), node(1));
  await assert.rejects(table.peerFor('agent-1'), (e: PilotError) => e.code === 'BAD_ARGUMENT');
});

test("a network's address of a known peer (N:<node>) hits the cache: no registry lookup per dial", async (t) => {
  const { table, s } = rig({ inNetworks: true });
  t.after(() => table.close());
  s.trusted.add(addressKey(makeAddress(1, 2)));
  s.records.set(addressKey(makeAddress(1, 2)), node(2));
  const p = await table.peerFor(makeAddress(1, 2));
  assert.equal(await table.peerFor(makeAddress(FLEET, 2)), p);
  assert.equal(await table.peerFor(formatAddress(makeAddress(FLEET, 2))), p);
  assert.equal(table.freshPeer(makeAddress(FLEET, 2)), p);
  assert.equal(s.lookups, 1, 'the fleet address named the cached peer');
  const outsider = rig();
  t.after(() => outsider.table.close());
  await assert.rejects(outsider.table.peerFor(makeAddress(FLEET, 2)), (e: PilotError) => e.code === 'NOT_FOUND');
  assert.equal(outsider.table.freshPeer(makeAddress(FLEET, 2)), undefined);
});

test('a peer heard from in its session lately is dialled by address without a lookup; by hostname it is looked up again', async (t) => {
  const { table, s } = rig();
  t.after(() => table.close());
  s.trusted.add(addressKey(makeAddress(1, 2)));
  s.records.set(addressKey(makeAddress(1, 2)), node(2));
  const p = await table.peerFor(makeAddress(1, 2));
  s.now += RESOLVE_TTL_MS;
  p.lastSeen = s.now - 1000; // its session spoke a second ago
  assert.equal(await table.peerFor(makeAddress(1, 2)), p);
  assert.equal(await table.peerFor(formatAddress(makeAddress(1, 2))), p);
  assert.equal(s.lookups, 1, 'the live session stands for the registry');
  await table.peerFor('agent-2');
  assert.equal(s.lookups, 2, 'a hostname may have moved: asked again');
  s.now += 2 * RESOLVE_TTL_MS; // silent for a minute: asked again
  await table.peerFor(makeAddress(1, 2));
  assert.equal(s.lookups, 3);
});

test('registry endpoints become at most four punching candidates; unparseable ones are dropped', (t) => {
  const { table, s } = rig();
  t.after(() => table.close());
  const eps = ['198.51.100.1:1', 'nonsense', '300.1.1.1:5', '198.51.100.2:2', '198.51.100.3:3', '198.51.100.4:4', '198.51.100.5:5'];
  const peer = table.upsert(node(3, { endpoints: eps }));
  assert.deepEqual(
    peer.candidates.map((c) => c.port),
    [1, 2, 3, 4],
  );
  assert.deepEqual(s.candidates.get(peer.key), peer.candidates);
});

test('a new key at the registry: the old session, connection and path go', (t) => {
  const { table, s } = rig();
  t.after(() => table.close());
  s.trusted.add(addressKey(makeAddress(1, 4)));
  const peer = table.upsert(node(4));
  const conn = peer.conn;
  table.upsert(node(4));
  assert.equal(peer.conn, conn, 'same key: same connection');
  assert.deepEqual(s.log, []);
  table.upsert(node(4, { publicKey: key(99) }));
  assert.notEqual(peer.conn, conn);
  assert.deepEqual(s.log, [`close-session ${peer.key}`, `forget-path ${peer.key}`]);
  assert.ok(peer.publicKey.equals(key(99)));
});

test('verifyPeer: a private node refuses untrusted keys outright; a public one checks the key at the registry', async (t) => {
  const priv = rig();
  t.after(() => priv.table.close());
  priv.s.records.set(addressKey(makeAddress(1, 5)), node(5));
  assert.equal(await priv.table.verifyPeer(makeAddress(1, 5), key(5)), false);
  assert.equal(priv.s.counters.refusedUntrusted, 1);
  assert.equal(priv.s.verifies, 0);

  const pub = rig({ amPublic: true });
  t.after(() => pub.table.close());
  pub.s.records.set(addressKey(makeAddress(1, 5)), node(5));
  assert.equal(await pub.table.verifyPeer(makeAddress(1, 5), key(6)), false, 'not the key the registry has');
  assert.equal(await pub.table.verifyPeer(makeAddress(1, 5), key(5)), true);
  assert.equal(pub.table.size, 1, 'a verified peer is in the table');
  assert.equal(await pub.table.verifyPeer(makeAddress(1, 5), key(5)), true);
  assert.equal(pub.s.verifies, 2, 'known and fresh: no second lookup');
});

test('verifyPeer in a fleet: a stranger costs one (verifier-limited) lookup, whose answer decides; a listed co-member gets in', async (t) => {
  // The daemon's verify resolves the caller; the answer names the networks we share and
  // isTrusted (trust or co-member hint) says yes only for a listed co-member.
  const { table, s } = rig({ inNetworks: true });
  t.after(() => table.close());
  s.records.set(addressKey(makeAddress(1, 7)), node(7));
  s.records.set(addressKey(makeAddress(1, 8)), { ...node(8), networks: [{ net: 3, tags: ['worker'] }] });
  assert.equal(await table.verifyPeer(makeAddress(1, 7), key(7)), false, 'not listed: refused after the lookup');
  assert.equal(s.verifies, 1);
  assert.equal(table.size, 0, 'a refused stranger leaves nothing in the table');
  assert.equal(await table.verifyPeer(makeAddress(1, 7), key(9)), false, 'a key the registry does not have');
  assert.equal(await table.verifyPeer(makeAddress(1, 8), key(8)), true);
  assert.equal(table.size, 1);
});

test('at the cap, a new untrusted peer evicts the least recently active one; trusted peers are never evicted', (t) => {
  const { table, s } = rig({ maxUntrustedPeers: 2 });
  t.after(() => table.close());
  s.trusted.add(addressKey(makeAddress(1, 10)));
  table.upsert(node(10)); // trusted: does not count
  const a = table.upsert(node(11));
  s.now += 10;
  const b = table.upsert(node(12));
  s.now += 10;
  a.lastSeen = s.now; // a spoke recently: b is now the least recently active
  s.now += 10;
  table.upsert(node(13));
  assert.deepEqual(
    table
      .list()
      .map((p) => p.key)
      .sort(),
    [10, 11, 13].map((n) => addressKey(makeAddress(1, n))).sort(),
  );
  assert.equal(s.counters.untrustedEvicted, 1);
  assert.ok(s.log.includes(`close-session ${b.key}`) && s.log.includes(`forget-path ${b.key}`));
  assert.equal(b.conn.isClosed, true);
});

test('idle untrusted peers are forgotten after the idle time; activity and trust keep them', (t) => {
  const { table, s } = rig({ untrustedIdleMs: 1_000 });
  t.after(() => table.close());
  s.trusted.add(addressKey(makeAddress(1, 20)));
  table.upsert(node(20));
  const quiet = table.upsert(node(21));
  const chatty = table.upsert(node(22));
  s.now += 999;
  chatty.lastSeen = s.now;
  table.forgetIdleUntrusted();
  assert.equal(table.size, 3);
  s.now += 1;
  table.forgetIdleUntrusted();
  assert.equal(table.get(quiet.key), undefined);
  assert.ok(table.get(chatty.key));
  s.now += 10_000;
  table.forgetIdleUntrusted();
  assert.deepEqual(
    table.list().map((p) => p.address.node),
    [20],
  );
  assert.equal(s.counters.untrustedEvicted, 2);
});

test('a closed connection is replaced when the peer is next used; adopt keeps a known peer', async (t) => {
  const { table, s } = rig();
  t.after(() => table.close());
  s.trusted.add(addressKey(makeAddress(1, 30)));
  const peer = table.upsert(node(30));
  peer.conn.close();
  const again = await table.peerFor(makeAddress(1, 30));
  assert.equal(again, peer);
  assert.equal(peer.conn.isClosed, false);
  table.adopt(makeAddress(1, 30), key(77));
  assert.ok(peer.publicKey.equals(key(30)), 'adopt does not overwrite a known peer');
  table.adopt(makeAddress(1, 31), key(31));
  assert.equal(table.get(addressKey(makeAddress(1, 31)))?.hostname, undefined);
});

test('a boot id seen before is a duplicated identity: the peer is told to start over; a new one is a plain restart', async (t) => {
  const { table, s } = rig();
  t.after(() => table.close());
  const b = makeAddress(1, 2);
  const k = addressKey(b);
  table.sessionUp(k, b, key(2), Buffer.from('boot-one'));
  const peer = table.get(k)!;
  let resets = 0;
  peer.conn.on('reset', () => resets++);
  const turn = (): Promise<void> => new Promise((r) => setTimeout(r, 5));
  // A new boot id: the peer restarted; our streams are reset in place, nothing is sent to it.
  assert.equal(table.restarted(k, Buffer.from('boot-two').toString('hex')), peer);
  await turn();
  assert.equal(resets, 1);
  assert.equal(s.sent, 0);
  // The first boot id again: a second copy of the identity; after this turn the peer is told to restart too.
  table.restarted(k, Buffer.from('boot-one').toString('hex'));
  assert.equal(s.sent, 0, 'told on the next turn, after our message 2');
  await turn();
  assert.ok(s.sent > 0, 'the restart signal went out');
  assert.equal(table.restarted(addressKey(makeAddress(1, 9)), 'x'), undefined, 'an unknown key is ignored');
});

test('forgetText: a revoked peer given as text is torn down; junk text is ignored', (t) => {
  const { table, s } = rig();
  t.after(() => table.close());
  const b = makeAddress(1, 2);
  table.sessionUp(addressKey(b), b, key(2), Buffer.from('boot'));
  assert.deepEqual(table.forgetText(formatAddress(b), 'trust revoked'), b);
  assert.equal(table.get(addressKey(b)), undefined);
  assert.ok(s.log.includes(`close-session ${addressKey(b)}`));
  assert.equal(table.forgetText('not an address', 'trust revoked'), undefined);
});

test('a relayed path is probed for a bigger packet size only when the rendezvous relays with DF (relayProbeHost), counting the relay header', (t) => {
  const relayed = { kind: 'relay', from: undefined } as const;
  const old = rig(); // a rendezvous that did not say relayDf (older, no addon), or a TCP uplink
  t.after(() => old.table.close());
  const a = old.table.upsert(node(5));
  old.table.pathChanged(a.key, relayed);
  assert.equal(a.conn.mtuStatus(), undefined, 'the 1280-safe default, no probing');

  const df = rig({ relayProbeHost: '203.0.113.9' });
  t.after(() => df.table.close());
  const b = df.table.upsert(node(5));
  df.table.pathChanged(b.key, { kind: 'direct', host: '203.0.113.7', port: 4000 });
  const direct = b.conn.mtuStatus();
  df.table.pathChanged(b.key, relayed);
  const st = b.conn.mtuStatus();
  if (!routePmtuSupported()) return t.skip('no `ip` to check probes against the route cache: nothing is probed');
  assert.ok(st && st.state !== 'disabled', `probing through the relay: ${JSON.stringify(st)}`);
  assert.equal(st.base, a.conn.maxPacketSize, 'from the default every relayed path starts at');
  assert.equal(st.ceiling, direct!.ceiling - RELAY_OVERHEAD, "up to what a direct path to the rendezvous's host would carry, less the relay header");
});
