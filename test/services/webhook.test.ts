// Webhooks: a real node:http receiver on loopback checks every HMAC, answers
// 500 to see retries, hangs to see the bounded queue drop its oldest events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { IpcClient } from '../../src/ipc/client.ts';
import { verifySignature } from '../../src/services/webhook.ts';
import { startAgent, startPair, sleep, trustEachOther, type Pair } from './helpers.ts';

interface Hit {
  event: string;
  delivery: string;
  body: any;
  valid: boolean;
  sig: string;
  raw: Buffer;
  status: number;
}

let p: Pair;
let server: http.Server;
let url: string;
let secret = '';
const hits: Hit[] = [];
/** How the receiver answers: a status per request (consumed in order), then 200. */
let script: number[] = [];
let delayMs = 0;

before(async () => {
  // alpha reports: fast retries and a small queue, to see both in a test
  p = await startPair('hook', { aServices: { webhookBackoffMs: 100, webhookQueue: 5, webhookRetries: 3 } });
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const status = script.length > 0 ? script.shift()! : 200;
      const hit: Hit = {
        event: String(req.headers['x-pilot-event']),
        delivery: String(req.headers['x-pilot-delivery']),
        body: JSON.parse(raw.toString()),
        valid: verifySignature(secret, raw, req.headers['x-pilot-signature'] as string | undefined),
        sig: String(req.headers['x-pilot-signature']),
        raw,
        status,
      };
      setTimeout(() => {
        hits.push(hit);
        res.writeHead(status).end();
      }, delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/pilot-events`;
});

after(async () => {
  await p?.stop();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
});

async function waitFor(pred: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out; hits: ${JSON.stringify(hits.map((h) => `${h.event}/${h.status}`))}`);
    await sleep(50);
  }
}

async function status(): Promise<any> {
  return (await p.a.ctl(['webhook'])).json.data;
}

test('set-webhook shows a secret kept 0600; events arrive signed with it', async () => {
  const r = await p.a.ctl(['set-webhook', url]);
  assert.equal(r.code, 0, r.stderr);
  secret = r.json.data.secret;
  assert.match(secret, /^[0-9a-f]{64}$/);
  assert.equal(r.json.data.url, url);
  const file = path.join(p.a.home, 'webhook-secret');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(file, 'utf8').trim(), secret);

  assert.equal((await p.b.ctl(['send-message', p.a.address, '--data', 'hook me'])).code, 0);
  await waitFor(() => hits.some((h) => h.event === 'message_received'));
  const h = hits.find((x) => x.event === 'message_received')!;
  assert.equal(h.valid, true);
  assert.equal(h.body.event, 'message_received');
  assert.equal(h.body.node, p.a.address);
  assert.equal(h.body.id, h.delivery);
  assert.equal(h.body.data.from, p.b.address);
  assert.equal(h.body.data.type, 'text');
  assert.ok(Math.abs(h.body.ts - Date.now()) < 60_000);
  // the signature covers the exact body: one changed byte and it no longer verifies
  assert.match(h.sig, /^sha256=[0-9a-f]{64}$/);
  const tampered = Buffer.from(h.raw.toString().replace(p.b.address, '0:0000.0000.0FFF'));
  assert.notDeepEqual(tampered, h.raw);
  assert.equal(verifySignature(secret, tampered, h.sig), false);
  assert.equal(verifySignature('f'.repeat(64), h.raw, h.sig), false);

  const file2 = path.join(p.work, 'hooked.txt');
  fs.writeFileSync(file2, 'file for the hook');
  assert.equal((await p.b.ctl(['send-file', p.a.address, file2])).code, 0);
  await waitFor(() => hits.some((x) => x.event === 'file_received'));
  const f = hits.find((x) => x.event === 'file_received')!;
  assert.equal(f.valid, true);
  assert.equal(f.body.data.name, 'hooked.txt');
  assert.equal(f.body.data.size, 17);
});

