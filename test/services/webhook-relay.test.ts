// relay_activated over a path that can only be the relay: two agents behind
// symmetric NATs in the NAT lab (network namespaces, needs root). The webhook
// receiver runs in the reporting agent's namespace; the test checks every
// signature as a receiver would. (path_upgraded is covered on loopback in
// webhook.test.ts: a symmetric pair never upgrades.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { NatLab, RENDEZVOUS_IP, natLabSupport } from '../helpers/natlab.ts';
import { verifySignature } from '../../src/services/webhook.ts';
import { sleep, trustEachOther } from './helpers.ts';

const support = natLabSupport();
const skip = support.ok ? false : support.reason;

let lab: NatLab;
let rdv: Rendezvous;
let work: string;
let alpha: Agent;
let beta: Agent;
let receiver: ChildProcess;
const hits: Array<{ event: string; delivery: string; signature: string; raw: string }> = [];
let port = 0;

before(async () => {
  if (skip) return;
  lab = new NatLab();
  const ha = lab.addSite('symmetric', 'wra').hosts[0]!;
  const hb = lab.addSite('symmetric', 'wrb').hosts[0]!;
  work = tmpDir('pilot-hookrelay-');
  rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rendezvous') });
  const agent = async (name: string, ns: string): Promise<Agent> => {
    const a = new Agent(name, work, ns);
    await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${name}@example.com`, '--hostname', name, '--listen', '0.0.0.0:0']);
    return a;
  };
  alpha = await agent('hookrelay-alpha', ha.ns);
  beta = await agent('hookrelay-beta', hb.ns);
  receiver = lab.spawn(ha.ns, [process.execPath, path.join(ROOT, 'test/services/fixtures/webhook-receiver.ts')]);
  let buf = '';
  receiver.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      const m = /^ready (\d+)$/.exec(l);
      if (m) port = Number(m[1]);
      else hits.push(JSON.parse(l));
    }
  });
  for (let i = 0; i < 100 && port === 0; i++) await sleep(100);
  assert.ok(port > 0, 'webhook receiver started');
});

after(async () => {
  if (skip) return;
  receiver?.kill('SIGKILL');
  for (const a of [alpha, beta]) await a?.stop();
  await rdv?.kill();
  lab?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('symmetric x symmetric: the webhook gets a signed relay_activated for the peer', { skip }, async () => {
  const set = await alpha.ctl(['set-webhook', `http://127.0.0.1:${port}/hook`]);
  assert.equal(set.code, 0, set.stderr);
  const secret: string = set.json.data.secret;
  await trustEachOther(alpha, beta);
  const ping = await beta.ctl(['ping', alpha.address, '--count', '3', '--interval', '200ms']);
  assert.equal(ping.code, 0, ping.stderr);
  assert.match(ping.json.data.path, /^relay/);
  const end = Date.now() + 20_000;
  while (!hits.some((h) => h.event === 'relay_activated') && Date.now() < end) await sleep(100);
  const h = hits.find((x) => x.event === 'relay_activated');
  assert.ok(h, `events: ${hits.map((x) => x.event).join(', ')}`);
  assert.equal(verifySignature(secret, h.raw, h.signature), true, 'HMAC of the raw body with the secret');
  assert.equal(verifySignature('0'.repeat(64), h.raw, h.signature), false);
  const body = JSON.parse(h.raw);
  assert.equal(body.event, 'relay_activated');
  assert.equal(body.id, h.delivery);
  assert.equal(body.node, alpha.address);
  assert.equal(body.data.peer, beta.address);
  assert.match(body.data.path, /^relay/);
  assert.ok(
    hits.every((x) => verifySignature(secret, x.raw, x.signature)),
    'every event signed',
  );
  // never direct between two symmetric NATs
  assert.equal(
    hits.some((x) => x.event === 'path_upgraded'),
    false,
  );
});
