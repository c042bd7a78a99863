// Issue 15, item 10 (handshake replay): copies of one message 1 must not make
// the daemon query the registry once per copy, nor open a session per copy.
// Real rendezvous, real daemons; the attacker is this process with a UDP socket.
// Lookups are counted at the rendezvous (registry_requests_total).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { Agent, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { IpcClient } from '../../src/ipc/client.ts';
import { generateIdentity, loadOrCreateIdentity } from '../../src/crypto/identity.ts';
import { parseAddress } from '../../src/wire/address.ts';
import { initPacket } from './handshake-packets.ts';

const COPIES = 100;
/** Lookups we accept per replayed message (the first one, plus room for a heartbeat of one of the two daemons in the window). */
const MAX_LOOKUPS = 3;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function registryRequests(http: string): Promise<number> {
  const body = await (await fetch(`http://${http}/metrics`)).text();
  const m = /^pilot_rendezvous_registry_requests_total (\d+)/m.exec(body);
  assert.ok(m, 'registry_requests_total is exported');
  return Number(m[1]);
}

async function sessionStats(socket: string): Promise<Record<string, number>> {
  const c = new IpcClient(socket);
  try {
    return ((await c.call('stats', {})) as { sessions: Record<string, number> }).sessions;
  } finally {
    c.close();
  }
}

test('a replayed message 1: bounded registry lookups, no session per copy', { timeout: 90_000 }, async () => {
  const work = tmpDir('pilot-replay-');
  const rdv = await startRendezvous({ args: ['--http', '127.0.0.1:0', '--alt-port', 'none'] });
  const victim = new Agent('victim', work);
  const alice = new Agent('alice', work);
  const sock = dgram.createSocket('udp4');
  try {
    // Public: takes a message 1 from anyone, so each one is checked against the registry.
    await victim.start(['--registry', rdv.addr, '--email', 'v@example.com', '--hostname', 'victim', '--public', '--listen', '127.0.0.1:0']);
    await alice.start(['--registry', rdv.addr, '--email', 'a@example.com', '--hostname', 'alice', '--listen', '127.0.0.1:0']);
    const info = (await victim.ctl(['info'])).json.data as { observed: string; publicKey: string };
    const [host, port] = [info.observed.slice(0, info.observed.lastIndexOf(':')), Number(info.observed.slice(info.observed.lastIndexOf(':') + 1))];
    const victimKey = Buffer.from(info.publicKey, 'base64');
    const aliceAddr = parseAddress(alice.address);
    const msg2s: Buffer[] = [];
    sock.on('message', (m) => {
      if (m[0] === 0x11) msg2s.push(m);
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const send = (pkt: Buffer): Promise<void> => new Promise((r) => sock.send(pkt, port, host, () => r()));

    // 1. Alice's own message 1 (as if captured on the wire), its copies racing the original.
    const aliceId = loadOrCreateIdentity(alice.home);
    const captured = await initPacket(aliceId, victimKey, { address: aliceAddr, bootId: crypto.randomBytes(8), timestamp: Date.now() });
    const before1 = await registryRequests(rdv.http!);
    const stats1 = await sessionStats(victim.socket);
    for (let i = 0; i < COPIES; i++) await send(captured);
    await sleep(1500);
    const lookups1 = (await registryRequests(rdv.http!)) - before1;
    const stats1b = await sessionStats(victim.socket);
    const responded1 = stats1b.handshakesResponded! - stats1.handshakesResponded!;
    console.log(`# ${COPIES} copies of a genuine message 1: ${lookups1} registry requests, ${responded1} message 2 sent (${msg2s.length} received)`);
    assert.ok(lookups1 <= MAX_LOOKUPS, `${COPIES} copies of one message 1 caused ${lookups1} registry requests (at most ${MAX_LOOKUPS} allowed)`);
    assert.equal(responded1, 1, 'one answer for the first copy, none for the replays');
    assert.equal(msg2s.length, 1);

    // 2. A message 1 with a key that does not belong to the address it claims
    // (alice's): refused every time; 100 copies spread over a second.
    const mallory = generateIdentity();
    const forged = await initPacket(mallory, victimKey, { address: aliceAddr, bootId: crypto.randomBytes(8), timestamp: Date.now() });
    const before2 = await registryRequests(rdv.http!);
    for (let i = 0; i < COPIES; i++) {
      await send(forged);
      await sleep(10);
    }
    await sleep(500);
    const lookups2 = (await registryRequests(rdv.http!)) - before2;
    const stats2 = await sessionStats(victim.socket);
    console.log(`# ${COPIES} copies of a message 1 with a forged address claim: ${lookups2} registry requests`);
    assert.ok(lookups2 <= MAX_LOOKUPS, `${COPIES} copies of a forged message 1 caused ${lookups2} registry requests (at most ${MAX_LOOKUPS} allowed)`);
    assert.equal(stats2.handshakesResponded, stats1b.handshakesResponded, 'no session for a forged claim');
    assert.equal(msg2s.length, 1);
  } finally {
    sock.close();
    await victim.stop();
    await alice.stop();
    await rdv.kill();
  }
});
