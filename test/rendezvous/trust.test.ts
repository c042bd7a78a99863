// Zero-trust handshakes over real sockets: request, approve, reject, revoke,
// mutual auto-approve, persistence, forgeries, rate limits and visibility.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRequest, newNonce, openServerMessage } from '../../src/registry/envelope.ts';
import { generateIdentity, sign, verify, type Identity } from '../../src/registry/signing.ts';
import { SqliteStore } from '../../src/rendezvous/store/sqlite-store.ts';
import type { ResponseStatement, Push } from '../../src/registry/protocol.ts';
import * as v from 'valibot';
import { StatementSchema } from '../../src/registry/protocol.ts';
import { parseAddress, addressEquals } from '../../src/wire/address.ts';
import { PilotError } from '../../src/util/errors.ts';
import { cookieOf, makeTrust, sleep, startServer, tcpPeer, type Peer, udpPeer } from './helpers.ts';

const code = (c: string) => (e: PilotError) => {
  assert.equal(e.code, c, e.message);
  return true;
};

/** Records every push a peer's client emits, so none is missed while awaiting a call. */
function pushes(p: Peer) {
  const got: Push[] = [];
  p.client.on('push', (x: Push) => got.push(x));
  return {
    got,
    async wait(event: string, timeoutMs = 2000): Promise<Record<string, unknown>> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const i = got.findIndex((x) => x.event === event);
        if (i >= 0) return got.splice(i, 1)[0]!.data as Record<string, unknown>;
        if (Date.now() > end) throw new Error(`no ${event} push within ${timeoutMs} ms (got ${got.map((x) => x.event).join(', ') || 'nothing'})`);
        await sleep(10);
      }
    },
  };
}

async function answer(p: Peer, serverKey: Buffer): Promise<ResponseStatement> {
  const pkt = await p.nextPacket(0x02);
  const opened = openServerMessage(pkt, serverKey);
  assert.ok(opened && 'msg' in opened && opened.msg.type === 'response');
  return opened.msg.stmt as ResponseStatement;
}

const errCode = (r: ResponseStatement) => (r.ok ? undefined : r.error.code);

function rawPacket(env: object): Buffer {
  return Buffer.concat([Buffer.from([0x01]), Buffer.from(JSON.stringify(env))]);
}

/** Checks one signed statement of a pair record, as anyone auditing the store could. */
function checkStmt(text: string, sig: Buffer, signer: Identity, method: string, field: string, peer: string): void {
  assert.ok(verify(Buffer.from(text, 'utf8'), sig, signer.publicKey), `${method} signature verifies under the signer key`);
  const st = v.parse(StatementSchema, JSON.parse(text));
  assert.equal(st.method, method);
  assert.equal(st.key, signer.publicKey.toString('base64'));
  assert.ok(addressEquals(parseAddress(st.params[field] as string), parseAddress(peer)));
}

