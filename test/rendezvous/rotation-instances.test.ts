// Key rotation across two rendezvous processes sharing one PostgreSQL (the store is the one
// source of truth): a node at instance 1 rotates; its trusted peer at instance 2 hears of it
// (the push crosses instances), sees the new key, and pings it at once with no new approval;
// the old key is refused at both instances.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { pgSkipReason, startPostgres } from '../helpers/postgres.ts';
import { readIdentityFile } from '../../src/crypto/identity.ts';
import { udpPeer } from './helpers.ts';
import { PilotError } from '../../src/util/errors.ts';

const pgSkip = pgSkipReason();

test('rotation at instance 1 is seen at instance 2: new key resolved, peer pings at once, old key refused everywhere', {
  skip: pgSkip,
  timeout: 120_000,
}, async () => {
  const pg = startPostgres();
  const work = tmpDir('pilot-rot-multi-');
  const rdvs: Rendezvous[] = [];
  const agents: Agent[] = [];
  try {
    for (const n of [1, 2]) rdvs.push(await startRendezvous({ dataDir: path.join(work, `rdv${n}`), args: ['--store', pg.url] }));
    const [r1, r2] = rdvs as [Rendezvous, Rendezvous];
    const a = new Agent('alpha', work);
    const b = new Agent('beta', work);
    agents.push(a, b);
    await a.start(['--registry', r1.addr, '--email', 'a@example.com', '--hostname', 'alpha', '--listen', '127.0.0.1:0']);
    await b.start(['--registry', r2.addr, '--email', 'b@example.com', '--hostname', 'beta', '--listen', '127.0.0.1:0']);
    assert.equal((await b.ctl(['handshake', a.address, 'tests'])).code, 0);
    assert.equal((await a.ctl(['approve', b.address])).code, 0);
    let p = await b.ctl(['ping', a.address, '--count', '1', '--timeout', '3s']);
    for (let i = 0; i < 10 && p.code !== 0; i++) p = await b.ctl(['ping', a.address, '--count', '1', '--timeout', '3s']);
    assert.equal(p.code, 0, p.stdout);

    const old = readIdentityFile(path.join(a.home, 'identity.json'));
    const r = await a.ctl(['rotate-key']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    // instance 2 answers with the new key (the store is shared)
    const f = await b.ctl(['find', 'alpha']);
    assert.equal(f.json.data.publicKey ?? f.json.data.key, r.json.data.publicKey, JSON.stringify(f.json.data));
    // the push crossed instances: b's daemon logged it
    const t0 = Date.now();
    while (!b.log().includes('peer rotated its key') && Date.now() - t0 < 10_000) await new Promise((res) => setTimeout(res, 100));
    assert.ok(b.log().includes('peer rotated its key'), 'b verified the key_rotated push from the other instance');
    let q = await b.ctl(['ping', a.address, '--count', '1', '--timeout', '3s']);
    for (let i = 0; i < 3 && q.code !== 0; i++) q = await b.ctl(['ping', a.address, '--count', '1', '--timeout', '3s']);
    assert.equal(q.code, 0, q.stdout);
    // the old key is refused at both instances
    for (const rdv of rdvs) {
      const thief = await udpPeer(Number(rdv.addr.split(':')[1]), { identity: old });
      try {
        await assert.rejects(thief.client.register({ email: 'x@example.com' }), (e: unknown) => e instanceof PilotError && e.code === 'KEY_ROTATED');
      } finally {
        await thief.close();
      }
    }
  } finally {
    await Promise.all(agents.map((x) => x.stop()));
    await Promise.all(rdvs.map((x) => x.kill()));
    pg.stop();
  }
});
