// Hole 4: "relay to any address, and relay hijack". The relay binds a node to
// the source ip:port of its register/heartbeat, which the signature does not
// cover. Here an attacker namespace sends those with other machines' source
// addresses (it owns them as /32s; the router does no source filtering):
//  1. a spoofed register (fresh key) and a spoofed heartbeat (its own,
//     registered key) from a victim's address, then relays to those nodes at
//     full rate: nothing may reach the victim (it counts with a plain socket);
//  2. spoofed heartbeats from an honest public node's endpoint while another
//     real daemon pings that node through the relay: 5/5 must still answer.
// Return routability (cookies echoed from the source) is the fix.
import { test } from 'node:test';
import fs from 'node:fs';
import assert from 'node:assert/strict';
import { RegistryClient } from '../../src/registry/client.ts';
import { buildRequest } from '../../src/registry/envelope.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { Agent, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { NsUdp, type NsSocket } from './ns-udp.ts';
import { buildRrLab, deferrer, ownSpoofedAddress, RDV_IP, rrLabSupport } from './rr-lab.ts';
import { junkData, relaySend } from '../helpers/relay-packet.ts';

const support = rrLabSupport();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PORT = 9000;

function clientOn(sock: NsSocket, identity = generateIdentity()): RegistryClient {
  const c = new RegistryClient({ identity, send: (p) => sock.send(p, RDV_IP, PORT), timeoutMs: 1000, retries: 4 });
  sock.on('message', (pkt: Buffer) => c.handlePacket(pkt));
  return c;
}

const isRelayDeliver = (pkt: Buffer) => pkt[0] === 0x21;

test('spoofed register and heartbeat cannot point the relay at a victim', { skip: support.ok ? false : support.reason, timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const L = buildRrLab(['atk', 'vic']);
  defer(() => L.cleanup());
  ownSpoofedAddress(L, L.hosts.atk!.ns, L.hosts.vic!.ip);
  const rdv = await startRendezvous({ netns: L.rdv, listen: `${RDV_IP}:${PORT}` });
  defer(() => rdv.kill());
  const atk = new NsUdp(L.hosts.atk!.ns);
  const vic = new NsUdp(L.hosts.vic!.ns);
  defer(() => (atk.close(), vic.close()));
  const victim = await vic.bind(L.hosts.vic!.ip, 7777);
  let relayedToVictim = 0;
  victim.on('message', (pkt: Buffer) => void (isRelayDeliver(pkt) && relayedToVictim++));
  const spoof = await atk.bind(L.hosts.vic!.ip, 7777);

  // The attacker's sender node and a public "sink" node it really owns, both from its real address.
  const senderSock = await atk.bind(L.hosts.atk!.ip);
  const sender = clientOn(senderSock);
  const sinkSock = await atk.bind(L.hosts.atk!.ip);
  const sinkId = generateIdentity();
  const sink = clientOn(sinkSock, sinkId);
  defer(() => (sender.close(), sink.close()));
  const hello = await sender.hello();
  await sender.register({ email: 'sender@example.com' });
  const sinkReg = await sink.register({ email: 'sink@example.com', public: true });
  let sinkGot = 0;
  sinkSock.on('message', (pkt: Buffer) => void (isRelayDeliver(pkt) && sinkGot++));

  // (a) register a fresh public key from the victim's address; (b) move the
  // sink there with a heartbeat. Both echo the strongest cookie the attacker
  // can get: the one for its own address.
  const fresh = generateIdentity();
  for (let i = 0; i < 3; i++) {
    spoof.send(buildRequest(fresh, hello.serverKey, 'register', { email: 'fresh@example.com', public: true }, Date.now(), hello.cookie).packet, RDV_IP, PORT);
    spoof.send(buildRequest(sinkId, hello.serverKey, 'heartbeat', {}, Date.now(), hello.cookie).packet, RDV_IP, PORT);
    await sleep(100);
  }
  await sleep(300);
  const freshAddr = await sender.resolve({ publicKey: fresh.publicKey.toString('base64') }).then(
    (r) => r.address,
    () => undefined,
  );

  // Relay at full rate toward both (about 1 MB).
  const targets = [sinkReg.address, ...(freshAddr ? [freshAddr] : [])];
  for (let i = 0; i < 500; i++) {
    for (const dst of targets) senderSock.send(relaySend(dst, junkData(1000)), RDV_IP, PORT);
    // Small bursts: the counting sockets' receive buffers hold only ~90 such packets.
    if (i % 20 === 19) await sleep(30);
  }
  await sleep(1000);
  t.diagnostic(
    `victim received ${victim.packetsIn} packets / ${victim.bytesIn} bytes (${relayedToVictim} relayed) for ${spoof.packetsOut} spoofed packets / ${spoof.bytesOut} bytes; the sink got ${sinkGot} relayed packets; fresh key registered: ${freshAddr !== undefined}`,
  );
  assert.equal(relayedToVictim, 0, 'relayed traffic reached the victim');
  assert.ok(victim.bytesIn <= spoof.bytesOut, `the victim got ${victim.bytesIn} bytes for ${spoof.bytesOut} spoofed`);
  assert.equal(freshAddr, undefined, 'a register from an unproven address must not create a node');
  assert.ok(sinkGot >= 400, `the relay still delivers to the sink's real address (${sinkGot}/500)`);
});

