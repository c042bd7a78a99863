// HTTP over the overlay: a real http.Server served on a virtual port with
// serveHttp, reached with global fetch + the undici dispatcher and with
// http.get/http.request + PilotHttpAgent, against real daemons.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { connect, PilotHttpAgent, pilotDispatcher, serveHttp, targetFromHost, PilotError, type HttpService, type PilotNode } from '../../src/sdk/index.ts';
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

test('fetch with the undici dispatcher: GET, keep-alive reuse, a dashed address, a big body, POST', async () => {
  const dispatcher = pilotDispatcher(nb);
  try {
    const before = connections;
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`http://ht-alpha/hello?${i}`, { dispatcher } as RequestInit);
      assert.equal(r.status, 200);
      const body = (await r.json()) as { url: string; from: string };
      assert.equal(body.url, `/hello?${i}`);
      assert.equal(body.from, beta.address); // the caller, as the overlay authenticated it
    }
    // keep-alive: streams are reused (undici itself opens a second connection
    // for back-to-back requests, over plain TCP too)
    assert.ok(connections - before <= 2, `five requests took ${connections - before} overlay streams`);

    const dashed = alpha.address.replace(':', '-').replaceAll('.', '-').toLowerCase();
    const r2 = await fetch(`http://${dashed}.pilot/by-address`, { dispatcher } as RequestInit);
    assert.equal(((await r2.json()) as { url: string }).url, '/by-address');

    const big = await fetch('http://ht-alpha/big', { dispatcher } as RequestInit);
    assert.equal((await big.arrayBuffer()).byteLength, 3 * 1024 * 1024);

    const upload = crypto.randomBytes(4 * 1024 * 1024);
    const post = await fetch('http://ht-alpha/upload', { method: 'POST', body: upload, dispatcher } as RequestInit);
    const got = (await post.json()) as { bytes: number; sha256: string };
    assert.equal(got.bytes, upload.length);
    assert.equal(got.sha256, crypto.createHash('sha256').update(upload).digest('hex'));
  } finally {
    await dispatcher.close();
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
  const dispatcher = pilotDispatcher(nb);
  const agent = new PilotHttpAgent(nb);
  try {
    await assert.rejects(fetch('http://ht-alpha:81/', { dispatcher } as RequestInit), (e: unknown) => {
      const cause = (e as { cause?: unknown }).cause;
      return cause instanceof PilotError && cause.code === 'CONNECTION_REFUSED';
    });
    await assert.rejects(get('http://ht-alpha:81/', agent), (e: unknown) => e instanceof PilotError && e.code === 'CONNECTION_REFUSED');
    await assert.rejects(get('http://nobody-here/', agent), (e: unknown) => e instanceof PilotError && e.code === 'NOT_FOUND');
  } finally {
    agent.destroy();
    await dispatcher.close();
  }
});