test('a receiver answering 500 gets the same delivery again, with backoff, until it takes it', async () => {
  hits.length = 0;
  script = [500, 500];
  assert.equal((await p.b.ctl(['send-message', p.a.address, '--data', 'retry me'])).code, 0);
  await waitFor(() => hits.some((h) => h.status === 200));
  assert.deepEqual(
    hits.map((h) => h.status),
    [500, 500, 200],
  );
  assert.equal(new Set(hits.map((h) => h.delivery)).size, 1, 'one delivery id on every attempt');
  assert.ok(hits.every((h) => h.valid));
  const st = await status();
  assert.ok(st.retries >= 2, JSON.stringify(st));
  // 4xx means "no": not retried, counted as failed
  hits.length = 0;
  script = [400];
  const failedBefore = st.failed;
  assert.equal((await p.b.ctl(['send-message', p.a.address, '--data', 'refused'])).code, 0);
  await waitFor(() => hits.length === 1);
  await sleep(500);
  assert.equal(hits.length, 1);
  assert.equal((await status()).failed, failedBefore + 1);
});

test('a slow receiver: the bounded queue drops its oldest events and counts them', async () => {
  hits.length = 0;
  delayMs = 2000;
  const before = await status();
  const c = new IpcClient(p.b.socket);
  try {
    for (let i = 0; i < 20; i++) await c.call('send_message', { target: p.a.address, data: `burst ${i}` });
  } finally {
    c.close();
  }
  const mid = await status();
  assert.ok(mid.queued <= 5, JSON.stringify(mid));
  assert.ok(mid.dropped - before.dropped >= 10, `dropped ${mid.dropped - before.dropped}: ${JSON.stringify(mid)}`);
  delayMs = 0;
  await waitFor(() => hits.length >= 20 - (mid.dropped - before.dropped), 30_000);
  const got = hits.map((h) => h.body.data.id);
  assert.equal(new Set(got).size, got.length);
  // the newest events survived (the oldest were dropped)
  const inbox = (await p.a.ctl(['inbox'])).json.data.messages;
  const last = inbox[inbox.length - 1];
  assert.ok(got.includes(last.id), 'the newest event was delivered');
  assert.equal((await status()).queued, 0);
});

test('trust and peer events; the webhook survives a restart; clear-webhook stops it', async () => {
  hits.length = 0;
  const c = await startAgent(p.rdv, p.work, 'hook-gamma');
  p.agents.push(c);
  await trustEachOther(p.a, c); // c asks, alpha approves: alpha sees the request
  await waitFor(() => hits.some((h) => h.event === 'trust_request'));
  assert.equal(hits.find((h) => h.event === 'trust_request')!.body.data.from, c.address);
  assert.equal((await c.ctl(['send-message', p.a.address, '--data', 'hi from gamma'])).code, 0);
  await waitFor(() => hits.some((h) => h.event === 'peer_connected' && h.body.data.peer === c.address));
  await waitFor(() => hits.some((h) => h.event === 'path_upgraded' && h.body.data.peer === c.address));
  assert.match(hits.find((h) => h.event === 'path_upgraded')!.body.data.path, /^direct 127\.0\.0\.1:\d+$/);
  assert.equal((await c.ctl(['untrust', p.a.address])).code, 0);
  await waitFor(() => hits.some((h) => h.event === 'trust_revoked'));
  assert.ok(hits.every((h) => h.valid));

  await p.a.stop();
  await p.a.start([]);
  const st = await status();
  assert.equal(st.url, url);
  hits.length = 0;
  assert.equal((await p.b.ctl(['send-message', p.a.address, '--data', 'after restart'])).code, 0);
  await waitFor(() => hits.some((h) => h.event === 'message_received'));
  assert.ok(
    hits.every((h) => h.valid),
    'the same secret after a restart',
  );

  assert.equal((await p.a.ctl(['clear-webhook'])).code, 0);
  hits.length = 0;
  assert.equal((await p.b.ctl(['send-message', p.a.address, '--data', 'unheard'])).code, 0);
  await sleep(1000);
  assert.equal(hits.length, 0);
  assert.equal((await status()).url, null);
  const bad = await p.a.ctl(['set-webhook', 'ftp://example.com/x']);
  assert.equal(bad.code, 1);
  assert.equal(bad.json.code, 'BAD_ARGUMENT');
});