test('request -> pending on both sides -> approve -> trusted on both sides, pair holds two valid signatures', async (t) => {
  const store = new SqliteStore(':memory:');
  const s = await startServer({ store });
  t.after(async () => {
    await s.close();
    await store.close();
  });
  const a = await tcpPeer(s.port); // TCP: pushes over the connection
  const b = await udpPeer(s.port); // UDP: pushes to the observed endpoint
  const c = await udpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close(), c.close()]));
  const ra = await a.client.register({ email: 'a@example.com', hostname: 'alpha' });
  const rb = await b.client.register({ email: 'b@example.com', hostname: 'bravo' });
  await c.client.register({ email: 'c@example.com' });
  const pa = pushes(a);
  const pb = pushes(b);

  assert.deepEqual(await a.client.trustRequest(rb.address, 'let us talk'), { status: 'pending' });
  const pushed = await pb.wait('trust_request');
  assert.equal(pushed.from, ra.address);
  assert.equal(pushed.hostname, 'alpha');
  assert.equal(pushed.reason, 'let us talk');
  assert.equal(typeof pushed.created, 'number');

  const pendB = await b.client.trustPending();
  assert.deepEqual(pendB.outgoing, []);
  assert.equal(pendB.incoming.length, 1);
  assert.deepEqual({ ...pendB.incoming[0], created: 0 }, { from: ra.address, hostname: 'alpha', reason: 'let us talk', created: 0 });
  const pendA = await a.client.trustPending();
  assert.deepEqual(pendA.incoming, []);
  // b is private and does not trust a yet: its hostname is not revealed.
  assert.deepEqual({ ...pendA.outgoing[0], created: 0 }, { to: rb.address, hostname: null, reason: 'let us talk', created: 0 });

  // One node alone can never make the pair: the requester cannot approve
  // its own request, nor can a third node.
  await assert.rejects(a.client.trustApprove(rb.address), code('NOT_FOUND'));
  await assert.rejects(c.client.trustApprove(ra.address), code('NOT_FOUND'));
  assert.deepEqual((await a.client.trustList()).trusted, []);
  assert.equal(await store.getTrustPair(parseAddress(ra.address), parseAddress(rb.address)), undefined);

  assert.deepEqual(await b.client.trustApprove(ra.address), { status: 'trusted' });
  assert.deepEqual(await pa.wait('trust_approved'), { peer: rb.address, hostname: 'bravo' });

  const la = await a.client.trustList();
  const lb = await b.client.trustList();
  assert.equal(la.trusted.length, 1);
  assert.deepEqual({ ...la.trusted[0], since: 0 }, { peer: rb.address, hostname: 'bravo', since: 0, mutual: true });
  assert.deepEqual({ ...lb.trusted[0], since: 0 }, { peer: ra.address, hostname: 'alpha', since: 0, mutual: true });
  assert.deepEqual((await c.client.trustList()).trusted, []);
  assert.deepEqual(await a.client.trustPending(), { incoming: [], outgoing: [] });
  assert.deepEqual(await b.client.trustPending(), { incoming: [], outgoing: [] });

  // The pair record: a's signed request and b's signed approval.
  const pair = await store.getTrustPair(parseAddress(rb.address), parseAddress(ra.address));
  assert.ok(pair);
  assert.ok(addressEquals(pair.a, parseAddress(ra.address)), 'a has the lower address');
  checkStmt(pair.stmtA, pair.sigA, a.identity, 'trust_request', 'to', rb.address);
  checkStmt(pair.stmtB, pair.sigB, b.identity, 'trust_approve', 'from', ra.address);

  // Already trusted: asking again just says so.
  assert.deepEqual(await a.client.trustRequest(rb.address), { status: 'trusted' });
  assert.deepEqual(await b.client.trustRequest(ra.address), { status: 'trusted' });
  // And now they see each other fully.
  const seen = await a.client.resolve({ hostname: 'bravo' });
  assert.deepEqual(seen.endpoints, [`127.0.0.1:${b.localPort}`]);
  assert.equal(seen.online, true);
});

test('reject: pending dropped on both sides, requester is told', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await tcpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close()]));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  const pa = pushes(a);
  await a.client.trustRequest(rb.address);
  assert.deepEqual(await b.client.trustReject(ra.address, 'who are you?'), { status: 'rejected' });
  assert.deepEqual(await pa.wait('trust_rejected'), { peer: rb.address, reason: 'who are you?' });
  assert.deepEqual(await a.client.trustPending(), { incoming: [], outgoing: [] });
  assert.deepEqual(await b.client.trustPending(), { incoming: [], outgoing: [] });
  await assert.rejects(b.client.trustApprove(ra.address), code('NOT_FOUND'));
  await assert.rejects(b.client.trustReject(ra.address), code('NOT_FOUND'));
  assert.deepEqual((await b.client.trustList()).trusted, []);
  // Without a reason.
  await a.client.trustRequest(rb.address);
  await b.client.trustReject(ra.address);
  assert.deepEqual(await pa.wait('trust_rejected'), { peer: rb.address, reason: null });
});

