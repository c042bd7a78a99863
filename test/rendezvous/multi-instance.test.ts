// Scale-out over real processes: one private PostgreSQL cluster, two
// pilot-rendezvous processes sharing it (--store postgres://…), two daemons
// each registered at a different instance. They find each other, trust each
// other (the trust pushes cross instances), ping and stream. The second test
// puts both daemons behind symmetric NATs (NAT lab), so the only way is the
// relay: a's packets go a -> rendezvous 1 -> rendezvous 2 -> b.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir, type CtlResult, type Rendezvous } from '../helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP } from '../helpers/natlab.ts';
import { pgSkipReason, startPostgres } from '../helpers/postgres.ts';
import { trustPair } from '../nat/matrix.ts';

const pgSkip = pgSkipReason();
const ECHO_SCRIPT = path.join(ROOT, 'test/helpers/echo-transfer.ts');

function must(r: CtlResult, what: string): CtlResult {
  assert.equal(r.code, 0, `${what}: ${r.stderr || r.stdout}`);
  return r;
}

/** The daemon logged a registry push of this event (it can only have come from its own rendezvous). */
async function waitForPush(agent: Agent, event: string, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!agent.log().includes(`"event":"${event}"`)) {
    if (Date.now() - t0 > ms) assert.fail(`${agent.name} got no ${event} push in ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function echo(from: Agent, to: Agent, bytes: number): Promise<{ bytes: number; sentHash: string; echoHash: string; seconds: number }> {
  const argv = [process.execPath, ECHO_SCRIPT, from.socket, to.address, String(bytes)];
  const r = await run(from.netns ? ['ip', 'netns', 'exec', from.netns, ...argv] : argv, {}, 60_000);
  assert.equal(r.code, 0, `echo-transfer: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function pathTo(r: CtlResult, address: string): string | undefined {
  return (r.json.data.peers as { address: string; pathType: string }[]).find((p) => p.address === address)?.pathType;
}

test('two rendezvous instances on one PostgreSQL: nodes at different instances find, trust, ping and stream', { skip: pgSkip, timeout: 120_000 }, async () => {
  const pg = startPostgres();
  const work = tmpDir('pilot-multi-');
  const rdvs: Rendezvous[] = [];
  const agents: Agent[] = [];
  try {
    for (const n of [1, 2]) rdvs.push(await startRendezvous({ dataDir: path.join(work, `rdv${n}`), args: ['--store', pg.url] }));
    const [r1, r2] = rdvs as [Rendezvous, Rendezvous];
    const a = new Agent('alpha', work);
    const b = new Agent('beta', work);
    agents.push(a, b);
    await a.start(['--registry', r1.addr, '--email', 'a@example.com', '--hostname', 'alpha', '--listen', '127.0.0.1:0']);
    await b.start(['--registry', r2.addr, '--email', 'b@example.com', '--hostname', 'beta', '--public', '--listen', '127.0.0.1:0']);
    assert.notEqual(a.address, b.address, 'one shared address space');

    // b is registered at instance 2 only; instance 1 knows where it is online.
    const found = must(await a.ctl(['find', 'beta']), 'find').json.data;
    assert.equal(found.address, b.address);
    assert.equal(found.online, true, 'presence crosses instances');

    // a's request is pushed to b by instance 2; b's approval to a by instance 1.
    await trustPair(a, b, 30_000);
    await waitForPush(b, 'trust_request');
    await waitForPush(a, 'trust_approved');

    const ping = must(await a.ctl(['ping', 'beta', '--count', '3', '--interval', '200ms', '--timeout', '3s']), 'ping').json.data;
    assert.equal(ping.received, 3);
    const back = must(await b.ctl(['ping', a.address, '--count', '2', '--interval', '200ms', '--timeout', '3s']), 'ping back').json.data;
    assert.equal(back.received, 2);

    const bytes = 2 * 1024 * 1024;
    const out = await echo(a, b, bytes);
    assert.equal(out.bytes, bytes);
    assert.equal(out.echoHash, out.sentHash);
    const peers = must(await a.ctl(['peers']), 'peers');
    console.log(`# a@rdv1 <-> b@rdv2: ping ${ping.avgMs} ms, ${bytes >> 20} MiB echoed in ${out.seconds}s, path ${pathTo(peers, b.address)}`);
  } finally {
    await Promise.all(agents.map((x) => x.stop()));
    await Promise.all(rdvs.map((r) => r.kill()));
    pg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
});

const labSupport = natLabSupport();

test('forced relay across instances: symmetric x symmetric, each node at its own rendezvous', {
  skip: pgSkip || (labSupport.ok ? false : labSupport.reason),
  timeout: 180_000,
}, async () => {
  const pg = startPostgres();
  const lab = new NatLab();
  const work = tmpDir('pilot-multi-relay-');
  const rdvs: Rendezvous[] = [];
  const agents: Agent[] = [];
  try {
    const hosts = [lab.addSite('symmetric', 'sym1').hosts[0]!, lab.addSite('symmetric', 'sym2').hosts[0]!];
    // Both instances on the rendezvous machine, different ports (beacon alt ports 9001 and 9101).
    for (const port of [9000, 9100]) {
      rdvs.push(
        await startRendezvous({
          netns: lab.rendezvous.ns,
          listen: `${RENDEZVOUS_IP}:${port}`,
          dataDir: path.join(work, `rdv${port}`),
          args: ['--store', pg.url],
        }),
      );
    }
    const [a, b] = hosts.map((h) => new Agent(h.name, work, h.ns)) as [Agent, Agent];
    agents.push(a, b);
    await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', 'a@example.com', '--hostname', 'sym-a', '--listen', '0.0.0.0:0']);
    await b.start(['--registry', `${RENDEZVOUS_IP}:9100`, '--email', 'b@example.com', '--hostname', 'sym-b', '--listen', '0.0.0.0:0']);

    await trustPair(a, b, 30_000);
    const bytes = 1024 * 1024;
    const out = await echo(a, b, bytes);
    assert.equal(out.bytes, bytes);
    assert.equal(out.echoHash, out.sentHash);
    const ping = must(await a.ctl(['ping', b.address, '--count', '3', '--interval', '200ms', '--timeout', '3s']), 'ping').json.data;
    assert.equal(ping.received, 3);
    const [pa, pb] = await Promise.all([a.ctl(['peers']), b.ctl(['peers'])]);
    assert.equal(pathTo(must(pa, 'peers a'), b.address), 'relay');
    assert.equal(pathTo(must(pb, 'peers b'), a.address), 'relay');
    console.log(`# sym@rdv1 <-> sym@rdv2 relayed instance to instance: ping ${ping.avgMs} ms, ${bytes >> 20} MiB echoed in ${out.seconds}s`);
  } finally {
    await Promise.all(agents.map((x) => x.stop()));
    await Promise.all(rdvs.map((r) => r.kill()));
    lab.cleanup();
    pg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
