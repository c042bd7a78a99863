// `untrust` must cut a peer at once even when the rendezvous does not answer: the
// local revocation comes first, and the registry is told on a later sync. Before,
// untrust asked the registry first and, with the rendezvous unreachable, failed and
// left the peer trusted. Real rendezvous (stopped with SIGSTOP), real daemons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, startRendezvous, tmpDir } from '../helpers/cluster.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('untrust with the rendezvous unreachable cuts the peer at once; the registry learns it once it answers again', { timeout: 180_000 }, async () => {
  const work = tmpDir('pilot-untrust-offline-');
  const rdv = await startRendezvous();
  const a = new Agent('uo-a', work);
  const b = new Agent('uo-b', work);
  try {
    await a.start(['--registry', rdv.addr, '--email', 'uo-a@example.com', '--hostname', 'uo-a', '--listen', '127.0.0.1:0']);
    await b.start(['--registry', rdv.addr, '--email', 'uo-b@example.com', '--hostname', 'uo-b', '--listen', '127.0.0.1:0']);
    assert.equal((await a.ctl(['handshake', b.address, 'test'])).code, 0);
    const ap = await b.ctl(['approve', a.address]);
    assert.equal(ap.code, 0, ap.stderr);
    const before = await a.ctl(['ping', b.address, '--count', '1']);
    assert.equal(before.code, 0, before.stderr);

    rdv.proc.kill('SIGSTOP'); // the rendezvous stops answering
    const un = await b.ctl(['untrust', a.address], 60_000);
    assert.equal(un.code, 0, `untrust with the rendezvous down: ${un.stderr}`);
    assert.equal(un.json.data.status, 'revoked-locally');
    // a can no longer reach b: its ping is refused or unanswered
    const during = await a.ctl(['ping', b.address, '--count', '1', '--timeout', '3'], 30_000);
    assert.notEqual(during.code, 0, 'the revoked peer still got an echo answer');
    const trustB = await b.ctl(['trust']);
    assert.ok(!JSON.stringify(trustB.json.data).includes(a.address), 'b no longer lists a as trusted');

    rdv.proc.kill('SIGCONT');
    // the next sync (heartbeat, every 20 s) tells the registry: a's view follows
    let aTrusts = true;
    for (let i = 0; i < 60 && aTrusts; i++) {
      await sleep(1000);
      const t = await a.ctl(['trust']);
      aTrusts = JSON.stringify(t.json?.data ?? '').includes(b.address);
    }
    assert.equal(aTrusts, false, 'the registry never learned the revocation');
    // and b's sync did not bring a back
    const trustB2 = await b.ctl(['trust']);
    assert.ok(!JSON.stringify(trustB2.json.data).includes(a.address), 'a came back after the sync');
  } finally {
    rdv.proc.kill('SIGCONT');
    await Promise.all([a.stop(), b.stop()]);
    await rdv.kill();
  }
});
