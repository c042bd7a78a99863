// HTTP CONNECT proxies: which proxy applies (flag, HTTPS_PROXY/ALL_PROXY,
// NO_PROXY), and a real tinyproxy/squid (Debian binaries, own config in a temp
// dir) between a wss TcpUplink and the rendezvous: it registers through them,
// and every refusal (403, 407 without and with wrong credentials, 5xx, no
// proxy listening, a proxy that never answers) is a coded error with a hint
// within the connect deadline. ProxyProcess passwords appear in no message.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PilotError } from '../../src/util/errors.ts';
import { noProxyMatches, parseProxyUrl, proxyFor } from '../../src/uplink/proxy.ts';
import { TcpUplink, type TcpUplinkOptions } from '../../src/uplink/tcp-uplink.ts';
import { wssLinkOptions } from '../../src/uplink/wss-config.ts';
import { Agent, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { startSquid, startTinyproxy, whichProxy, type ProxyProcess } from '../helpers/proxy.ts';
import { hasOpenssl, makeTestCa, type TestCa } from '../helpers/test-ca.ts';
import { startServer } from '../rendezvous/helpers.ts';
import { uplinkPeer } from './helpers.ts';

test('proxy selection: explicit beats the environment, HTTPS_PROXY before ALL_PROXY, NO_PROXY exempts, socks ALL_PROXY ignored', () => {
  const env = { HTTPS_PROXY: 'http://u:p@10.0.0.1:3128', ALL_PROXY: 'http://10.0.0.2:8080' };
  assert.equal(proxyFor('rv.example.com', 443, undefined, env)?.display, 'http://10.0.0.1:3128');
  assert.equal(proxyFor('rv.example.com', 443, undefined, env)?.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
  assert.equal(proxyFor('rv.example.com', 443, undefined, { https_proxy: '10.0.0.3:3128' })?.display, 'http://10.0.0.3:3128');
  assert.equal(proxyFor('rv.example.com', 443, undefined, { ALL_PROXY: 'http://10.0.0.2:8080' })?.display, 'http://10.0.0.2:8080');
  assert.equal(proxyFor('rv.example.com', 443, undefined, { ALL_PROXY: 'socks5://10.0.0.2:1080' }), undefined);
  assert.equal(proxyFor('rv.example.com', 443, 'http://10.9.9.9:1', env)?.display, 'http://10.9.9.9:1');
  assert.equal(proxyFor('rv.example.com', 443, 'none', env), undefined);
  for (const np of ['example.com', '.example.com', '*.example.com', 'rv.example.com:443', '*', 'a.b, rv.example.com'])
    assert.equal(proxyFor('rv.example.com', 443, undefined, { ...env, NO_PROXY: np }), undefined, np);
  for (const np of ['ample.com', 'rv.example.com:8443', 'other.org'])
    assert.notEqual(proxyFor('rv.example.com', 443, undefined, { ...env, no_proxy: np }), undefined, np);
  assert.equal(noProxyMatches('10.0.0.0', '10.0.0.0', 1), true);
  assert.equal(noProxyMatches('[::1]:443', '::1', 443), true);
  assert.equal(noProxyMatches('10.0.0.0/8', '10.20.30.40', 443), true);
  assert.equal(noProxyMatches('10.0.0.0/8', '11.0.0.1', 443), false);
  assert.equal(noProxyMatches('fd00::/8', 'fd12::1', 443), true);
  assert.equal(noProxyMatches('10.0.0.0/8', 'rv.example.com', 443), false);
  // Bad settings: BAD_ARGUMENT naming the source, without echoing a password.
  for (const [bad, src] of [
    ['https://u:secretpw@h:1', 'HTTPS_PROXY'],
    ['socks5://u:secretpw@h:1', 'flag'],
    ['http://u:secretpw@:1', 'flag'],
  ] as const) {
    assert.throws(
      () => parseProxyUrl(bad, src),
      (e: unknown) => e instanceof PilotError && e.code === 'BAD_ARGUMENT' && e.message.startsWith(src) && !e.message.includes('secretpw'),
    );
  }
  assert.equal(parseProxyUrl('http://a%40b:p%3Aw@h:3128').authorization, `Basic ${Buffer.from('a@b:p:w').toString('base64')}`);
});

const tiny = whichProxy('tinyproxy');
const squid = whichProxy('squid');
const skip = !hasOpenssl() ? 'needs the openssl CLI' : !tiny ? 'needs tinyproxy (apt-get install tinyproxy)' : false;

async function firstConnect(opts: TcpUplinkOptions): Promise<{ err?: PilotError; ms: number; describe: string }> {
  const u = new TcpUplink({ backoff: { minMs: 50, maxMs: 500 }, connectTimeoutMs: 3000, ...opts });
  const t0 = Date.now();
  try {
    await u.connect();
    return { ms: Date.now() - t0, describe: u.describe() };
  } catch (err) {
    return { err: err as PilotError, ms: Date.now() - t0, describe: u.describe() };
  } finally {
    u.close();
  }
}

describe('wss through real HTTP proxies (tinyproxy, squid)', { skip, timeout: 90_000 }, () => {
  let ca: TestCa;
  let srv: Awaited<ReturnType<typeof startServer>>;
  let caPem: Buffer;
  const proxies: ProxyProcess[] = [];
  const AUTH = { user: 'alice', pass: 's3cret-pw' };
  before(async () => {
    ca = makeTestCa();
    caPem = fs.readFileSync(ca.caCert);
    const pair = ca.issue('rv', ['127.0.0.1']);
    srv = await startServer({ tls: { host: '127.0.0.1', port: 0, certFile: pair.cert, keyFile: pair.key, watchMs: 0 } });
  });
  after(async () => {
    for (const p of proxies) await p.stop();
    await srv?.close();
    ca?.cleanup();
  });

  test('registers over wss through tinyproxy with Basic auth (and through squid); describe() shows no password', async () => {
    const port = srv.tls!.port;
    const tp = await startTinyproxy({ host: '127.0.0.1', auth: AUTH, connectPorts: [port] });
    proxies.push(tp);
    const opts = wssLinkOptions({ url: `wss://127.0.0.1:${port}/pilot`, proxy: tp.url(AUTH) }, {});
    const a = await uplinkPeer(port, 'wss', { ...opts, ca: caPem });
    try {
      assert.match(a.uplink.describe(), new RegExp(`via proxy http://127\\.0\\.0\\.1:${tp.port}$`));
      assert.ok(!a.uplink.describe().includes(AUTH.pass));
      assert.match((await a.client.register({ email: 'proxied@example.com' })).address, /^0:/);
    } finally {
      a.close();
    }
    assert.match(tp.log(), /CONNECT|Established/i, 'the proxy carried it');
    if (squid) {
      const sq = await startSquid({ host: '127.0.0.1', connectPorts: [port] });
      proxies.push(sq);
      const b = await uplinkPeer(port, 'wss', { ca: caPem, proxy: parseProxyUrl(sq.url()) });
      try {
        assert.match((await b.client.register({ email: 'squid@example.com' })).address, /^0:/);
      } finally {
        b.close();
      }
    }
  });

  test('refusals are coded, hinted and quick: 407 without and with wrong credentials, 403 for a port it forbids, 5xx for a dead target', async () => {
    const port = srv.tls!.port;
    const tp = await startTinyproxy({ host: '127.0.0.1', auth: AUTH, connectPorts: [port, 9] });
    proxies.push(tp);
    const base = { host: '127.0.0.1', port, mode: 'wss' as const, ca: caPem };
    const noAuth = await firstConnect({ ...base, proxy: parseProxyUrl(tp.url()) });
    assert.equal(noAuth.err?.code, 'PROXY_AUTH', noAuth.err?.message);
    assert.match(noAuth.err!.hint ?? '', /USER:PASSWORD@/);
    const wrong = await firstConnect({ ...base, proxy: parseProxyUrl(tp.url({ user: 'alice', pass: 'wrong-pw' })) });
    assert.equal(wrong.err?.code, 'PROXY_AUTH', wrong.err?.message);
    assert.match(wrong.err!.hint ?? '', /refused the credentials/);
    assert.ok(!wrong.err!.message.includes('wrong-pw') && !(wrong.err!.hint ?? '').includes('wrong-pw'), 'no password in the error');
    const forbidden = await firstConnect({ ...base, port: 8443, proxy: parseProxyUrl(tp.url(AUTH)) });
    assert.equal(forbidden.err?.code, 'PROXY_REFUSED', forbidden.err?.message);
    assert.match(forbidden.err!.message, /answered 403/);
    assert.match(forbidden.err!.hint ?? '', /allow CONNECT/);
    const dead = await firstConnect({ ...base, port: 9, proxy: parseProxyUrl(tp.url(AUTH)) });
    assert.equal(dead.err?.code, 'PROXY_REFUSED', dead.err?.message);
    assert.match(dead.err!.message, /answered 5\d\d/);
    assert.match(dead.err!.hint ?? '', /could not reach/);
    for (const r of [noAuth, wrong, forbidden, dead]) assert.ok(r.ms < 3000, `answered in ${r.ms} ms`);
  });

  test('no proxy listening: UNREACHABLE; a proxy that never answers CONNECT: TIMEOUT at the deadline', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const closedPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const base = { host: '127.0.0.1', port: srv.tls!.port, mode: 'wss' as const, ca: caPem };
    const none = await firstConnect({ ...base, proxy: parseProxyUrl(`http://127.0.0.1:${closedPort}`) });
    assert.equal(none.err?.code, 'UNREACHABLE', none.err?.message);
    assert.match(none.err!.hint ?? '', /nothing listens at the proxy/);
    const held: net.Socket[] = [];
    const mute = net.createServer((s) => held.push(s));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    try {
      const r = await firstConnect({ ...base, connectTimeoutMs: 1500, proxy: parseProxyUrl(`http://127.0.0.1:${(mute.address() as net.AddressInfo).port}`) });
      assert.equal(r.err?.code, 'TIMEOUT', r.err?.message);
      assert.ok(r.ms >= 1400 && r.ms < 4000, `gave up after ${r.ms} ms (deadline 1500)`);
    } finally {
      for (const s of held) s.destroy();
      mute.close();
    }
  });
});

describe('pilotctl daemon start --uplink wss: a proxy or certificate problem is a coded failure of the start, not a hang', { skip, timeout: 90_000 }, () => {
  test('407 from tinyproxy -> PROXY_AUTH; a CA that did not sign the certificate -> TLS_UNTRUSTED', async () => {
    const work = tmpDir('pilot-wss-cli-');
    const ca = makeTestCa('cli-ca', fs.mkdtempSync(path.join(work, 'ca-')));
    const wrongCa = makeTestCa('wrong-ca', fs.mkdtempSync(path.join(work, 'ca2-')));
    const pair = ca.issue('rv', ['127.0.0.1']);
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const wssPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const rdv = await startRendezvous({ args: ['--tls-listen', `127.0.0.1:${wssPort}`, '--tls-cert', pair.cert, '--tls-key', pair.key] });
    const tp = await startTinyproxy({ host: '127.0.0.1', auth: { user: 'alice', pass: 'right-pw' }, connectPorts: [wssPort] });
    try {
      const start = async (name: string, extra: string[]): Promise<{ code: string; hint: string; ms: number; log: string }> => {
        const ag = new Agent(name, work);
        const t0 = Date.now();
        const r = await ag.ctl(
          [
            'daemon',
            'start',
            '--registry',
            rdv.addr,
            '--email',
            `${name}@example.com`,
            '--uplink',
            'wss',
            '--wss',
            `wss://127.0.0.1:${wssPort}/pilot`,
            ...extra,
          ],
          60_000,
        );
        assert.notEqual(r.code, 0, `${name} should not start: ${r.stdout}`);
        return { code: r.json?.code, hint: r.json?.hint ?? '', ms: Date.now() - t0, log: `${r.stderr}\n${ag.log()}` };
      };
      const auth = await start('noauth', ['--tls-ca', ca.caCert, '--proxy', tp.url({ user: 'alice', pass: 'wrong-pw' })]);
      assert.equal(auth.code, 'PROXY_AUTH', auth.log);
      assert.match(auth.hint, /credentials/);
      assert.ok(!auth.log.includes('wrong-pw'), 'the proxy password is in no output or log');
      const cert = await start('wrongca', ['--tls-ca', wrongCa.caCert, '--proxy', 'none']);
      assert.equal(cert.code, 'TLS_UNTRUSTED', cert.log);
      assert.match(cert.hint, /--tls-ca/);
      for (const r of [auth, cert]) assert.ok(r.ms < 20_000, `failed within ${r.ms} ms`);
    } finally {
      await tp.stop();
      await rdv.kill();
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('a wss uplink through a proxy that restarts', { skip, timeout: 90_000 }, () => {
  test('the connection drops with the proxy and comes back through it by itself (backoff), registered again', async () => {
    const ca = makeTestCa('restart-ca');
    const pair = ca.issue('rv', ['127.0.0.1']);
    const srv = await startServer({ tls: { host: '127.0.0.1', port: 0, certFile: pair.cert, keyFile: pair.key, watchMs: 0 } });
    const port = srv.tls!.port;
    let tp = await startTinyproxy({ host: '127.0.0.1', connectPorts: [port] });
    const proxyPort = tp.port;
    const a = await uplinkPeer(port, 'wss', { ca: fs.readFileSync(ca.caCert), proxy: parseProxyUrl(tp.url()), backoff: { minMs: 100, maxMs: 400 } });
    try {
      const addr = (await a.client.register({ email: 'restart@example.com' })).address;
      const down = new Promise<string>((r) => a.uplink.once('down', r));
      await tp.stop();
      const reason = await down;
      assert.equal(a.uplink.isUp, false, `down: ${reason}`);
      tp = await startTinyproxy({ host: '127.0.0.1', port: proxyPort, connectPorts: [port] });
      await new Promise<void>((resolve, reject) => {
        // 30 s: with five test files at a time on two cores, the proxy's restart and the TLS handshakes wait for CPU.
        const t = setTimeout(() => reject(new Error('not back up within 30 s')), 30_000);
        a.uplink.once('up', () => {
          clearTimeout(t);
          resolve();
        });
      });
      assert.equal((await a.client.register({ email: 'restart@example.com' })).address, addr, 'the same node, registered again through the new tunnel');
      assert.ok(a.uplink.counters.connects >= 2);
    } finally {
      a.close();
      await tp.stop();
      await srv.close();
      ca.cleanup();
    }
  });
});
