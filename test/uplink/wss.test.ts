// WebSocket over TLS to the rendezvous's --tls-listen: a test CA made at test
// time (openssl), a real TLS listener, real TcpUplinks. The certificate is
// verified like any HTTPS client's, and the rendezvous key is still pinned
// inside (TLS gets through middleboxes; it is not the trust root). Every bad
// certificate and a stalled handshake end in a coded error within the
// connect deadline, never a hang.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { RegistryClient } from '../../src/registry/client.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { PilotError } from '../../src/util/errors.ts';
import { TcpUplink } from '../../src/uplink/tcp-uplink.ts';
import { hasOpenssl, makeTestCa, type TestCa } from '../helpers/test-ca.ts';
import { startServer } from '../rendezvous/helpers.ts';
import { uplinkPeer, makeTrust, relaySend, innerPacket } from './helpers.ts';

const skip = hasOpenssl() ? false : 'needs the openssl CLI (apt-get install openssl)';

/** The first connect of a wss TcpUplink: resolves, or the coded error it rejected with, and how long it took. */
async function firstConnect(opts: ConstructorParameters<typeof TcpUplink>[0]): Promise<{ err?: PilotError; ms: number }> {
  const u = new TcpUplink({ backoff: { minMs: 50, maxMs: 500 }, ...opts });
  const t0 = Date.now();
  try {
    await u.connect();
    return { ms: Date.now() - t0 };
  } catch (err) {
    return { err: err as PilotError, ms: Date.now() - t0 };
  } finally {
    u.close();
  }
}

