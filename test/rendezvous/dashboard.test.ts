// The rendezvous dashboard on its own HTTP listener: public views leak no
// private data, the admin API wants the token, the CLI serves it, and a real
// headless Chromium renders the live numbers of registered nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { makeTrust, startServer, tmpDir, udpPeer, type Peer } from './helpers.ts';

const TOKEN = 'dashboard-test-token-0123456789abcdef';
const CHROMIUM = '/usr/bin/chromium';

async function get(port: number, p: string, auth?: string): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, auth === undefined ? {} : { headers: { authorization: auth } });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** A public node and a private one with LAN endpoints, trusting each other, both reporting NAT and paths. */
async function population(rdvPort: number): Promise<{ pub: Peer; priv: Peer; pubAddr: string; privAddr: string; privSecrets: string[] }> {
  const pub = await udpPeer(rdvPort);
  const priv = await udpPeer(rdvPort);
  const rp = await pub.client.register({ email: 'pub@example.com', hostname: 'pub-host', public: true, lanEndpoints: ['192.168.77.10:4000'] });
  const rq = await priv.client.register({ email: 'secret-owner@example.com', hostname: 'secret-host', lanEndpoints: ['10.99.88.77:4321', '172.31.9.9:5555'] });
  await makeTrust(pub, rp.address, priv, rq.address);
  await pub.client.heartbeat({ nat: 'none', paths: { direct: 1, relay: 0 }, punches: { tried: 1, succeeded: 1 } });
  await priv.client.heartbeat({
    lanEndpoints: ['10.99.88.77:4321', '172.31.9.9:5555'],
    nat: 'eim',
    paths: { direct: 0, relay: 1 },
    punches: { tried: 2, succeeded: 0 },
  });
  const privSecrets = [
    rq.address,
    'secret-host',
    'secret-owner',
    '10.99.88.77',
    '172.31.9.9',
    `127.0.0.1:${priv.localPort}`,
    priv.identity.publicKey.toString('base64'),
    rp.address, // addresses of public nodes are not shown either: hostnames only
  ];
  return { pub, priv, pubAddr: rp.address, privAddr: rq.address, privSecrets };
}

test('public pages and /api/summary show aggregates and public hostnames, nothing about private nodes or trust', async (t) => {
  const s = await startServer({ http: { host: '127.0.0.1', port: 0, adminToken: TOKEN } });
  t.after(() => s.close());
  const { pub, priv, privSecrets } = await population(s.port);
  t.after(() => Promise.all([pub.close(), priv.close()]));
  const port = s.http!.port;

  const summary = await get(port, '/api/summary');
  assert.equal(summary.status, 200);
  const j = JSON.parse(summary.body);
  assert.equal(j.online, 2);
  assert.deepEqual(j.nat, { none: 1, eim: 1, edm: 0, unknown: 0 });
  assert.deepEqual(j.paths, { direct: 1, relay: 1 });
  assert.deepEqual(j.publicHostnames, ['pub-host']);
  assert.equal(j.registrations, 2);
  assert.ok(!/trust|peer/i.test(summary.body), 'no trust graph');
  assert.deepEqual(Object.keys(j).sort(), ['generatedAt', 'nat', 'online', 'paths', 'publicHostnames', 'registrations', 'relay']);

  for (const p of ['/', '/app.js', '/style.css', '/api/summary', '/metrics', '/api/nope']) {
    const r = await get(port, p);
    for (const secret of privSecrets) assert.ok(!r.body.includes(secret), `${p} must not contain ${secret}`);
  }
  const page = await get(port, '/');
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal((await get(port, '/api/nope')).status, 404);
  const post = await fetch(`http://127.0.0.1:${port}/api/summary`, { method: 'POST', body: '{}' });
  assert.equal(post.status, 405);
});