test('revoke by either side; the other side is told', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await tcpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close()]));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  const pa = pushes(a);
  const pb = pushes(b);

  await makeTrust(a, ra.address, b, rb.address);
  assert.deepEqual(await a.client.trustRevoke(rb.address), { status: 'revoked' });
  assert.deepEqual(await pb.wait('trust_revoked'), { peer: ra.address });
  assert.deepEqual((await a.client.trustList()).trusted, []);
  assert.deepEqual((await b.client.trustList()).trusted, []);
  await assert.rejects(a.client.trustRevoke(rb.address), code('NOT_FOUND'));
  await assert.rejects(b.client.trustRevoke(ra.address), code('NOT_FOUND'));

  await makeTrust(a, ra.address, b, rb.address);
  assert.deepEqual(await b.client.trustRevoke(ra.address), { status: 'revoked' });
  assert.deepEqual(await pa.wait('trust_revoked'), { peer: rb.address });
  assert.deepEqual((await a.client.trustList()).trusted, []);
});

test('mutual auto-approve: two crossing requests make the pair from both signed requests', async (t) => {
  const store = new SqliteStore(':memory:');
  const s = await startServer({ store });
  t.after(async () => {
    await s.close();
    await store.close();
  });
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close()]));
  const ra = await a.client.register({ email: 'a@example.com', hostname: 'alpha' });
  const rb = await b.client.register({ email: 'b@example.com', hostname: 'bravo' });
  const pa = pushes(a);
  const pb = pushes(b);
  assert.deepEqual(await a.client.trustRequest(rb.address), { status: 'pending' });
  assert.deepEqual(await b.client.trustRequest(ra.address, 'me too'), { status: 'trusted' });
  assert.deepEqual(await pa.wait('trust_approved'), { peer: rb.address, hostname: 'bravo' });
  assert.deepEqual(await pb.wait('trust_approved'), { peer: ra.address, hostname: 'alpha' });
  assert.deepEqual(await a.client.trustPending(), { incoming: [], outgoing: [] });
  assert.deepEqual(await b.client.trustPending(), { incoming: [], outgoing: [] });
  assert.equal((await a.client.trustList()).trusted[0]?.peer, rb.address);
  const pair = await store.getTrustPair(parseAddress(ra.address), parseAddress(rb.address));
  assert.ok(pair);
  checkStmt(pair.stmtA, pair.sigA, a.identity, 'trust_request', 'to', rb.address);
  checkStmt(pair.stmtB, pair.sigB, b.identity, 'trust_request', 'to', ra.address);
});

test('crossing requests sent at the same moment still end trusted (no double pending)', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await tcpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close()]));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  const [x, y] = await Promise.all([a.client.trustRequest(rb.address), b.client.trustRequest(ra.address)]);
  assert.deepEqual([x.status, y.status].sort(), ['pending', 'trusted']);
  assert.equal((await a.client.trustList()).trusted.length, 1);
  assert.deepEqual(await b.client.trustPending(), { incoming: [], outgoing: [] });
});

test('argument errors: unknown target, self, bad address, bad reason, unregistered caller', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  const stranger = await udpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close(), stranger.close()]));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  await assert.rejects(a.client.trustRequest('0:0000.0000.0063'), code('NOT_FOUND'));
  await assert.rejects(a.client.trustRequest(ra.address), code('BAD_ARGUMENT'));
  await assert.rejects(a.client.trustRequest('nonsense'), code('BAD_ADDRESS'));
  await assert.rejects(a.client.trustRequest(rb.address, 'x'.repeat(257)), code('BAD_REQUEST'));
  await assert.rejects(a.client.trustRequest(rb.address, 'evil\u001b[2Jclear'), code('BAD_REQUEST'));
  await assert.rejects(a.client.trustRequest(rb.address, 'bidi\u202etrick'), code('BAD_REQUEST'));
  await assert.rejects(a.client.request('trust_request', { to: rb.address, extra: 1 }), code('BAD_REQUEST'));
  await assert.rejects(stranger.client.trustRequest(rb.address), code('NOT_REGISTERED'));
  await assert.rejects(stranger.client.trustPending(), code('NOT_REGISTERED'));
  await assert.rejects(stranger.client.trustList(), code('NOT_REGISTERED'));
  await assert.rejects(b.client.trustApprove(ra.address), code('NOT_FOUND'));
  // A deregistered target is unknown.
  await b.client.deregister();
  await assert.rejects(a.client.trustRequest(rb.address), code('NOT_FOUND'));
});

