// Streams and datagrams between our ports and peers, through the real access
// policy and port table, with peers whose Connections write into a list (no
// session, no socket): what is refused, how, and what gets through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { PeerTraffic } from '../../src/daemon/peer-traffic.ts';
import { AccessPolicy } from '../../src/daemon/access-policy.ts';
import { PortTable, type IncomingStream, type DatagramIn } from '../../src/daemon/ports.ts';
import type { Peer } from '../../src/daemon/peer-table.ts';
import { ECHO_PORT } from '../../src/daemon/services/echo.ts';
import { Connection } from '../../src/transport/connection.ts';
import { addressKey, makeAddress, type Address } from '../../src/wire/address.ts';
import type { PilotError } from '../../src/util/errors.ts';

const TRUSTED = makeAddress(1, 2);
const PUBLIC = makeAddress(1, 3);
const STRANGER = makeAddress(1, 4);

function rig(opts: { amPublic?: boolean } = {}) {
  const sent: Buffer[] = [];
  const peers = new Map<number, Peer>();
  for (const [address, pub] of [
    [TRUSTED, false],
    [PUBLIC, true],
    [STRANGER, false],
  ] as const) {
    const conn = new Connection({ role: 'low', sendPacket: (p) => sent.push(Buffer.from(p)) });
    peers.set(addressKey(address), {
      key: addressKey(address),
      address,
      publicKey: Buffer.alloc(32),
      hostname: `agent-${address.node}`,
      candidates: [],
      public: pub,
      conn,
      resolvedAt: 0,
      lastSeen: 0,
    });
  }
  const counters = { refusedUntrusted: 0 };
  const access = new AccessPolicy({
    isTrusted: (a) => addressKey(a) === addressKey(TRUSTED),
    amPublic: () => opts.amPublic ?? false,
    peerIsPublic: (a) => peers.get(addressKey(a))?.public === true,
  });
  const ports = new PortTable();
  let lookups = 0;
  const traffic = new PeerTraffic({
    counters,
    access,
    ports,
    peerFor: async (t: string | Address) => {
      lookups++;
      const p = typeof t === 'string' ? undefined : peers.get(addressKey(t));
      if (!p) throw new Error('unknown');
      return p;
    },
    freshPeer: (t) => (typeof t === 'string' ? undefined : peers.get(addressKey(t))),
  });
  const close = (): void => {
    for (const p of peers.values()) p.conn.close();
  };
  return {
    traffic,
    sent,
    counters,
    ports,
    access,
    close,
    get lookups() {
      return lookups;
    },
  };
}

function fakeStream(localPort: number): IncomingStream {
  return Object.assign(new PassThrough(), { localPort, remotePort: 50000 });
}

test('datagrams out: sent at once to a known peer; echo source, untrusted and oversized are refused with a code', async (t) => {
  const r = rig();
  t.after(r.close);
  const p = r.traffic.sendDatagram(TRUSTED, 5000, 5001, Buffer.from('hi'));
  assert.equal(r.sent.length, 1, 'sent before the promise settles');
  await p;
  assert.equal(r.lookups, 0);
  await assert.rejects(r.traffic.sendDatagram(TRUSTED, ECHO_PORT, 5001, Buffer.from('x')), (e: PilotError) => e.code === 'BAD_ARGUMENT');
  await assert.rejects(
    r.traffic.sendDatagram(STRANGER, 5000, 5001, Buffer.from('x')),
    (e: PilotError) => e.code === 'NOT_TRUSTED' && /pilotctl handshake agent-4/.test(e.hint ?? ''),
  );
  await assert.rejects(r.traffic.sendDatagram(TRUSTED, 5000, 5001, Buffer.alloc(5000)), (e: PilotError) => e.code === 'BAD_ARGUMENT');
  // A public node's echo port takes anyone's ping; the reply is let in because we asked.
  await r.traffic.sendDatagram(PUBLIC, 5000, ECHO_PORT, Buffer.from('ping'));
  assert.equal(r.access.pendingEchoRequests, 1);
  assert.equal(r.sent.length, 2);
});

test('echo replies skip the policy (they answer what it let in) and never throw', (t) => {
  const r = rig();
  t.after(r.close);
  r.traffic.replyDatagram(STRANGER, ECHO_PORT, 5000, Buffer.from('pong'));
  assert.equal(r.sent.length, 1);
  assert.doesNotThrow(() => r.traffic.replyDatagram(STRANGER, ECHO_PORT, 5000, Buffer.alloc(5000)));
});

