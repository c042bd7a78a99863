// An embedded SDK node with NO UDP socket and no local daemon (serverless and
// browser-like sandboxes, issue 19): startNode({ listen: 'none', uplink: 'wss' })
// joins over WebSocket-over-TLS to the rendezvous's --tls-listen (a test CA made
// at test time) and is a full member through the relay: trust, streams both
// ways, and a built-in service (messages) both ways with a daemon-backed node.
// The rendezvous and the daemon run as child processes, so every UDP socket in
// this process would be the embedded node's: the kernel's socket table says
// there is none.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { connect, startNode, type PilotNode } from '../../src/sdk/index.ts';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { hasOpenssl, makeTestCa, type TestCa } from '../helpers/test-ca.ts';
import { drain, pump } from './helpers.ts';

const skip = process.platform !== 'linux' ? 'reads /proc' : !hasOpenssl() ? 'needs the openssl CLI' : false;

/** UDP sockets this process holds, by the kernel's tables (/proc/net/udp{,6} inodes among our fds). */
function udpSocketsOfThisProcess(): number {
  const inodes = new Set<string>();
  for (const f of ['/proc/self/net/udp', '/proc/self/net/udp6']) {
    if (!fs.existsSync(f)) continue;
    for (const line of fs.readFileSync(f, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9) inodes.add(cols[9]!);
    }
  }
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
      if (m && inodes.has(m[1]!)) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

let ca: TestCa;
let rdv: Rendezvous;
let work: string;
let b: Agent;
let viaDaemon: PilotNode;
let node: PilotNode | undefined;
let wssPort: number;

before(async () => {
  if (skip) return;
  work = tmpDir('pilot-udpless-');
  ca = makeTestCa('pilot-sdk-ca', fs.mkdtempSync(path.join(work, 'ca-')));
  const pair = ca.issue('rv', ['localhost', '127.0.0.1']);
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  wssPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  rdv = await startRendezvous({ args: ['--tls-listen', `127.0.0.1:${wssPort}`, '--tls-cert', pair.cert, '--tls-key', pair.key] });
  b = new Agent('ul-daemon', work);
  await b.start(['--registry', rdv.addr, '--email', 'b@example.com', '--hostname', 'ul-daemon', '--listen', '127.0.0.1:0']);
  viaDaemon = await connect({ socket: b.socket });
});

after(async () => {
  await node?.close();
  await viaDaemon?.close();
  await b?.stop();
  await rdv?.kill();
  ca?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('an embedded node with no UDP socket joins over wss and is a full member through the relay', { skip, timeout: 120_000 }, async () => {
  // The count sees a UDP socket when there is one (so 0 below means something).
  const control = dgram.createSocket('udp4');
  await new Promise<void>((r) => control.bind(0, '127.0.0.1', () => r()));
  assert.equal(udpSocketsOfThisProcess(), 1, 'the socket table shows a bound UDP socket');
  await new Promise<void>((r) => control.close(() => r()));
  assert.equal(udpSocketsOfThisProcess(), 0);

  node = await startNode({
    home: path.join(work, 'ul-embedded'),
    registry: rdv.addr,
    email: 'ul@example.com',
    hostname: 'ul-embedded',
    listen: 'none',
    uplink: 'wss',
    wss: `wss://localhost:${wssPort}/pilot`,
    tlsCa: ca.caCert,
    logger: 'silent',
  });
  const info = await node.info();
  assert.equal(info.uplink, 'wss');
  assert.equal(udpSocketsOfThisProcess(), 0, 'no UDP socket after joining');

  // Trust, both ways.
  assert.equal((await node.handshake(b.address)).status, 'pending');
  assert.equal((await viaDaemon.approve(node.address)).peer, node.address);
  for (let i = 0; i < 50 && !(await node.trusted()).some((t) => t.peer === b.address && t.mutual); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(
    (await node.trusted()).some((t) => t.peer === b.address && t.mutual),
    'mutual trust',
  );

  // Streams both ways (4 MiB each, hashes checked).
  const size = 4 * 1024 * 1024;
  const srvE = await node.listen(6000, (s) => s.pipe(s));
  const srvD = await viaDaemon.listen(6001, (s) => s.pipe(s));
  try {
    const toEmbedded = await viaDaemon.dial(node.address, 6000);
    const toDaemon = await node.dial(b.address, 6001);
    const [s1, r1, s2, r2] = await Promise.all([pump(toEmbedded, size), drain(toEmbedded), pump(toDaemon, size), drain(toDaemon)]);
    assert.equal(r1.bytes, size);
    assert.equal(r1.sha256, s1);
    assert.equal(r2.bytes, size);
    assert.equal(r2.sha256, s2);
  } finally {
    await srvE.close();
    await srvD.close();
  }

  // A built-in service both ways (the messages inbox).
  await node.messages.send(b.address, 'from a node without UDP');
  await viaDaemon.messages.send(node.address, 'to a node without UDP');
  assert.ok((await viaDaemon.messages.inbox()).some((m) => m.from === node!.address));
  assert.ok((await node.messages.inbox()).some((m) => m.from === b.address));

  const peer = (await node.peers()).find((p) => p.address === b.address);
  assert.equal(peer?.pathType, 'relay');
  assert.equal(peer?.relay, 'wss');
  assert.equal(udpSocketsOfThisProcess(), 0, 'still no UDP socket');
});