test('pending requests survive a server restart and a client restart; offline targets get them on return', async (t) => {
  const dataDir = (await import('./helpers.ts')).tmpDir();
  const s1 = await startServer({ dataDir });
  const a = await udpPeer(s1.port);
  const b = await udpPeer(s1.port);
  const ra = await a.client.register({ email: 'a@example.com', hostname: 'alpha' });
  const rb = await b.client.register({ email: 'b@example.com' });
  await b.close(); // b goes away (offline, or behind a NAT that forgot it)
  assert.deepEqual(await a.client.trustRequest(rb.address, 'while you were out'), { status: 'pending' });
  await a.close();
  await s1.close();

  const s2 = await startServer({ dataDir });
  t.after(() => s2.close());
  assert.deepEqual(s2.publicKey, s1.publicKey);
  // Both come back as new clients with their old identities.
  const a2 = await udpPeer(s2.port, { identity: a.identity, serverKey: s2.publicKey });
  const b2 = await tcpPeer(s2.port, { identity: b.identity, serverKey: s2.publicKey });
  t.after(() => Promise.all([a2.close(), b2.close()]));
  await a2.client.register({ email: 'a@example.com' });
  await b2.client.register({ email: 'b@example.com' });
  const pend = await b2.client.trustPending();
  assert.equal(pend.incoming.length, 1);
  assert.equal(pend.incoming[0]!.from, ra.address);
  assert.equal(pend.incoming[0]!.hostname, 'alpha');
  assert.equal(pend.incoming[0]!.reason, 'while you were out');
  assert.equal((await a2.client.trustPending()).outgoing[0]?.to, rb.address);
  const pa = pushes(a2);
  await b2.client.trustApprove(ra.address);
  assert.equal((await pa.wait('trust_approved')).peer, rb.address);
  await s2.close();

  // The pair survives a restart too.
  const s3 = await startServer({ dataDir });
  t.after(() => s3.close());
  const a3 = await udpPeer(s3.port, { identity: a.identity, serverKey: s3.publicKey });
  t.after(() => a3.close());
  await a3.client.register({ email: 'a@example.com' });
  assert.equal((await a3.client.trustList()).trusted[0]?.peer, rb.address);
});

test('forged, altered and replayed trust statements are refused', async (t) => {
  const store = new SqliteStore(':memory:');
  const s = await startServer({ store });
  t.after(async () => {
    await s.close();
    await store.close();
  });
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  const c = await udpPeer(s.port);
  const raw = await udpPeer(s.port); // sends hand-made packets; never registers
  t.after(() => Promise.all([a.close(), b.close(), c.close(), raw.close()]));
  const ra = await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  const rc = await c.client.register({ email: 'c@example.com' });
  const mallory = generateIdentity();
  // Requests sent from the raw socket echo its return-routability cookie (signed by their key).
  const cookie = await cookieOf(raw);

  // Params altered after signing: a asked b, the attacker rewrites it to c.
  const good = buildRequest(a.identity, s.publicKey, 'trust_request', { to: rb.address }, Date.now(), cookie);
  const env = JSON.parse(good.packet.subarray(1).toString());
  raw.sendRaw(rawPacket({ ...env, stmt: env.stmt.replace(rb.address, rc.address) }));
  assert.equal(errCode(await answer(raw, s.publicKey)), 'BAD_SIGNATURE');
  assert.deepEqual((await c.client.trustPending()).incoming, []);

  // The genuine one goes through (from any socket: the signature is what counts).
  raw.sendRaw(good.packet);
  const ok = await answer(raw, s.publicKey);
  assert.ok(ok.ok);
  assert.deepEqual(ok.result, { status: 'pending' });

  // Replayed statement in a new envelope: refused, not re-executed.
  raw.sendRaw(rawPacket({ ...env, id: 'other-id' }));
  assert.equal(errCode(await answer(raw, s.publicKey)), 'REPLAYED');
  await b.client.trustReject(ra.address);
  raw.sendRaw(rawPacket({ ...env, id: 'third-id' }));
  assert.equal(errCode(await answer(raw, s.publicKey)), 'REPLAYED');
  assert.deepEqual((await b.client.trustPending()).incoming, [], 'a rejected request is not revived by a replay');

  // Wrong key: mallory signs an approval in b's name.
  await a.client.trustRequest(rb.address);
  const stmt = JSON.stringify({
    method: 'trust_approve',
    params: { from: ra.address },
    key: b.identity.publicKey.toString('base64'),
    server: s.publicKey.toString('base64'),
    ts: Date.now(),
    nonce: newNonce(),
    cookie,
  });
  raw.sendRaw(rawPacket({ id: 'f1', stmt, sig: sign(Buffer.from(stmt), mallory.secretKey).toString('base64') }));
  assert.equal(errCode(await answer(raw, s.publicKey)), 'BAD_SIGNATURE');
  // Mallory's own (registered) key cannot approve a request addressed to b.
  const m = await udpPeer(s.port, { identity: mallory });
  t.after(() => m.close());
  await m.client.register({ email: 'm@example.com' });
  await assert.rejects(m.client.trustApprove(ra.address), code('NOT_FOUND'));
  assert.equal(await store.getTrustPair(parseAddress(ra.address), parseAddress(rb.address)), undefined);
  assert.equal((await b.client.trustPending()).incoming.length, 1, 'the genuine request is still pending');

  // A genuine approval replayed after a revoke does not bring the pair back.
  const approve = buildRequest(b.identity, s.publicKey, 'trust_approve', { from: ra.address }, Date.now(), cookie);
  raw.sendRaw(approve.packet);
  assert.ok((await answer(raw, s.publicKey)).ok);
  await a.client.trustRevoke(rb.address);
  const aenv = JSON.parse(approve.packet.subarray(1).toString());
  raw.sendRaw(rawPacket({ ...aenv, id: 'again' }));
  assert.equal(errCode(await answer(raw, s.publicKey)), 'REPLAYED');
  assert.deepEqual((await a.client.trustList()).trusted, []);
});

