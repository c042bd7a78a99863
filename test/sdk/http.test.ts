// HTTP over the overlay: a real http.Server served on a virtual port with
// serveHttp, reached with pilotFetch (global fetch + the undici dispatcher) and
// with http.get/http.request + PilotHttpAgent, against real daemons.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { connect, PilotHttpAgent, pilotFetch, serveHttp, targetFromHost, PilotError, type HttpService, type PilotNode } from '../../src/sdk/index.ts';
import type { Agent } from '../helpers/cluster.ts';
import { startNet, trustPair, type Net } from './helpers.ts';

let net: Net;
let alpha: Agent;
let beta: Agent;
let na: PilotNode;
let nb: PilotNode;
let svc: HttpService;
let connections = 0;

function app(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method === 'POST') {
    const h = crypto.createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      h.update(c);
    });
    req.on('end', () => res.end(JSON.stringify({ bytes, sha256: h.digest('hex') })));
    return;
  }
  if (req.url === '/big') {
    res.setHeader('content-type', 'application/octet-stream');
    res.end(Buffer.alloc(3 * 1024 * 1024, 0x61));
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ url: req.url, from: req.socket.remoteAddress, host: req.headers.host }));
}

before(async () => {
  net = await startNet();
  alpha = await net.agent('ht-alpha');
  beta = await net.agent('ht-beta');
  await trustPair(alpha, beta);
  na = await connect({ socket: alpha.socket });
  nb = await connect({ socket: beta.socket });
  svc = await serveHttp(na, 80, http.createServer(app));
  svc.listener.on('connection', () => connections++);
});

after(async () => {
  await svc?.close();
  await na?.close();
  await nb?.close();
  await net?.stop();
});

test('targetFromHost: hostnames as they are, dashed addresses, .pilot suffix', () => {
  assert.equal(targetFromHost('agent-alpha'), 'agent-alpha');
  assert.equal(targetFromHost('agent-alpha.pilot'), 'agent-alpha');
  assert.equal(targetFromHost('0-0000-0000-002a'), '0:0000.0000.002A');
  assert.equal(targetFromHost('0-0000-0000-002A.pilot'), '0:0000.0000.002A');
  assert.equal(targetFromHost('0:0000.0000.002A'), '0:0000.0000.002A');
});

test('pilotFetch: GET, keep-alive reuse, a dashed address, a big body, POST; standard Responses', async () => {
  const fetch = pilotFetch(nb);
  try {
    const before = connections;
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`http://ht-alpha/hello?${i}`);
      assert.equal(r.status, 200);
      assert.ok(r instanceof Response, 'the global Response class');
      const body = (await r.json()) as { url: string; from: string };
      assert.equal(body.url, `/hello?${i}`);
      assert.equal(body.from, beta.address); // the caller, as the overlay authenticated it
    }
    // keep-alive: streams are reused (undici itself opens a second connection
    // for back-to-back requests, over plain TCP too)
    assert.ok(connections - before <= 2, `five requests took ${connections - before} overlay streams`);

    const dashed = alpha.address.replace(':', '-').replaceAll('.', '-').toLowerCase();
    const r2 = await fetch(new URL(`http://${dashed}.pilot/by-address`));
    assert.equal(((await r2.json()) as { url: string }).url, '/by-address');

    const big = await fetch('http://ht-alpha/big');
    assert.equal((await big.arrayBuffer()).byteLength, 3 * 1024 * 1024);

    const upload = crypto.randomBytes(4 * 1024 * 1024);
    const post = await fetch(new Request('http://ht-alpha/upload', { method: 'POST', body: upload }));
    const got = (await post.json()) as { bytes: number; sha256: string };
    assert.equal(got.bytes, upload.length);
    assert.equal(got.sha256, crypto.createHash('sha256').update(upload).digest('hex'));
  } finally {
    await fetch.close();
  }
});

function get(opts: http.RequestOptions | string, agent: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = typeof opts === 'string' ? http.get(opts, { agent }) : http.get({ ...opts, agent });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

test('http.get with PilotHttpAgent: by URL and by request options with a plain address', async () => {
  const agent = new PilotHttpAgent(nb);
  try {
    const r = await get('http://ht-alpha/agent', agent);
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).from, beta.address);
    const r2 = await get({ host: alpha.address, port: 80, path: '/opts' }, agent);
    assert.equal(JSON.parse(r2.body).url, '/opts');
  } finally {
    agent.destroy();
  }
});

test('errors carry Pilot codes: fetch rejects with the PilotError as cause, http.get emits it', async () => {
  const fetch = pilotFetch(nb);
  const agent = new PilotHttpAgent(nb);
  try {
    await assert.rejects(fetch('http://ht-alpha:81/'), (e: unknown) => {
      const cause = (e as { cause?: unknown }).cause;
      return cause instanceof PilotError && cause.code === 'CONNECTION_REFUSED';
    });
    await assert.rejects(get('http://ht-alpha:81/', agent), (e: unknown) => e instanceof PilotError && e.code === 'CONNECTION_REFUSED');
    await assert.rejects(get('http://nobody-here/', agent), (e: unknown) => e instanceof PilotError && e.code === 'NOT_FOUND');
  } finally {
    agent.destroy();
    await fetch.close();
  }
});

test('serveHttp close(): idle keep-alive connections end at once, a busy one after its response, a stuck one after graceMs', async () => {
  let release: (() => void) | undefined;
  const svc2 = await serveHttp(na, 8081, (req, res) => {
    if (req.url === '/slow') release = () => res.end('slow done');
    else res.end('quick');
  });
  const fetch = pilotFetch(nb);
  try {
    assert.equal(await (await fetch('http://ht-alpha:8081/quick')).text(), 'quick');
    assert.equal(svc2.connections, 1, 'a keep-alive connection stays open');
    const slow = fetch('http://ht-alpha:8081/slow').then((r) => r.text());
    for (let i = 0; i < 500 && !release; i++) await new Promise((r) => setTimeout(r, 10)); // it reached the handler
    let closed = false;
    const closing = svc2.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(closed, false, 'close() waits for the response in flight');
    release!();
    assert.equal(await slow, 'slow done');
    await closing;
    assert.equal(svc2.connections, 0);
    await assert.rejects(fetch('http://ht-alpha:8081/quick'), (e: unknown) => (e as { cause?: PilotError }).cause?.code === 'CONNECTION_REFUSED');

    const svc3 = await serveHttp(na, 8082, (_req, res) => res.write('never ends'));
    const stuck = await fetch('http://ht-alpha:8082/stuck');
    const t0 = Date.now();
    await svc3.close({ graceMs: 300 });
    assert.ok(Date.now() - t0 < 3000, `close({ graceMs: 300 }) took ${Date.now() - t0} ms`);
    assert.equal(svc3.connections, 0);
    await assert.rejects(stuck.text(), 'the cut response errors at the client');
  } finally {
    await svc2.close();
    await fetch.close();
  }
});