describe('wss uplink (TLS listener, certificate verification)', { skip, timeout: 60_000 }, () => {
  let ca: TestCa;
  let other: TestCa;
  let srv: Awaited<ReturnType<typeof startServer>>;
  let good: { cert: string; key: string };
  before(async () => {
    ca = makeTestCa('pilot-test-ca');
    other = makeTestCa('other-ca');
    good = ca.issue('rv', ['localhost', '127.0.0.1']);
    srv = await startServer({ tls: { host: '127.0.0.1', port: 0, certFile: good.cert, keyFile: good.key, watchMs: 0 } });
  });
  after(async () => {
    await srv?.close();
    ca?.cleanup();
    other?.cleanup();
  });

  test('registers and relays over wss with the test CA; the rendezvous key is still pinned inside TLS', async () => {
    const caPem = fs.readFileSync(ca.caCert);
    const a = await uplinkPeer(srv.tls!.port, 'wss', { ca: caPem });
    const b = await uplinkPeer(srv.tls!.port, 'wss', { host: 'localhost', ca: caPem });
    try {
      assert.match(a.uplink.describe(), /^wss wss:\/\/127\.0\.0\.1:\d+\/pilot$/);
      const hello = await a.client.hello();
      assert.deepEqual(hello.serverKey, srv.publicKey, 'the key inside TLS is the rendezvous key');
      const aAddr = (await a.client.register({ email: 'a@example.com' })).address;
      const bAddr = (await b.client.register({ email: 'b@example.com' })).address;
      await makeTrust(a, aAddr, b, bAddr);
      const inner = innerPacket(1000);
      assert.equal(a.uplink.send(relaySend(bAddr, inner)), true);
      const got = await b.nextPacket(0x21);
      assert.deepEqual(got.subarray(got.length - inner.length), inner, 'relayed over wss');
      assert.ok(srv.stats().websockets >= 2);
    } finally {
      a.close();
      b.close();
    }
    // A valid certificate does not make a different server key acceptable: the pin still decides.
    const up = new TcpUplink({ host: '127.0.0.1', port: srv.tls!.port, mode: 'wss', ca: caPem });
    await up.connect();
    const pinned = new RegistryClient({
      identity: generateIdentity(),
      send: (p) => void up.send(p),
      serverKey: generateIdentity().publicKey,
      timeoutMs: 300,
      retries: 2,
    });
    up.on('packet', (p) => pinned.handlePacket(p));
    try {
      await assert.rejects(pinned.hello(), (e: unknown) => e instanceof PilotError && e.code !== 'TLS_UNTRUSTED');
    } finally {
      pinned.close();
      up.close();
    }
  });

  test('a certificate from an unknown CA, for another name, expired, or with no --tls-ca: TLS_UNTRUSTED with a hint', async () => {
    const port = srv.tls!.port;
    const caPem = fs.readFileSync(ca.caCert);
    const cases: { name: string; opts: Partial<ConstructorParameters<typeof TcpUplink>[0]>; re: RegExp }[] = [
      { name: 'unknown CA', opts: { ca: fs.readFileSync(other.caCert) }, re: /--tls-ca/ },
      { name: 'system CAs only', opts: {}, re: /--tls-ca/ },
    ];
    for (const c of cases) {
      const r = await firstConnect({ host: '127.0.0.1', port, mode: 'wss', connectTimeoutMs: 3000, ...c.opts });
      assert.equal(r.err?.code, 'TLS_UNTRUSTED', `${c.name}: ${r.err?.message}`);
      assert.match(r.err!.hint ?? '', c.re, c.name);
    }
    // Wrong name and expired need their own listeners.
    const wrongName = ca.issue('elsewhere', ['rv.example.net']);
    const expired = ca.issue('expired', ['127.0.0.1'], { expired: true });
    for (const [name, pair, code, hint] of [
      ['wrong name', wrongName, /ALTNAME/, /not for 127\.0\.0\.1/],
      ['expired', expired, /CERT_HAS_EXPIRED/, /renew/],
    ] as const) {
      const s2 = await startServer({ tls: { host: '127.0.0.1', port: 0, certFile: pair.cert, keyFile: pair.key, watchMs: 0 } });
      try {
        const r = await firstConnect({ host: '127.0.0.1', port: s2.tls!.port, mode: 'wss', ca: caPem, connectTimeoutMs: 3000 });
        assert.equal(r.err?.code, 'TLS_UNTRUSTED', `${name}: ${r.err?.message}`);
        assert.match(r.err!.message, code);
        assert.match(r.err!.hint ?? '', hint);
      } finally {
        await s2.close();
      }
    }
  });

  test('a server that accepts TCP and stalls the TLS handshake: TIMEOUT at the connect deadline, not a hang', async () => {
    const held: net.Socket[] = [];
    const staller = net.createServer((s) => held.push(s)); // reads the ClientHello, never answers
    await new Promise<void>((r) => staller.listen(0, '127.0.0.1', () => r()));
    try {
      const r = await firstConnect({ host: '127.0.0.1', port: (staller.address() as net.AddressInfo).port, mode: 'wss', connectTimeoutMs: 1500 });
      assert.equal(r.err?.code, 'TIMEOUT', r.err?.message);
      assert.match(r.err!.hint ?? '', /--tls-listen/);
      assert.ok(r.ms >= 1400 && r.ms < 4000, `gave up after ${r.ms} ms (deadline 1500)`);
    } finally {
      for (const s of held) s.destroy();
      staller.close();
    }
  });

  test('the TLS listener drops a client that never finishes its handshake, and garbage, and keeps serving', async () => {
    const s2 = await startServer({ tcpIdleMs: 1000, tls: { host: '127.0.0.1', port: 0, certFile: good.cert, keyFile: good.key, watchMs: 0 } });
    try {
      const port = s2.tls!.port;
      const silent = net.connect(port, '127.0.0.1');
      silent.on('error', () => {});
      const t0 = Date.now();
      await new Promise<void>((r) => silent.once('close', () => r()));
      const heldMs = Date.now() - t0;
      assert.ok(heldMs < 4000, `a silent client was held ${heldMs} ms (handshake limit 1 s)`);
      const garbage = s2.stats().garbage;
      const junk = net.connect(port, '127.0.0.1', () => junk.write('GET / HTTP/1.1\r\n\r\n'));
      junk.on('error', () => {});
      await new Promise<void>((r) => junk.once('close', () => r()));
      assert.ok(s2.stats().garbage > garbage, 'plain HTTP on the TLS port counted as garbage');
      const a = await uplinkPeer(port, 'wss', { ca: fs.readFileSync(ca.caCert) });
      try {
        assert.match((await a.client.register({ email: 'still@example.com' })).address, /^0:/);
      } finally {
        a.close();
      }
    } finally {
      await s2.close();
    }
  });

  test('reloadTls (SIGHUP) serves a renewed certificate without a restart; a bad pair keeps the old one', async () => {
    const dir = fs.mkdtempSync(path.join(ca.dir, 'live-'));
    const cert = path.join(dir, 'fullchain.pem');
    const key = path.join(dir, 'privkey.pem');
    fs.copyFileSync(good.cert, cert);
    fs.copyFileSync(good.key, key);
    const s2 = await startServer({ tls: { host: '127.0.0.1', port: 0, certFile: cert, keyFile: key, watchMs: 0 } });
    try {
      const port = s2.tls!.port;
      const renewed = other.issue('renewed', ['127.0.0.1']);
      const viaOther = { host: '127.0.0.1', port, mode: 'wss' as const, ca: fs.readFileSync(other.caCert), connectTimeoutMs: 3000 };
      assert.equal((await firstConnect(viaOther)).err?.code, 'TLS_UNTRUSTED', 'before the renewal');
      // Half-written renewal: the new certificate with the old key does not load; the old pair stays.
      fs.copyFileSync(renewed.cert, cert);
      assert.equal(s2.reloadTls(), false);
      fs.copyFileSync(renewed.key, key);
      assert.equal(s2.reloadTls(), true);
      const r = await firstConnect(viaOther);
      assert.equal(r.err, undefined, r.err?.message);
      const peer = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca.caCert) });
      const e = await new Promise<Error & { code?: string }>((resolve) => peer.once('error', resolve));
      assert.match(String(e.code), /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET/, 'the old CA no longer matches');
    } finally {
      await s2.close();
    }
  });
});