test("spoofed heartbeats from a public node's endpoint do not steal its relayed traffic", {
  skip: support.ok ? false : support.reason,
  timeout: 90_000,
}, async (t) => {
  const defer = deferrer(t);
  const L = buildRrLab(['atk', 'pub', 'png']);
  defer(() => L.cleanup());
  const pub = L.hosts.pub!;
  ownSpoofedAddress(L, L.hosts.atk!.ns, pub.ip);
  const rdv = await startRendezvous({ netns: L.rdv, listen: `${RDV_IP}:${PORT}` });
  defer(() => rdv.kill());
  const work = tmpDir('pilot-sec-');
  const P = new Agent('pub', work, pub.ns);
  const Q = new Agent('png', work, L.hosts.png!.ns);
  defer(async () => {
    await Promise.all([P.stop(), Q.stop()]);
    fs.rmSync(work, { recursive: true, force: true });
  });
  await Promise.all([
    P.start(['--registry', `${RDV_IP}:${PORT}`, '--email', 'p@example.com', '--hostname', 'pub', '--public', '--listen', '0.0.0.0:4500']),
    Q.start(['--registry', `${RDV_IP}:${PORT}`, '--email', 'q@example.com', '--hostname', 'png', '--listen', '0.0.0.0:0']),
  ]);
  const baseline = await Q.ctl(['ping', P.address, '--count', '5', '--interval', '200ms', '--timeout', '3s']);
  assert.equal(baseline.json?.data?.received, 5, `no-attack baseline: ${baseline.stdout} ${baseline.stderr}`);

  // The attacker registers its own node, then keeps claiming P's endpoint.
  const atk = new NsUdp(L.hosts.atk!.ns);
  defer(() => atk.close());
  const me = generateIdentity();
  const c = clientOn(await atk.bind(L.hosts.atk!.ip), me);
  defer(() => c.close());
  const hello = await c.hello();
  await c.register({ email: 'mallory@example.com' });
  const spoof = await atk.bind(pub.ip, 4500);
  const flood = setInterval(() => spoof.send(buildRequest(me, hello.serverKey, 'heartbeat', {}, Date.now(), hello.cookie).packet, RDV_IP, PORT), 50);
  defer(() => clearInterval(flood));
  await sleep(300);
  const during = await Q.ctl(['ping', P.address, '--count', '5', '--interval', '200ms', '--timeout', '3s']);
  clearInterval(flood);
  t.diagnostic(
    `relayed pings to the public node: ${baseline.json.data.received}/5 before, ${during.json?.data?.received ?? 0}/5 during ${spoof.packetsOut} spoofed heartbeats (path ${during.json?.data?.path})`,
  );
  assert.equal(during.json?.data?.received, 5, `pings during the attack: ${during.stdout} ${during.stderr}`);
});
