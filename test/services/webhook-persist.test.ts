// The undelivered webhook queue survives a daemon stop/start: the receiver is
// down while events queue up, the daemon restarts, the receiver comes up, and
// every event arrives once with a valid signature. A corrupt or oversized
// queue file is ignored with a warning, never a crash.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { verifySignature } from '../../src/services/webhook.ts';
import { startPair, sleep, type Pair } from './helpers.ts';

let p: Pair;
let server: http.Server | undefined;

before(async () => {
  // alpha reports; retries slow and many, so events wait in the queue instead of failing
  p = await startPair('hookq', { aServices: { webhookBackoffMs: 3000, webhookRetries: 20, webhookQueue: 10 } });
});

after(async () => {
  await p?.stop();
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
});

async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test('events queued while the receiver is down are delivered once after a daemon restart', async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/hook`;
  const set = await p.a.ctl(['set-webhook', url]);
  assert.equal(set.code, 0, set.stderr);
  const secret: string = set.json.data.secret;
  for (let i = 0; i < 3; i++) assert.equal((await p.b.ctl(['send-message', p.a.address, '--data', `queued ${i}`])).code, 0);
  await sleep(1000);
  const st = (await p.a.ctl(['webhook'])).json.data;
  assert.equal(st.delivered, 0);
  assert.ok(st.queued >= 2, JSON.stringify(st)); // the third is the one being retried

  await p.a.stop();
  const file = path.join(p.a.home, 'webhook-queue.json');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as Array<{ event: string }>;
  assert.equal(saved.filter((d) => d.event === 'message_received').length, 3);

  const hits: Array<{ delivery: string; event: string; body: any; valid: boolean }> = [];
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      hits.push({
        delivery: String(req.headers['x-pilot-delivery']),
        event: String(req.headers['x-pilot-event']),
        body: JSON.parse(raw.toString()),
        valid: verifySignature(secret, raw, req.headers['x-pilot-signature'] as string | undefined),
      });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server!.listen(port, '127.0.0.1', () => r()));
  await p.a.start([]);
  const end = Date.now() + 20_000;
  while (hits.filter((h) => h.event === 'message_received').length < 3 && Date.now() < end) await sleep(100);
  await sleep(1500); // time for a duplicate to show up, if there were one
  const msgs = hits.filter((h) => h.event === 'message_received');
  assert.deepEqual(
    msgs.map((h) => h.body.data.type),
    ['text', 'text', 'text'],
  );
  assert.ok(
    hits.every((h) => h.valid),
    'signed with the secret',
  );
  assert.equal(new Set(hits.map((h) => h.delivery)).size, hits.length, 'each delivery once');
  const inbox = (await p.a.ctl(['inbox'])).json.data.messages.map((m: { id: string }) => m.id);
  assert.deepEqual(
    msgs.map((h) => h.body.data.id),
    inbox.slice(0, 3),
  );
  // delivered: the file is gone
  for (let i = 0; i < 20 && fs.existsSync(file); i++) await sleep(100);
  assert.equal(fs.existsSync(file), false);
});

test('a corrupt or oversized queue file is ignored with a warning; the daemon starts', async () => {
  const file = path.join(p.a.home, 'webhook-queue.json');
  // No webhook: events of the restart (sessions coming back) are not queued, so the count
  // is exactly what was loaded from the file.
  assert.equal((await p.a.ctl(['clear-webhook'])).code, 0);
  for (const [what, content] of [
    ['corrupt', '[{"id":"x","event":"message_received","body":'],
    ['wrong shape', JSON.stringify([{ id: 1, event: '../../x', body: null }])],
    ['oversized', 'x'.repeat(10 * ((1 << 20) + 1024) + 1)],
  ] as const) {
    await p.a.stop();
    fs.writeFileSync(file, content, { mode: 0o600 });
    await p.a.start([]);
    assert.equal((await p.a.ctl(['info'])).code, 0, what);
    assert.equal((await p.a.ctl(['webhook'])).json.data.queued, 0, what);
  }
  // and a sound file is loaded, so the zeros above are the files being ignored
  await p.a.stop();
  fs.writeFileSync(file, JSON.stringify([{ id: 'x', event: 'message_received', body: '{}' }]), { mode: 0o600 });
  await p.a.start([]);
  assert.equal((await p.a.ctl(['webhook'])).json.data.queued, 1, 'a sound queue file is loaded');
  const log = p.a.log();
  assert.match(log, /webhook queue file is corrupt: ignored/);
  assert.match(log, /webhook queue file too large: ignored/);
});
