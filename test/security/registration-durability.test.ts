// Issue 15, item 10: an acknowledged registration survives kill -9 of the
// rendezvous. A real pilot-rendezvous process (SQLite store, WAL +
// synchronous=FULL, group commit) takes registrations from 400 clients on 8
// source addresses, a stream of them in flight, and is killed with SIGKILL
// mid-stream. Every registration a client got an answer for must then be in
// the database, with the address and hostname it was acknowledged with; the
// restarted rendezvous gives each key its address back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import dgram from 'node:dgram';
import { RegistryClient } from '../../src/registry/client.ts';
import { generateIdentity, type Identity } from '../../src/registry/signing.ts';
import { SqliteStore } from '../../src/rendezvous/store/sqlite-store.ts';
import { formatAddress } from '../../src/wire/address.ts';
import { startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { sleep } from '../rendezvous/helpers.ts';

interface Acked {
  identity: Identity;
  address: string;
  hostname: string | null;
}

test('durability: every acknowledged registration survives kill -9 of the rendezvous', { timeout: 120_000 }, async () => {
  const dataDir = tmpDir('pilot-durable-');
  const rdv = await startRendezvous({ dataDir, args: ['--alt-port', 'none'] });
  const socks: dgram.Socket[] = [];
  const clients: RegistryClient[] = [];
  const acked: Acked[] = [];
  let answeredAfterKill = 0;
  let killed = false;
  try {
    const ips = Array.from({ length: 8 }, (_, i) => `127.0.0.${60 + i}`);
    for (const ip of ips) {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, ip, () => r()));
      socks.push(s);
    }
    const N = 400;
    const ids = Array.from({ length: N }, () => generateIdentity());
    const probe = new RegistryClient({ identity: ids[0]!, timeoutMs: 1000, retries: 4, send: (p) => socks[0]!.send(p, rdv.port, '127.0.0.1') });
    socks[0]!.on('message', (m) => probe.handlePacket(m));
    const serverKey = (await probe.hello()).serverKey;
    probe.close();
    // One client per key, sharing its source's socket (each client takes only the answers to its own nonces).
    for (let i = 0; i < N; i++) {
      const sock = socks[i % socks.length]!;
      clients.push(new RegistryClient({ identity: ids[i]!, serverKey, timeoutMs: 1000, retries: 3, send: (p) => sock.send(p, rdv.port, '127.0.0.1') }));
    }
    for (const [k, s] of socks.entries()) {
      s.on('message', (m) => {
        for (let i = k; i < clients.length; i += socks.length) clients[i]!.handlePacket(m);
      });
    }

    // A stream of registrations, 8 at a time per source, until the kill stops answers.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < N && !killed) {
        const i = next++;
        try {
          const r = await clients[i]!.register({ email: `d${i}@example.com`, hostname: `durable-${i}` });
          if (killed) answeredAfterKill++;
          acked.push({ identity: ids[i]!, address: r.address, hostname: r.hostname });
        } catch {
          // no answer (the process is gone): not acknowledged, nothing to check
        }
      }
    };
    const workers = Array.from({ length: 64 }, () => worker());
    // Kill once a good share is acknowledged, with many still in flight.
    const deadline = Date.now() + 60_000;
    while (acked.length < 150 && Date.now() < deadline) await sleep(5);
    await rdv.kill('SIGKILL');
    killed = true;
    await Promise.all(workers);
    console.log(`${acked.length} registrations acknowledged before the kill (of ${N} sent or queued)`);
    assert.ok(acked.length >= 150 && acked.length < N, `the kill landed mid-stream (${acked.length} acknowledged)`);
    assert.equal(answeredAfterKill, 0);

    // What is on disk.
    const store = new SqliteStore(path.join(dataDir, 'registry.db'));
    try {
      const missing: string[] = [];
      for (const a of acked) {
        const rec = await store.getByKey(a.identity.publicKey);
        if (!rec || formatAddress(rec.address) !== a.address || rec.hostname !== a.hostname)
          missing.push(`${a.address} ${a.hostname} -> ${rec ? `${formatAddress(rec.address)} ${rec.hostname}` : 'absent'}`);
      }
      assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged registrations were lost`);
    } finally {
      await store.close();
    }

    // A restarted rendezvous on the same data gives the keys their addresses back.
    const again = await startRendezvous({ dataDir, args: ['--alt-port', 'none'] });
    try {
      for (const a of acked.slice(0, 20)) {
        const i = ids.indexOf(a.identity);
        const c = new RegistryClient({
          identity: a.identity,
          serverKey,
          timeoutMs: 1000,
          retries: 4,
          send: (p) => socks[i % socks.length]!.send(p, again.port, '127.0.0.1'),
        });
        clients[i] = c;
        assert.equal((await c.register({ email: `d${i}@example.com` })).address, a.address);
      }
    } finally {
      await again.kill();
    }
  } finally {
    await rdv.kill('SIGKILL');
    for (const c of clients) c.close();
    for (const s of socks) s.close();
  }
});