test('trust_request is rate-limited per node, with a hint', async (t) => {
  const s = await startServer({ trustRequestRate: { perSec: 0.01, burst: 3 } });
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  const c = await udpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close(), c.close()]));
  await a.client.register({ email: 'a@example.com' });
  const rb = await b.client.register({ email: 'b@example.com' });
  await c.client.register({ email: 'c@example.com' });
  for (let i = 0; i < 3; i++) await a.client.trustRequest(rb.address);
  await assert.rejects(a.client.trustRequest(rb.address), (e: PilotError) => {
    assert.equal(e.code, 'RATE_LIMITED');
    assert.match(e.hint ?? '', /wait \d+ s/);
    return true;
  });
  // Probing unknown addresses costs tokens too.
  await assert.rejects(a.client.trustRequest('0:0000.0000.0063'), code('RATE_LIMITED'));
  // Per node: another node is not affected.
  assert.deepEqual(await c.client.trustRequest(rb.address), { status: 'pending' });
});

test('visibility: private nodes reveal themselves only to themselves and trusted peers', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const priv = await udpPeer(s.port);
  const untrusted = await udpPeer(s.port);
  const trusted = await tcpPeer(s.port);
  const pub = await udpPeer(s.port);
  t.after(() => Promise.all([priv.close(), untrusted.close(), trusted.close(), pub.close()]));
  const rp = await priv.client.register({ email: 'p@example.com', hostname: 'hidden', lanEndpoints: ['10.0.0.5:5000'] });
  assert.equal(rp.public, false, 'private is the default');
  await untrusted.client.register({ email: 'u@example.com' });
  const rt = await trusted.client.register({ email: 't@example.com' });
  const ro = await pub.client.register({ email: 'o@example.com', hostname: 'open', public: true });
  await makeTrust(trusted, rt.address, priv, rp.address);
  const keyB64 = priv.identity.publicKey.toString('base64');

  // Untrusted: no hostname resolution, same answer as a name that does not exist.
  const nameErr = await untrusted.client.resolve({ hostname: 'hidden' }).catch((e: PilotError) => e);
  const noneErr = await untrusted.client.resolve({ hostname: 'nobody' }).catch((e: PilotError) => e);
  assert.ok(nameErr instanceof PilotError && noneErr instanceof PilotError);
  assert.equal(nameErr.code, 'NOT_FOUND');
  assert.equal(nameErr.hint, noneErr.hint);
  // By address or key: the key only.
  for (const q of [{ address: rp.address }, { publicKey: keyB64 }]) {
    const r = await untrusted.client.resolve(q);
    assert.deepEqual(
      { ...r, observed: '' },
      { address: rp.address, publicKey: keyB64, hostname: null, public: false, endpoints: [], online: false, lastSeen: 0, observed: '' },
    );
  }
  // Trusted peer and the node itself: everything.
  for (const who of [trusted, priv]) {
    for (const q of [{ hostname: 'hidden' }, { address: rp.address }, { publicKey: keyB64 }]) {
      const r = await who.client.resolve(q);
      assert.equal(r.hostname, 'hidden');
      assert.equal(r.online, true);
      assert.deepEqual(r.endpoints, [`127.0.0.1:${priv.localPort}`, '10.0.0.5:5000']);
    }
  }
  // Public nodes: anyone registered.
  for (const who of [untrusted, priv, trusted]) {
    const r = await who.client.resolve({ hostname: 'open' });
    assert.equal(r.address, ro.address);
    assert.equal(r.online, true);
    assert.deepEqual(r.endpoints, [`127.0.0.1:${pub.localPort}`]);
  }
  // Revoked: back to key-only.
  await priv.client.trustRevoke(rt.address);
  await assert.rejects(trusted.client.resolve({ hostname: 'hidden' }), code('NOT_FOUND'));
  assert.deepEqual((await trusted.client.resolve({ address: rp.address })).endpoints, []);
  // Going public opens it to everyone.
  await priv.client.setVisibility(true);
  assert.equal((await untrusted.client.resolve({ hostname: 'hidden' })).online, true);
});

