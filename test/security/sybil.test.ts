// Hole 7 of issue 15: identities must cost something and their claims expire.
// Real rendezvous, real UDP clients from distinct loopback source addresses.
//  - new identities are limited per source address; other sources and known keys are not affected;
//  - a hostname whose node stays offline past the lease lapses (the address stays with the key);
//  - trust requests are limited per source (throwaway keys share one allowance) and expire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { RegistryClient } from '../../src/registry/client.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import type { PilotError } from '../../src/util/errors.ts';
import { startServer, sleep } from '../rendezvous/helpers.ts';
import { startRendezvous } from '../helpers/cluster.ts';

interface Node {
  client: RegistryClient;
  close(): void;
}

/** A registry client on its own UDP socket bound to `ip` (a loopback address: its own source). */
async function nodeFrom(ip: string, port: number, identity = generateIdentity()): Promise<Node> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, ip, () => r()));
  const client = new RegistryClient({ identity, timeoutMs: 1000, retries: 4, send: (p) => sock.send(p, port, '127.0.0.1') });
  sock.on('message', (m, rinfo) => rinfo.port === port && client.handlePacket(m));
  return { client, close: () => (client.close(), sock.close()) };
}

const code = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'OK',
    (e: PilotError) => e.code,
  );

test('sybil: new identities are limited per source address (default flags), other sources and known keys are not', { timeout: 90_000 }, async () => {
  const rdv = await startRendezvous({ args: ['--alt-port', 'none'] });
  const nodes: Node[] = [];
  try {
    // One address registers throwaway keys as fast as it can.
    const outcomes: string[] = [];
    for (let i = 0; i < 100; i++) {
      const n = await nodeFrom('127.0.0.21', rdv.port);
      nodes.push(n);
      outcomes.push(await code(n.client.register({ email: `s${i}@example.com`, hostname: `squat-${i}` })));
    }
    const ok = outcomes.filter((c) => c === 'OK').length;
    console.log(`one source, 100 new keys: ${ok} registered, ${outcomes.length - ok} refused (${[...new Set(outcomes.filter((c) => c !== 'OK'))].join(', ')})`);
    assert.ok(ok >= 64 && ok <= 70, `${ok} of 100 throwaway registrations from one address went through (allowance: 64 at once, then 2 a minute)`);
    assert.deepEqual([...new Set(outcomes.slice(70))], ['RATE_LIMITED']);
    // The refusal names the cause and the fix.
    const extra = await nodeFrom('127.0.0.21', rdv.port);
    nodes.push(extra);
    await assert.rejects(
      extra.client.register({ email: 'x@example.com' }),
      (e: PilotError) => e.code === 'RATE_LIMITED' && /new identities/.test(e.message) && /wait \d+ s/.test(e.hint ?? ''),
    );
    // A registered key from that address re-registers freely.
    assert.equal(await code(nodes[0]!.client.register({ email: 's0@example.com' })), 'OK');
    // Another address is not affected.
    const honest = await nodeFrom('127.0.0.22', rdv.port);
    nodes.push(honest);
    assert.equal(await code(honest.client.register({ email: 'h@example.com', hostname: 'honest' })), 'OK');
  } finally {
    for (const n of nodes) n.close();
    await rdv.kill();
  }
});

