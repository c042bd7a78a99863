// SDK streams against real daemons (started by the real pilotctl) on loopback:
// dial/listen, a 20 MiB echo, half-close both ways, backpressure with a reader
// that stops, and the PilotError codes a caller sees.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { connect, PilotError, type PilotNode, type PilotSocket } from '../../src/sdk/index.ts';
import type { Agent } from '../helpers/cluster.ts';
import { drain, pump, sleep, startTrustedPair, stopTrustedPair, trustPair, type Net } from './helpers.ts';

let net: Net;
let alpha: Agent;
let beta: Agent;
let na: PilotNode;
let nb: PilotNode;

before(async () => {
  ({ net, alpha, beta, na, nb } = await startTrustedPair('st'));
});

after(() => stopTrustedPair({ net, na, nb }));

const isCode = (code: string) => (e: unknown) => e instanceof PilotError && e.code === code;

test('connect() reports the node; a missing daemon is NO_DAEMON', async () => {
  assert.equal(na.mode, 'ipc');
  assert.equal(na.address, alpha.address);
  assert.equal(na.hostname, 'st-alpha');
  assert.equal((await nb.info()).address, beta.address);
  await assert.rejects(connect({ socket: path.join(net.work, 'nobody.sock') }), isCode('NO_DAEMON'));
});

test('dial/listen: a 20 MiB echo arrives intact both ways, with socket info', async () => {
  const srv = await na.listen(2000, (s) => s.pipe(s));
  try {
    let seen: PilotSocket | undefined;
    srv.once('connection', (s) => (seen = s));
    const t0 = performance.now();
    const s = await nb.dial('st-alpha', 2000);
    assert.equal(s.remoteAddress, alpha.address);
    assert.equal(s.remoteHostname, 'st-alpha');
    assert.equal(s.remotePort, 2000);
    assert.equal(s.localAddress, beta.address);
    const size = 20 * 1024 * 1024;
    const [sent, back] = await Promise.all([pump(s, size), drain(s)]);
    const secs = (performance.now() - t0) / 1000;
    assert.equal(back.bytes, size);
    assert.equal(back.sha256, sent);
    assert.equal(s.bytesWritten, size);
    assert.equal(s.bytesRead, size);
    assert.ok(seen, 'server saw the connection');
    assert.equal(seen.remoteAddress, beta.address);
    assert.equal(seen.localPort, 2000);
    assert.equal(seen.remotePort, s.localPort);
    console.log(`# 20 MiB echo over IPC: ${secs.toFixed(2)} s (${((2 * size) / 1e6 / secs).toFixed(1)} MB/s both directions)`);
  } finally {
    await srv.close();
  }
});

test('half-close: the dialer ends first and still reads the reply', async () => {
  const srv = await na.listen(2001, (s) => {
    void drain(s).then((got) => s.end(`got ${got.bytes} bytes`));
  });
  try {
    const s = await nb.dial('st-alpha', 2001);
    const reply = drain(s);
    s.end(Buffer.alloc(1 << 20, 7));
    await new Promise((r) => s.once('finish', r));
    const r = await reply;
    assert.equal(r.bytes, 'got 1048576 bytes'.length);
  } finally {
    await srv.close();
  }
});

test('half-close: the listener ends first and still reads what the dialer writes after', async () => {
  let got: Promise<{ bytes: number }> | undefined;
  const srv = await na.listen(2002, (s) => {
    got = drain(s);
    s.end('bye');
  });
  try {
    const s = await nb.dial('st-alpha', 2002);
    const greeting = await drain(s); // the listener's side ended...
    assert.equal(greeting.bytes, 3);
    assert.equal(s.writable, true); // ...ours is still open
    s.end(Buffer.alloc(300_000, 1));
    await new Promise((r) => s.once('close', r));
    assert.equal((await got!).bytes, 300_000);
  } finally {
    await srv.close();
  }
});

test('backpressure: a reader that stops reading stops the writer; nothing is lost', async () => {
  let server: PilotSocket | undefined;
  const srv = await na.listen(2003, (s) => (server = s)); // never reads (until resumed below)
  try {
    const s = await nb.dial('st-alpha', 2003);
    const block = Buffer.alloc(64 * 1024, 3);
    let written = 0;
    // write until write() says stop and no 'drain' comes for a second
    for (;;) {
      written += block.length;
      if (s.write(block)) continue;
      const drained = await Promise.race([new Promise<boolean>((r) => s.once('drain', () => r(true))), sleep(1000).then(() => false)]);
      if (!drained) break;
      assert.ok(written < 256 * 1024 * 1024, 'the writer was never stopped');
    }
    console.log(`# writer stalled after ${(written / 1048576).toFixed(1)} MiB buffered end to end`);
    assert.ok(written < 64 * 1024 * 1024, `stalled only after ${written} bytes`);
    assert.ok(server, 'the listener got the connection');
    const reader = drain(server);
    s.end();
    const r = await reader;
    assert.equal(r.bytes, written);
  } finally {
    await srv.close();
  }
});

test('errors carry codes: NOT_TRUSTED, CONNECTION_REFUSED, NOT_FOUND, BAD_ARGUMENT', async () => {
  const stranger = await net.agent('st-stranger');
  const ns = await connect({ socket: stranger.socket });
  try {
    await assert.rejects(ns.dial(alpha.address, 2000), isCode('NOT_TRUSTED'));
    await assert.rejects(nb.dial('st-alpha', 4999), isCode('CONNECTION_REFUSED'));
    await assert.rejects(nb.dial('no-such-agent', 80), isCode('NOT_FOUND'));
    await assert.rejects(nb.dial('st-alpha', 70000), isCode('BAD_ARGUMENT'));
    const srv = await na.listen(2004);
    await assert.rejects(na.listen(2004), isCode('BAD_ARGUMENT'));
    await srv.close(); // resolves once the daemon freed the port
    const again = await na.listen(2004);
    await again.close();
  } finally {
    await ns.close();
  }
});

test('a stream reset by the peer errors with CONNECTION_RESET', async () => {
  const srv = await na.listen(2005, (s) => {
    s.once('data', () => s.destroy());
  });
  try {
    const s = await nb.dial('st-alpha', 2005);
    const err = new Promise<Error>((resolve) => s.once('error', resolve));
    s.write('trigger');
    const e = await err;
    assert.ok(e instanceof PilotError, String(e));
    assert.equal(e.code, 'CONNECTION_RESET');
  } finally {
    await srv.close();
  }
});

test('dialing a trusted peer that is offline times out with TIMEOUT', async () => {
  const gamma = await net.agent('st-gamma');
  await trustPair(gamma, beta);
  await gamma.stop();
  const t0 = performance.now();
  await assert.rejects(nb.dial(gamma.address, 2000, { timeoutMs: 1500 }), isCode('TIMEOUT'));
  const ms = performance.now() - t0;
  assert.ok(ms >= 1400 && ms < 5000, `took ${ms} ms`);
});