test('long reasons: pushes and pending lists always fit one packet, paging long lists', async (t) => {
  const s = await startServer({ trustRequestRate: { perSec: 100, burst: 1000 } });
  t.after(() => s.close());
  const target = await udpPeer(s.port);
  t.after(() => target.close());
  const rt = await target.client.register({ email: 't@example.com', hostname: 'x'.repeat(63) });
  const pt = pushes(target);
  const reasons = ['x'.repeat(256), 'é'.repeat(256), '😀'.repeat(128), '"'.repeat(150), '\\'.repeat(150)];
  const senders: Peer[] = [];
  for (let i = 0; i < 12; i++) {
    const p = i % 2 ? await tcpPeer(s.port) : await udpPeer(s.port);
    senders.push(p);
    await p.client.register({ email: `s${i}@example.com`, hostname: `${'s'.repeat(60)}-${i}` });
  }
  t.after(() => Promise.all(senders.map((p) => p.close())));
  for (let i = 0; i < senders.length; i++) {
    const reason = reasons[i % reasons.length]!;
    assert.deepEqual(await senders[i]!.client.trustRequest(rt.address, reason), { status: 'pending' });
    const push = await pt.wait('trust_request');
    const got = push.reason as string;
    assert.ok(got === reason || (got.endsWith('…') && reason.startsWith(got.slice(0, -1))), 'whole, or cut with an ellipsis');
  }
  const first = await target.client.request<{ incoming: unknown[]; more: boolean }>('trust_pending', {});
  assert.equal(first.more, true, 'one packet cannot hold them all');
  assert.ok(first.incoming.length >= 1 && first.incoming.length < 12);
  const pend = await target.client.trustPending();
  assert.equal(pend.incoming.length, 12, 'paged through every request');
  assert.ok(
    pend.incoming.some((x) => x.reason?.endsWith('…')),
    'an oversized reason was cut to fit',
  );
  assert.equal(new Set(pend.incoming.map((x) => x.from)).size, 12);
  // The outgoing side and trust lists page as well.
  for (const p of senders.slice(0, 6)) assert.equal((await p.client.trustPending()).outgoing.length, 1);
  for (let i = 0; i < senders.length; i++) {
    const r = await senders[i]!.client.register({ email: `s${i}@example.com` });
    await target.client.trustApprove(r.address);
  }
  const list = await target.client.trustList();
  assert.equal(list.trusted.length, 12);
  assert.deepEqual(await target.client.trustPending(), { incoming: [], outgoing: [] });
});
