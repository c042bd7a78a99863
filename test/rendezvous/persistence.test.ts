// A registration survives kill -9 of a real pilot-rendezvous process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir, udpPeer } from './helpers.ts';

const root = path.join(import.meta.dirname, '..', '..');

async function spawnServer(dataDir: string): Promise<{ child: ChildProcess; port: number; key: Buffer }> {
  const child = spawn(
    path.join(root, 'node_modules/.bin/node'),
    [path.join(root, 'bin/pilot-rendezvous.js'), '--listen', '127.0.0.1:0', '--data', dataDir, '--log-level', 'warn'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line; stderr: ${err}`)), 10_000);
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /^listening udp\+tcp 127\.0\.0\.1:(\d+) key=([A-Za-z0-9+/=]{44})(?: alt=\d+)?$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), key: Buffer.from(m[2]!, 'base64') });
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

test('registration survives kill -9 of the server; the server key is kept', async () => {
  const dataDir = tmpDir();
  const s1 = await spawnServer(dataDir);
  const a = await udpPeer(s1.port, { serverKey: s1.key });
  const ra = await a.client.register({ email: 'a@example.com', hostname: 'durable', public: true });
  await a.close();
  await kill9(s1.child);

  assert.equal(fs.statSync(path.join(dataDir, 'server.key')).mode & 0o777, 0o600);
  const s2 = await spawnServer(dataDir);
  try {
    assert.deepEqual(s2.key, s1.key, 'same server key after restart');
    const b = await udpPeer(s2.port, { serverKey: s2.key });
    await b.client.register({ email: 'b@example.com' });
    const r = await b.client.resolve({ hostname: 'durable' });
    assert.equal(r.address, ra.address);
    assert.equal(r.public, true);
    assert.equal(r.online, false, 'liveness is not persisted');
    const a2 = await udpPeer(s2.port, { serverKey: s2.key, identity: a.identity });
    assert.equal((await a2.client.register({ email: 'a@example.com' })).address, ra.address);
    assert.equal((await b.client.register({ email: 'b@example.com' })).address, '0:0000.0000.0002', 'the id counter survived too');
    await a2.close();
    await b.close();
  } finally {
    await kill9(s2.child);
  }
});