test('datagrams in: an untrusted sender is counted and dropped; a trusted one reaches the port', (t) => {
  const r = rig();
  t.after(r.close);
  const got: DatagramIn[] = [];
  r.ports.onDatagram(6000, (dg) => got.push(dg));
  r.traffic.incomingDatagram(STRANGER, { srcPort: 1, dstPort: 6000, data: Buffer.from('no') });
  r.traffic.incomingDatagram(TRUSTED, { srcPort: 1, dstPort: 6000, data: Buffer.from('yes') });
  assert.equal(r.counters.refusedUntrusted, 1);
  assert.deepEqual(
    got.map((d) => d.data.toString()),
    ['yes'],
  );
});

test('streams in: untrusted refused (NOT_TRUSTED, counted), nobody listening refused, else to the listener', (t) => {
  const r = rig();
  t.after(r.close);
  const accepted: Address[] = [];
  r.ports.listen(7000, (_s, from) => accepted.push(from));
  const untrusted = fakeStream(7000);
  r.traffic.incomingStream(STRANGER, untrusted);
  assert.equal((untrusted.errored as PilotError | null)?.code, 'NOT_TRUSTED');
  assert.equal(r.counters.refusedUntrusted, 1);
  const nobody = fakeStream(7001);
  r.traffic.incomingStream(TRUSTED, nobody);
  assert.equal((nobody.errored as PilotError | null)?.code, 'CONNECTION_REFUSED');
  r.traffic.incomingStream(TRUSTED, fakeStream(7000));
  assert.deepEqual(accepted, [TRUSTED]);
});

test('dial: a trusted peer gets a stream from an ephemeral port; a stranger is refused, a public echo port is not', async (t) => {
  const r = rig();
  t.after(r.close);
  const s = await r.traffic.dial(TRUSTED, 8000);
  assert.equal(s.remotePort, 8000);
  assert.ok(s.localPort >= 49152);
  await assert.rejects(r.traffic.dial(STRANGER, 8000), (e: PilotError) => e.code === 'NOT_TRUSTED');
  const echo = await r.traffic.dial(PUBLIC, ECHO_PORT);
  assert.equal(echo.remotePort, ECHO_PORT);
  s.destroy();
  echo.destroy();
});

test('fleets: a listed co-member whose proof trails its packets is held a moment, then let in or refused', async () => {
  const member = makeAddress(0, 77);
  const state = { proven: false, pending: true };
  const counters = { refusedUntrusted: 0 };
  const access = new AccessPolicy({
    isTrusted: () => false,
    amPublic: () => false,
    peerIsPublic: () => false,
    coMemberMayReach: (a, port) => state.proven && a.node === member.node && port === 1000,
    coMemberProofPending: (a) => a.node === member.node && state.pending && !state.proven,
  });
  const ports = new PortTable();
  const got: DatagramIn[] = [];
  ports.onDatagram(1000, (dg) => got.push(dg));
  const traffic = new PeerTraffic({
    counters,
    access,
    ports,
    peerFor: async () => {
      throw new Error('unused');
    },
    freshPeer: () => undefined,
  });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // the proof arrives 150 ms after the datagram: delivered
  traffic.incomingDatagram(member, { srcPort: 5, dstPort: 1000, data: Buffer.from('a') });
  assert.equal(got.length, 0);
  await sleep(150);
  state.proven = true;
  await sleep(150);
  assert.equal(got.length, 1);
  assert.equal(counters.refusedUntrusted, 0);
  // proven, but the policy does not allow the port: refused without holding
  traffic.incomingDatagram(member, { srcPort: 5, dstPort: 2000, data: Buffer.from('b') });
  assert.equal(counters.refusedUntrusted, 1);
  // never proven: refused after the hold (about 1 s), counted once
  state.proven = false;
  traffic.incomingDatagram(member, { srcPort: 5, dstPort: 1000, data: Buffer.from('c') });
  await sleep(1300);
  assert.equal(got.length, 1);
  assert.equal(counters.refusedUntrusted, 2);
  // not listed at all: refused at once
  traffic.incomingDatagram(STRANGER, { srcPort: 5, dstPort: 1000, data: Buffer.from('d') });
  assert.equal(counters.refusedUntrusted, 3);
});
