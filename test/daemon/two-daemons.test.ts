// Two real daemons (started by the real pilotctl) and a real rendezvous on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { IpcClient, openPipe } from '../../src/ipc/client.ts';

let rdv: Rendezvous;
let work: string;
let a: Agent;
let b: Agent;

before(async () => {
  work = tmpDir();
  rdv = await startRendezvous();
  a = new Agent('alpha', work);
  b = new Agent('beta', work);
  await a.start(['--registry', rdv.addr, '--email', 'a@example.com', '--hostname', 'agent-alpha', '--listen', '127.0.0.1:0']);
  await b.start(['--registry', rdv.addr, '--email', 'b@example.com', '--hostname', 'agent-beta', '--listen', '127.0.0.1:0']);
  // zero trust: nothing passes before both sides agreed
  assert.equal((await b.ctl(['handshake', a.address, 'tests'])).code, 0);
  const ap = await a.ctl(['approve', b.address]);
  assert.equal(ap.code, 0, ap.stderr);
});

after(async () => {
  await a?.stop();
  await b?.stop();
  await rdv?.kill();
});

test('addresses are allocated and hostnames resolve', async () => {
  assert.match(a.address, /^0:0000\.[0-9A-F]{4}\.[0-9A-F]{4}$/);
  assert.notEqual(a.address, b.address);
  const r = await b.ctl(['find', 'agent-alpha']); // private, but b is trusted
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.data.address, a.address);
});

test('ping crosses the encrypted session and reports RTT and path', async () => {
  const r = await b.ctl(['ping', 'agent-alpha', '--count', '3', '--interval', '50ms']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.data.received, 3);
  assert.ok(r.json.data.avgMs > 0 && r.json.data.avgMs < 500, `avg ${r.json.data.avgMs}`);
  assert.match(r.json.data.path, /^direct 127\.0\.0\.1:\d+$/);
  const peers = await b.ctl(['peers']);
  assert.equal(peers.json.data.peers[0].address, a.address);
});

test('a 50 MiB stream arrives intact while datagrams flow', async () => {
  const size = 50 * 1024 * 1024;
  const listener = new IpcClient(a.socket);
  const gotConn = new Promise<string>((resolve) => {
    void listener
      .call('listen', { port: 5000 }, (event, data) => {
        if (event === 'connection') resolve((data as { id: string }).id);
      })
      .catch(() => {});
  });
  // wait for the listener to be registered
  await new Promise((r) => setTimeout(r, 200));
  const receiver = new IpcClient(a.socket);
  const dgrams: string[] = [];
  const recvDone = receiver
    .call('recv', { port: 5001, count: 0, timeoutMs: 0 }, (_e, d) => dgrams.push((d as { data: string }).data))
    .catch(() => ({ received: -1 }));
  await new Promise((r) => setTimeout(r, 100));

  const { socket: out } = await openPipe('dial', { target: 'agent-alpha', port: 5000 }, b.socket);
  const id = await gotConn;
  const { socket: inc } = await openPipe('accept', { id }, a.socket);

  const sender = new IpcClient(b.socket);
  let dgSent = 0;
  const dgTimer = setInterval(() => {
    dgSent++;
    void sender.call('send', { target: 'agent-alpha', port: 5001, data: `dg-${dgSent}` }).catch(() => {});
  }, 20);

  const hashIn = crypto.createHash('sha256');
  let received = 0;
  const readDone = new Promise<void>((resolve, reject) => {
    inc.on('data', (c: Buffer) => {
      received += c.length;
      hashIn.update(c);
    });
    inc.on('end', () => resolve());
    inc.on('error', reject);
    inc.resume();
  });
  const hashOut = crypto.createHash('sha256');
  const block = crypto.randomBytes(256 * 1024);
  for (let sent = 0; sent < size; sent += block.length) {
    const chunk = crypto.randomBytes(16);
    block.set(chunk, 0); // every block differs a little
    hashOut.update(block);
    if (!out.write(Buffer.from(block))) await new Promise((r) => out.once('drain', r));
  }
  out.end();
  await readDone;
  clearInterval(dgTimer);
  assert.equal(received, size);
  assert.equal(hashIn.digest('hex'), hashOut.digest('hex'));
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(dgrams.length > 0 && dgSent > 0, `datagrams: ${dgrams.length} of ${dgSent}`);
  assert.ok(dgrams.every((d) => /^dg-\d+$/.test(d)));
  inc.destroy();
  out.destroy();
  listener.close();
  receiver.close();
  sender.close();
  void recvDone;
});

