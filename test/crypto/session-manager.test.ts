import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { SessionManager } from '../../src/crypto/session-manager.ts';
import { generateIdentity, type Identity } from '../../src/crypto/identity.ts';
import { addressKey, type Address } from '../../src/wire/address.ts';

interface Node {
  id: Identity;
  addr: Address;
  mgr: SessionManager;
  got: Buffer[];
  wire: Buffer[]; // every packet it sent, for replay/tamper tests
}

/** Two managers wired back to back; `link` may drop or alter packets. */
function pair(opts: { link?: (p: Buffer, from: 'a' | 'b') => Buffer | null; mgrOpts?: object; verify?: (a: Address) => boolean } = {}) {
  const nodes: Record<'a' | 'b', Node> = {} as never;
  const mk = (name: 'a' | 'b', node: number, id = generateIdentity(), bootId = crypto.randomBytes(8)): Node => {
    const other = name === 'a' ? 'b' : 'a';
    const n: Node = {
      id,
      addr: { network: 0, node },
      got: [],
      wire: [],
      mgr: undefined as unknown as SessionManager,
    };
    const deliver = (pkt: Buffer): void => {
      n.wire.push(Buffer.from(pkt)); // copies: like a real network, the receiver may decrypt in place
      const out = opts.link ? opts.link(Buffer.from(pkt), name) : Buffer.from(pkt);
      if (out) setImmediate(() => nodes[other].mgr.handlePacket(out, { from: name }));
    };
    n.mgr = new SessionManager({
      identity: id,
      localAddress: n.addr,
      bootId,
      send: (_peer, pkt) => deliver(pkt),
      sendRaw: (pkt) => deliver(pkt),
      verifyPeer: (a) => (opts.verify ? opts.verify(a) : true),
      handshakeRetryMs: 100,
      handshakeTimeoutMs: 1500,
      ...(opts.mgrOpts ?? {}),
    });
    n.mgr.on('message', (_k: number, m: Buffer) => n.got.push(m));
    nodes[name] = n;
    return n;
  };
  const a = mk('a', 1);
  const b = mk('b', 2);
  return { a, b, nodes, remake: (name: 'a' | 'b') => { const old = nodes[name]; old.mgr.destroy(); return mk(name, old.addr.node, old.id); } };
}

