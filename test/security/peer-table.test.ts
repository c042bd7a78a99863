// Issue 15, hole 7 (daemon side): every handshake to a public daemon left a
// peer (session, connection, path state) it never forgot: 3,000 throwaway keys
// took its RSS from 120 to 285 MB. Untrusted peers are now forgotten when idle
// (untrustedIdleMs) and at most maxUntrustedPeers are kept (least recently
// active evicted first); a trusted peer is never evicted. Real rendezvous, real
// daemon, real handshakes from throwaway identities registered at the rendezvous.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import * as v from 'valibot';
import { DaemonConfigSchema, saveConfig } from '../../src/daemon/config.ts';

const KEYS = 200;
const CAP = 60;
const IDLE_MS = 6000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function peers(a: Agent): Promise<string[]> {
  return ((await a.ipc('peers')).peers as { address: string }[]).map((p) => p.address);
}

test('throwaway keys that handshake a public daemon are forgotten when idle, capped meanwhile; a trusted peer stays', { timeout: 120_000 }, async () => {
  const work = tmpDir('pilot-peertable-');
  // The swarm stands for many attackers: one source here, so the per-source limits on new
  // identities (rendezvous) and on handshakes (daemon) are lifted; they are tested elsewhere.
  const rdv = await startRendezvous({
    args: ['--registration-burst', '1000000', '--registration-rate', '1000000', '--unregistered-rate', '1000000', '--unregistered-per-source', '1000000'],
  });
  const pub = new Agent('pt-public', work);
  const friend = new Agent('pt-friend', work);
  try {
    fs.mkdirSync(pub.home, { recursive: true, mode: 0o700 });
    saveConfig(
      pub.home,
      v.parse(DaemonConfigSchema, {
        registry: rdv.addr,
        email: 'pt-public@example.com',
        untrustedIdleMs: IDLE_MS,
        maxUntrustedPeers: CAP,
        handshakeSourceRate: 100_000,
        handshakeLoadRate: 100_000,
      }),
    );
    await pub.start(['--hostname', 'pt-public', '--public', '--listen', '127.0.0.1:0', '--socket', pub.socket]);
    await friend.start(['--registry', rdv.addr, '--email', 'pt-friend@example.com', '--hostname', 'pt-friend', '--listen', '127.0.0.1:0']);
    // a trusted peer with a session, then idle for the whole test
    await friend.ipc('handshake', { target: pub.address, reason: 'friends' });
    await pub.ipc('approve', { node: friend.address });
    for (let i = 0; i < 50 && !(await friend.ipc('trust')).trusted.some((t: { peer: string }) => t.peer === pub.address); i++) await sleep(100);
    const ping = await friend.ipc('ping', { target: pub.address, count: 1, timeoutMs: 3000 });
    assert.equal(ping.received, 1);
    const baseline = await peers(pub);
    assert.deepEqual(baseline, [friend.address]);
    const rssBefore = rssMb(pub.pid);

    const ep = fs.readFileSync(path.join(pub.home, 'udp-port'), 'utf8').trim();
    const swarm = await run(
      [process.execPath, path.join(ROOT, 'test/helpers/handshake-swarm.ts'), rdv.addr, pub.address, `127.0.0.1:${ep}`, String(KEYS), '30'],
      {},
      90_000,
    );
    assert.equal(swarm.code, 0, swarm.stderr);
    const s = JSON.parse(swarm.stdout.trim().split('\n').pop()!) as { established: number; ms: number };
    assert.ok(s.established >= KEYS * 0.8, `handshakes completed: ${s.established}/${KEYS}`);

    const during = await peers(pub);
    const rssDuring = rssMb(pub.pid);
    assert.ok(during.includes(friend.address), 'the trusted peer is not evicted for strangers');
    assert.ok(during.length <= CAP + 1, `peers right after the swarm: ${during.length} (cap ${CAP} untrusted + 1 trusted)`);

    // idle untrusted peers go; the trusted one stays
    let after = during;
    for (let i = 0; i < 100 && after.length > baseline.length; i++) {
      await sleep(200);
      after = await peers(pub);
    }
    const rssAfter = rssMb(pub.pid);
    console.log(
      JSON.stringify({
        keys: KEYS,
        established: s.established,
        swarmMs: s.ms,
        peers: { baseline: baseline.length, during: during.length, after: after.length },
        rssMb: { before: rssBefore, during: rssDuring, after: rssAfter },
      }),
    );
    assert.deepEqual(after, baseline, 'back to the trusted peer alone');
    const stats = (await pub.ipc('stats')).daemon;
    assert.ok(stats.untrustedEvicted >= s.established, `evicted: ${stats.untrustedEvicted}`);
    // and the trusted peer still answers on its session
    const again = await friend.ipc('ping', { target: pub.address, count: 1, timeoutMs: 3000 });
    assert.equal(again.received, 1);
  } finally {
    await Promise.all([pub.stop(), friend.stop()]);
    await rdv.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
