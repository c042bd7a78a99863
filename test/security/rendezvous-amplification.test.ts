// Hole 4 / "never amplify toward an unproven address", rendezvous side: every
// kind of request an unauthenticated party can send over UDP, sent with a
// victim's source address from an attacker namespace; the victim namespace
// counts what the rendezvous sends it with a plain UDP socket. Before return
// routability is proven (a cookie echoed from that address), the rendezvous
// must never send more bytes toward an address than it received from it (1x;
// QUIC RFC 9000 §8.1 allows 3x). Also measures what honest clients pay: the
// cookie round trip on first contact and after an address change only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient } from '../../src/registry/client.ts';
import { buildHello, buildRequest } from '../../src/registry/envelope.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { startRendezvous } from '../helpers/cluster.ts';
import { NsUdp } from './ns-udp.ts';
import { buildRrLab, deferrer, ownSpoofedAddress, RDV_IP, rrLabSupport } from './rr-lab.ts';
import { junkData, relaySend } from '../helpers/relay-packet.ts';

const support = rrLabSupport();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PORT = 9000;
const ALT = 9001;
const VICTIM_PORT = 7777;

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = process.hrtime.bigint();
  const r = await f();
  return [r, Number(process.hrtime.bigint() - t0) / 1e6];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

test('no unauthenticated UDP request makes the rendezvous send more toward a spoofed source than it received', {
  skip: support.ok ? false : support.reason,
  timeout: 60_000,
}, async (t) => {
  const defer = deferrer(t);
  const L = buildRrLab(['atk', 'vic']);
  defer(() => L.cleanup());
  ownSpoofedAddress(L, L.hosts.atk!.ns, L.hosts.vic!.ip);
  const rdv = await startRendezvous({ netns: L.rdv, listen: `${RDV_IP}:${PORT}`, args: ['--alt-port', String(ALT)] });
  defer(() => rdv.kill());
  const atk = new NsUdp(L.hosts.atk!.ns);
  const vic = new NsUdp(L.hosts.vic!.ns);
  defer(() => (atk.close(), vic.close()));
  const victim = await vic.bind(L.hosts.vic!.ip, VICTIM_PORT);
  const spoof = await atk.bind(L.hosts.vic!.ip, VICTIM_PORT);
  const real = await atk.bind(L.hosts.atk!.ip);

  // The attacker's own, honest-looking node from its real address.
  const me = generateIdentity();
  const sent: Buffer[] = [];
  const c = new RegistryClient({ identity: me, send: (p) => (sent.push(p), real.send(p, RDV_IP, PORT)), timeoutMs: 1000, retries: 4 });
  real.on('message', (pkt: Buffer) => c.handlePacket(pkt));
  defer(() => c.close());
  const hello = await c.hello();
  const serverKey = hello.serverKey;
  const myCookie = hello.cookie; // valid for the attacker's real address only
  const reg = await c.register({ email: 'mallory@example.com', public: true });
  await c.resolve({ publicKey: me.publicKey.toString('base64') });
  const captured = sent.at(-1)!; // a request the server executed: its answer is in the response cache

  const signed = (method: string, params: Record<string, unknown>, cookie?: string) => () =>
    buildRequest(me, serverKey, method, params, Date.now(), cookie).packet;
  const withStmt =
    (stmt: object, sig = 'A'.repeat(86) + '==') =>
    () =>
      Buffer.concat([Buffer.from([0x01]), Buffer.from(JSON.stringify({ id: 'x1', stmt: JSON.stringify(stmt), sig }))]);
  const nonce = () => Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString('base64');
  const kinds: { name: string; port: number; make: () => Buffer }[] = [
    { name: 'hello (padded, as clients send it)', port: PORT, make: () => buildHello().packet },
    {
      name: 'hello (unpadded)',
      port: PORT,
      make: () => Buffer.concat([Buffer.from([0x01]), Buffer.from(JSON.stringify({ id: '1', stmt: JSON.stringify({ method: 'hello', nonce: nonce() }) }))]),
    },
    { name: 'hello on the alt beacon port', port: ALT, make: () => buildHello().packet },
    { name: 'register, no cookie', port: PORT, make: signed('register', { email: 'x@example.com', public: true }) },
    { name: 'heartbeat, cookie of another address', port: PORT, make: signed('heartbeat', {}, myCookie) },
    { name: 'resolve, no cookie', port: PORT, make: signed('resolve', { address: reg.address }) },
    { name: 'trust_request, no cookie', port: PORT, make: signed('trust_request', { to: reg.address }) },
    { name: 'trust_list, no cookie', port: PORT, make: signed('trust_list', {}) },
    {
      name: 'bad signature',
      port: PORT,
      make: withStmt({
        method: 'heartbeat',
        params: {},
        key: me.publicKey.toString('base64'),
        server: serverKey.toString('base64'),
        ts: Date.now(),
        nonce: nonce(),
      }),
    },
    { name: 'malformed statement with a nonce', port: PORT, make: withStmt({ method: 'heartbeat', params: 'x'.repeat(10), nonce: nonce() }) },
    { name: 'replayed executed request (response cache)', port: PORT, make: () => captured },
    { name: 'RelaySend from an unregistered source', port: PORT, make: () => relaySend(reg.address, junkData(1000)) },
    { name: 'garbage', port: PORT, make: () => Buffer.alloc(300, 0x55) },
  ];

  const rows: { kind: string; out: number; in: number; ratio: number }[] = [];
  for (const k of kinds) {
    const in0 = victim.bytesIn;
    const out0 = spoof.bytesOut;
    for (let i = 0; i < 5; i++) spoof.send(k.make(), RDV_IP, k.port);
    await sleep(500);
    const got = victim.bytesIn - in0;
    const gave = spoof.bytesOut - out0;
    rows.push({ kind: k.name, out: gave, in: got, ratio: Math.round((got / gave) * 1000) / 1000 });
  }
  await sleep(500); // late answers still count toward the total below
  t.diagnostic(`bytes toward the spoofed victim per request type: ${JSON.stringify(rows)}`);
  for (const r of rows) assert.ok(r.in <= r.out, `${r.kind}: the rendezvous sent ${r.in} bytes toward the unproven victim for ${r.out} bytes received from it`);
  assert.ok(victim.bytesIn <= spoof.bytesOut, `total: ${victim.bytesIn} bytes sent toward the victim for ${spoof.bytesOut} received`);
  // And nothing the victim got is more than a hello answer or a cookie reply.
  assert.ok(victim.packetsIn <= spoof.packetsOut);

  // Honest clients still work, and only pay the cookie round trip on first
  // contact (no hello before: pinned key, no cookie) or an address change.
  const fresh = await atk.bind(L.hosts.atk!.ip);
  let via = fresh; // the client's current source socket: swapped below to act out a NAT rebinding
  const cold = new RegistryClient({ identity: generateIdentity(), serverKey, send: (p) => via.send(p, RDV_IP, PORT), timeoutMs: 1000, retries: 4 });
  fresh.on('message', (pkt: Buffer) => cold.handlePacket(pkt));
  defer(() => cold.close());
  const [, coldMs] = await timed(() => cold.register({ email: 'cold@example.com' }));
  const warm: number[] = [];
  for (let i = 0; i < 15; i++) warm.push((await timed(() => cold.heartbeat()))[1]);
  // NAT rebinding: same client, new source port; the old cookie no longer fits.
  const moved = await atk.bind(L.hosts.atk!.ip);
  moved.on('message', (pkt: Buffer) => cold.handlePacket(pkt));
  via = moved;
  const [hb, movedMs] = await timed(() => cold.heartbeat());
  assert.equal(hb.observed, `${L.hosts.atk!.ip}:${moved.port}`, 'the link moved once the new address echoed its cookie');
  const after: number[] = [];
  for (let i = 0; i < 15; i++) after.push((await timed(() => cold.heartbeat()))[1]);
  t.diagnostic(
    `honest latency ms: first register without hello ${coldMs.toFixed(2)}, heartbeat median ${median(warm).toFixed(2)}, first heartbeat after rebinding ${movedMs.toFixed(2)}, heartbeat median after ${median(after).toFixed(2)}`,
  );
});