test('admin API: 401 without, with a wrong or malformed token; the right one lists nodes, endpoints only for public ones', async (t) => {
  const s = await startServer({ http: { host: '127.0.0.1', port: 0, adminToken: TOKEN } });
  t.after(() => s.close());
  const { pub, priv, pubAddr, privAddr } = await population(s.port);
  t.after(() => Promise.all([pub.close(), priv.close()]));
  const port = s.http!.port;

  for (const p of ['/api/admin/nodes', '/api/admin/stats']) {
    for (const auth of [
      undefined,
      '',
      'Bearer',
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Basic ${TOKEN}`,
      TOKEN,
      `Bearer  ${TOKEN}`,
      'Bearer wrong',
    ]) {
      const r = await get(port, p, auth);
      assert.equal(r.status, 401, `${p} with ${JSON.stringify(auth)}`);
      assert.ok(!r.body.includes(privAddr) && !r.body.includes('secret-host'));
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
  }
  const r = await get(port, '/api/admin/nodes', `Bearer ${TOKEN}`);
  assert.equal(r.status, 200);
  const nodes = JSON.parse(r.body).nodes as {
    address: string;
    hostname: string;
    public: boolean;
    nat: string;
    online: boolean;
    endpoints: string[];
    paths: unknown;
  }[];
  assert.equal(nodes.length, 2);
  const p = nodes.find((n) => n.address === pubAddr)!;
  const q = nodes.find((n) => n.address === privAddr)!;
  assert.deepEqual([p.hostname, p.public, p.nat, p.online], ['pub-host', true, 'none', true]);
  assert.deepEqual(p.endpoints.sort(), [`127.0.0.1:${pub.localPort}`, '192.168.77.10:4000'].sort());
  assert.deepEqual([q.hostname, q.public, q.nat, q.online], ['secret-host', false, 'eim', true]);
  assert.deepEqual(q.endpoints, [], 'no endpoints of private nodes, even for admins');
  assert.deepEqual(q.paths, { direct: 0, relay: 1 });
  assert.ok(!/trust|peer/i.test(r.body), 'no trust graph in the admin view');
  assert.ok(!r.body.includes('10.99.88.77'));

  const st = await get(port, '/api/admin/stats', `Bearer ${TOKEN}`);
  assert.equal(st.status, 200);
  assert.deepEqual(JSON.parse(st.body).punches.eim, { tried: 2, succeeded: 0 });
});

test('without --admin-token a token is generated 0600 into the data dir and reused', async (t) => {
  const dataDir = tmpDir();
  const s = await startServer({ dataDir, http: { host: '127.0.0.1', port: 0 } });
  const file = path.join(dataDir, 'admin-token');
  const token = fs.readFileSync(file, 'utf8').trim();
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.ok(token.length >= 40);
  assert.equal(s.http!.adminToken, token);
  assert.equal((await get(s.http!.port, '/api/admin/stats', `Bearer ${token}`)).status, 200);
  await s.close();
  const again = await startServer({ dataDir, http: { host: '127.0.0.1', port: 0 } });
  t.after(() => again.close());
  assert.equal(again.http!.adminToken, token, 'same token after a restart');
  assert.equal((await get(again.http!.port, '/api/admin/stats', `Bearer ${token}`)).status, 200);
});

test('pilot-rendezvous --http serves /metrics and the dashboard; without --http nothing listens', async (t) => {
  const dataDir = tmpDir();
  const proc = spawn(
    process.execPath,
    [
      'bin/pilot-rendezvous.js',
      '--listen',
      '127.0.0.1:0',
      '--alt-port',
      'none',
      '--http',
      '127.0.0.1:0',
      '--admin-token',
      TOKEN,
      '--data',
      dataDir,
      '--log-level',
      'silent',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => proc.kill('SIGKILL'));
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const deadline = Date.now() + 15_000;
  let m: RegExpExecArray | null = null;
  while (!(m = /^http 127\.0\.0\.1:(\d+)$/m.exec(out))) {
    assert.ok(Date.now() < deadline, `no http line: ${out} ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.match(out, /^listening udp\+tcp 127\.0\.0\.1:\d+ key=[A-Za-z0-9+/=]{44}$/m, 'the first line keeps its format');
  const port = Number(m[1]);
  const metrics = await get(port, '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^pilot_rendezvous_online_nodes 0$/m);
  assert.equal((await get(port, '/api/admin/nodes', `Bearer ${TOKEN}`)).status, 200);
  assert.equal((await get(port, '/api/admin/nodes', 'Bearer nope')).status, 401);
  assert.ok(!fs.existsSync(path.join(dataDir, 'admin-token')), 'a given token is not written to disk');

  const plain = await startServer();
  t.after(() => plain.close());
  assert.equal(plain.http, undefined);
});

test('headless Chromium renders the online count, NAT classes and, with the token, the node table', async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const s = await startServer({ http: { host: '127.0.0.1', port: 0, adminToken: TOKEN } });
  t.after(() => s.close());
  const { pub, priv, privAddr } = await population(s.port);
  t.after(() => Promise.all([pub.close(), priv.close()]));
  const shots = tmpDir();

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  t.after(() => browser.close());
  // The page's CSP forbids eval, so waits use locators (Playwright's isolated world), not waitForFunction.
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(msg.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`http://127.0.0.1:${s.http!.port}/`);
  await page.locator('#online', { hasText: /^2$/ }).waitFor({ timeout: 10_000 });
  assert.equal(await page.textContent('tr[data-nat="eim"] td.count'), '1');
  assert.equal(await page.textContent('tr[data-nat="none"] td.count'), '1');
  assert.equal(await page.textContent('tr[data-nat="edm"] td.count'), '0');
  assert.equal(await page.textContent('#paths-direct'), '1');
  assert.equal(await page.textContent('#paths-relay'), '1');
  assert.equal(await page.textContent('#public-nodes'), 'pub-host');
  assert.ok(!(await page.content()).includes('secret-host'), 'private hostname not on the public page');

  // A third node comes online: the page follows without a reload.
  const late = await udpPeer(s.port);
  t.after(() => late.close());
  await late.client.register({ email: 'late@example.com' });
  await late.client.heartbeat({ nat: 'edm' });
  await page.locator('#online', { hasText: /^3$/ }).waitFor({ timeout: 10_000 });
  assert.equal(await page.textContent('tr[data-nat="edm"] td.count'), '1');
  await page.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });

  await page.fill('#token', 'wrong-token-0000000000000');
  await page.click('#login button[type=submit]');
  await page.locator('#admin-status', { hasText: /^wrong token$/ }).waitFor({ timeout: 10_000 });
  await page.fill('#token', TOKEN);
  await page.click('#login button[type=submit]');
  await page.waitForSelector(`#nodes tr[data-address="${privAddr}"]`, { timeout: 10_000 });
  assert.match((await page.textContent(`#nodes tr[data-address="${privAddr}"]`)) ?? '', /secret-host.*eim/);
  await page.screenshot({ path: path.join(shots, 'dashboard-admin.png'), fullPage: true });
  assert.ok(fs.statSync(path.join(shots, 'dashboard.png')).size > 5_000);
  t.diagnostic(`screenshots in ${shots}`);
  assert.deepEqual(
    problems.filter((p) => !/401/.test(p)),
    [],
    'no script errors in the page',
  );
});