test('connect to a port nobody listens on is refused with a code', async () => {
  const r = await b.ctl(['connect', 'agent-alpha', '4444', '--message', 'hi']);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'CONNECTION_REFUSED');
});

test('garbage, plaintext and forged packets on the UDP port are dropped and counted', async () => {
  const info = await a.ctl(['info']);
  const stats0 = await new IpcClient(a.socket).call('stats');
  const [host, port] = [info.json.data.observed.split(':')[0], Number(info.json.data.observed.split(':')[1])];
  const sock = dgram.createSocket('udp4');
  const send = (b: Buffer): Promise<void> => new Promise((r) => sock.send(b, port, host, () => r()));
  await send(Buffer.alloc(0));
  await send(Buffer.from('GET / HTTP/1.1\r\n\r\n')); // plaintext
  await send(crypto.randomBytes(1200));
  const forged = Buffer.alloc(13 + 64);
  forged[0] = 0x12; // a Data packet for a session that does not exist
  forged.writeUInt32BE(0xdeadbeef, 1);
  await send(forged);
  const hs = Buffer.concat([Buffer.from([0x10]), crypto.randomBytes(100)]); // bogus handshake
  await send(hs);
  await send(Buffer.from([0x12, 1])); // truncated
  sock.close();
  await new Promise((r) => setTimeout(r, 200));
  const c = new IpcClient(a.socket);
  const stats1 = await c.call('stats');
  c.close();
  const drops = (s: any): number =>
    s.daemon.garbage +
    Object.entries(s.sessions)
      .filter(([k]) => k.startsWith('drop'))
      .reduce((n, [, v]) => n + (v as number), 0);
  assert.ok(drops(stats1) - drops(stats0) >= 5, `drops before ${JSON.stringify(stats0)} after ${JSON.stringify(stats1)}`);
  // and the daemon still works
  const r = await b.ctl(['ping', 'agent-alpha', '--count', '1']);
  assert.equal(r.code, 0, r.stderr);
});

test('a restarted daemon keeps its address; its peer recovers without operator action', async () => {
  const before = a.address;
  a.kill9();
  await new Promise((r) => setTimeout(r, 200));
  await a.start([]); // no flags: the saved config is enough
  assert.equal(a.address, before);
  // beta still has a session with the old alpha; it must notice and re-handshake
  const r = await b.ctl(['ping', 'agent-alpha', '--count', '3', '--interval', '300ms', '--timeout', '5s']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.json.data.received >= 2, JSON.stringify(r.json.data));
});

test('bad targets and an unreachable rendezvous give clear coded errors', async () => {
  const r1 = await b.ctl(['ping', '0:0000.0000.00ZZ']);
  assert.equal(r1.code, 2, 'a malformed target is a value error, refused before the daemon is asked');
  assert.equal(r1.json.code, 'BAD_ADDRESS');
  const r2 = await b.ctl(['ping', 'no-such-agent', '--count', '1']);
  assert.equal(r2.code, 1);
  assert.equal(r2.json.code, 'NOT_FOUND');
  const lonely = new Agent('lonely', work);
  const r3 = await lonely.ctl(['daemon', 'start', '--registry', '127.0.0.1:1', '--email', 'x@example.com']);
  assert.equal(r3.code, 1);
  assert.match(r3.json.code, /UNREACHABLE|TIMEOUT/);
  const r4 = await b.ctl(['ping']);
  assert.equal(r4.code, 2);
});