test('sybil: a hostname lapses after its node was offline for the lease; the address stays with the key', { timeout: 60_000 }, async () => {
  const s = await startServer({ registryLimits: { hostnameLeaseMs: 1500 } });
  const a = await nodeFrom('127.0.0.31', s.port);
  const b = await nodeFrom('127.0.0.32', s.port);
  try {
    const ra = await a.client.register({ email: 'a@example.com', hostname: 'squatted', public: true });
    assert.equal(await code(b.client.register({ email: 'b@example.com', hostname: 'squatted' })), 'HOSTNAME_TAKEN', 'taken while leased');
    const c = await nodeFrom('127.0.0.33', s.port);
    await c.client.register({ email: 'c@example.com' });
    assert.equal((await c.client.resolve({ hostname: 'squatted' })).address, ra.address);
    await sleep(2500); // a stays silent past its lease
    assert.equal(await code(c.client.resolve({ hostname: 'squatted' })), 'NOT_FOUND', 'a lapsed name does not resolve');
    c.close();
    const rb = await b.client.register({ email: 'b@example.com', hostname: 'squatted' });
    assert.equal(rb.hostname, 'squatted', 'the lapsed name went to the new claimant');
    assert.equal((await b.client.resolve({ hostname: 'squatted' })).address, rb.address);
    // a keeps its address (and can register again, without the name).
    const again = await a.client.register({ email: 'a@example.com' });
    assert.equal(again.address, ra.address);
    assert.equal(again.hostname, null);
  } finally {
    a.close();
    b.close();
    await s.close();
  }
});

test('sybil: trust requests are limited per source address and expire', { timeout: 60_000 }, async () => {
  const s = await startServer({ registryLimits: { trustRequestSourceRate: { perSec: 0.001, burst: 5 }, trustRequestTtlMs: 2000 } });
  const nodes: Node[] = [];
  try {
    const target = await nodeFrom('127.0.0.41', s.port);
    nodes.push(target);
    const t = await target.client.register({ email: 't@example.com' });
    // Throwaway keys from one address, one trust request each (each key is far under its own limit).
    const outcomes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const n = await nodeFrom('127.0.0.42', s.port);
      nodes.push(n);
      await n.client.register({ email: `m${i}@example.com` });
      outcomes.push(await code(n.client.trustRequest(t.address, 'let me in')));
    }
    assert.deepEqual(outcomes, ['OK', 'OK', 'OK', 'OK', 'OK', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED'], 'the keys of one address share one allowance');
    // Somebody else can still ask.
    const friend = await nodeFrom('127.0.0.43', s.port);
    nodes.push(friend);
    const f = await friend.client.register({ email: 'f@example.com' });
    assert.equal(await code(friend.client.trustRequest(t.address, 'hi')), 'OK');
    assert.equal((await target.client.trustPending()).incoming.length, 6);
    // Unanswered requests expire: they no longer show, hold a slot, or can be approved.
    await sleep(2500);
    assert.equal((await target.client.trustPending()).incoming.length, 0, 'expired requests are gone');
    assert.equal(await code(target.client.trustApprove(f.address)), 'NOT_FOUND');
    assert.equal(await code(friend.client.trustRequest(t.address, 'hi again')), 'OK', 'asking again works');
    assert.equal((await target.client.trustApprove(f.address)).status, 'trusted');
  } finally {
    for (const n of nodes) n.close();
    await s.close();
  }
});

test('sybil: with --invite-tokens, a new identity needs a valid invitation; known keys re-register without one', { timeout: 60_000 }, async () => {
  const rdv = await startRendezvous({ args: ['--alt-port', 'none', '--invite-tokens', 'open-sesame,second-token'] });
  const n = await nodeFrom('127.0.0.51', rdv.port);
  const m = await nodeFrom('127.0.0.51', rdv.port);
  try {
    await assert.rejects(
      n.client.register({ email: 'n@example.com' }),
      (e: PilotError) => e.code === 'PERMISSION_DENIED' && /invitation only/.test(e.message) && /--invite/.test(e.hint ?? ''),
    );
    assert.equal(await code(n.client.register({ email: 'n@example.com', invite: 'open-sesame!' })), 'PERMISSION_DENIED');
    const r = await n.client.register({ email: 'n@example.com', invite: 'second-token' });
    assert.equal((await n.client.register({ email: 'n@example.com' })).address, r.address, 'a registered key needs no invitation again');
    assert.equal(await code(m.client.register({ email: 'm@example.com' })), 'PERMISSION_DENIED');
  } finally {
    n.close();
    m.close();
    await rdv.kill();
  }
});