const until = async (cond: () => boolean, ms = 3000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

const peerOf = (n: Node) => ({ address: n.addr, publicKey: n.id.publicKey });

test('handshake on demand, data both ways, queue flushed in order', async () => {
  const { a, b } = pair();
  for (let i = 0; i < 5; i++) a.mgr.sendTo(peerOf(b), Buffer.from(`m${i}`));
  await until(() => b.got.length === 5);
  assert.deepEqual(b.got.map(String), ['m0', 'm1', 'm2', 'm3', 'm4']);
  b.mgr.sendTo(peerOf(a), Buffer.from('back'));
  await until(() => a.got.length === 1);
  assert.equal(String(a.got[0]), 'back');
  assert.equal(a.mgr.stats.handshakesCompleted, 1);
  assert.ok(!a.wire.some((p) => p.includes(Buffer.from('m3'))), 'no plaintext on the wire');
  a.mgr.destroy();
  b.mgr.destroy();
});

test('tampered and replayed data packets are dropped and counted', async () => {
  const { a, b } = pair();
  a.mgr.sendTo(peerOf(b), Buffer.from('one'));
  await until(() => b.got.length === 1);
  const data = a.wire.filter((p) => p[0] === 0x12);
  const last = data[data.length - 1]!;
  b.mgr.handlePacket(last, {}); // replay
  assert.equal(b.mgr.stats.dropReplay, 1);
  const bad = Buffer.from(last);
  bad[bad.length - 3]! ^= 0x40;
  bad.writeUInt32BE(bad.readUInt32BE(9) + 1, 9); // fresh counter, but altered: must fail auth
  b.mgr.handlePacket(bad, {});
  assert.equal(b.mgr.stats.dropAuth, 1);
  b.mgr.handlePacket(Buffer.from([0x12, 1, 2]), {});
  b.mgr.handlePacket(crypto.randomBytes(300), {});
  assert.equal(b.got.length, 1);
  // still works afterwards: the forged counter did not move the window
  a.mgr.sendTo(peerOf(b), Buffer.from('two'));
  await until(() => b.got.length === 2);
  a.mgr.destroy();
  b.mgr.destroy();
});

test('a replayed handshake message 1 is refused', async () => {
  const { a, b } = pair();
  a.mgr.sendTo(peerOf(b), Buffer.from('x'));
  await until(() => b.got.length === 1);
  const init = a.wire.find((p) => p[0] === 0x10)!;
  const before = b.mgr.stats.handshakesCompleted;
  b.mgr.handlePacket(init, {});
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(b.mgr.stats.dropStaleHandshake, 1);
  assert.equal(b.mgr.stats.handshakesCompleted, before);
  a.mgr.destroy();
  b.mgr.destroy();
});

test('verifyPeer false refuses the session; handshake then fails with an event', async () => {
  const { a, b } = pair({ verify: () => false });
  const failed = new Promise<number>((r) => a.mgr.once('handshake-failed', (k: number) => r(k)));
  a.mgr.sendTo(peerOf(b), Buffer.from('x'));
  assert.equal(await failed, addressKey(b.addr));
  assert.ok(b.mgr.stats.dropRejectedPeer >= 1);
  assert.equal(b.got.length, 0);
  a.mgr.destroy();
  b.mgr.destroy();
});

test('simultaneous initiation converges', async () => {
  const { a, b } = pair();
  a.mgr.sendTo(peerOf(b), Buffer.from('from-a'));
  b.mgr.sendTo(peerOf(a), Buffer.from('from-b'));
  await until(() => a.got.length === 1 && b.got.length === 1);
  for (let i = 0; i < 20; i++) {
    a.mgr.sendTo(peerOf(b), Buffer.from(`a${i}`));
    b.mgr.sendTo(peerOf(a), Buffer.from(`b${i}`));
  }
  await until(() => a.got.length === 21 && b.got.length === 21);
  a.mgr.destroy();
  b.mgr.destroy();
});

test('rekey by volume and by time keeps data flowing', async () => {
  let t = 1_000_000;
  const { a, b } = pair({ mgrOpts: { rekeyAfterBytes: 10_000, rekeyAfterMs: 60_000, now: () => t } });
  for (let i = 0; i < 50; i++) {
    a.mgr.sendTo(peerOf(b), Buffer.alloc(1000, i));
    await new Promise((r) => setImmediate(r));
  }
  await until(() => b.got.length === 50);
  assert.ok((a.mgr.sessionInfo(addressKey(b.addr))!.rekeys as number) >= 1, 'rekeyed by volume');
  const rekeys = a.mgr.sessionInfo(addressKey(b.addr))!.rekeys as number;
  t += 61_000;
  for (let i = 0; i < 5; i++) {
    a.mgr.sendTo(peerOf(b), Buffer.from(`late${i}`));
    await new Promise((r) => setImmediate(r));
  }
  await until(() => b.got.length === 55);
  assert.ok((a.mgr.sessionInfo(addressKey(b.addr))!.rekeys as number) > rekeys, 'rekeyed by time');
  a.mgr.destroy();
  b.mgr.destroy();
});

test('a restarted peer is recovered through the unknown-session hint', async () => {
  const p = pair();
  const { a } = p;
  a.mgr.sendTo(peerOf(p.b), Buffer.from('before'));
  await until(() => p.b.got.length === 1);
  const b2 = p.remake('b'); // same identity and address, new bootId, no sessions
  const restarted = new Promise<number>((r) => a.mgr.once('peer-restarted', (k: number) => r(k)));
  a.mgr.sendTo(peerOf(b2), Buffer.from('lost: old session'));
  assert.equal(await restarted, addressKey(b2.addr));
  assert.ok(b2.mgr.stats.hintsSent >= 1);
  a.mgr.sendTo(peerOf(b2), Buffer.from('after'));
  await until(() => b2.got.some((m) => String(m) === 'after'));
  a.mgr.destroy();
  b2.mgr.destroy();
});

test('delivery under loss, duplication and reordering (session layer is unreliable but never corrupts)', async () => {
  let n = 0;
  const held: Array<() => void> = [];
  const { a, b } = pair({
    link: (p) => {
      n++;
      if (p[0] === 0x12 && n % 5 === 0) return null; // drop
      if (p[0] === 0x12 && n % 7 === 0) held.push(() => b.mgr.handlePacket(p, {})); // delay (reorder) + duplicate
      return p;
    },
  });
  a.mgr.sendTo(peerOf(b), Buffer.from('hs'));
  await until(() => b.got.length >= 1);
  for (let i = 0; i < 200; i++) a.mgr.sendTo(peerOf(b), Buffer.from(`p${i}`));
  await new Promise((r) => setTimeout(r, 50));
  for (const h of held) h();
  const uniq = new Set(b.got.map(String));
  assert.equal(uniq.size, b.got.length, 'no duplicates delivered');
  assert.ok(b.got.length > 120 && b.got.length < 201);
  assert.ok(b.mgr.stats.dropReplay >= held.length - 1);
  a.mgr.destroy();
  b.mgr.destroy();
});
