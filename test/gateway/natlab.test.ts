// The lab scenario: an agent behind one NAT serves a real HTTP server
// (python's http.server) exposed on virtual port 80; an agent behind another
// NAT runs `pilotctl gateway start --ports 80,81 <server>`; real curl in that
// agent's machine fetches through http://10.4.0.1/. An agent behind a third
// (symmetric) NAT that is not trusted gets refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { NatLab, RENDEZVOUS_IP, natLabSupport, type Host } from '../helpers/natlab.ts';
import { trustExposeGateway } from './setup.ts';

const support = natLabSupport();
const skip = support.ok ? false : support.reason;
const MB = 1024 * 1024;

let lab: NatLab;
let rdv: Rendezvous;
let work: string;
let serverHost: Host;
let gwHost: Host;
let strangerHost: Host;
let server: Agent;
let client: Agent;
let stranger: Agent;
const procs: ChildProcess[] = [];
const hashes = new Map<string, string>();
const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

function ready(p: ChildProcess, re: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${what} not ready: ${seen}`)), 15_000);
    const on = (c: Buffer): void => {
      seen += c.toString();
      if (re.test(seen)) {
        clearTimeout(timer);
        resolve();
      }
    };
    p.stdout!.on('data', on);
    p.stderr!.on('data', on);
  });
}

/** curl inside a host's namespace; the body is hashed as bytes (pipefail: curl's failure is the result). */
async function fetch(h: Host, url: string, timeoutS = 120): Promise<{ code: number; hash: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const r = await run(
    ['bash', '-c', `set -o pipefail; ip netns exec ${h.ns} curl -sS --fail --max-time ${timeoutS} ${url} | sha256sum`],
    {},
    (timeoutS + 10) * 1000,
  );
  return { code: r.code, hash: r.stdout.split(' ')[0] ?? '', stderr: r.stderr, ms: Date.now() - t0 };
}

before(async () => {
  if (skip) return;
  lab = new NatLab();
  serverHost = lab.addSite('cone', 'srv').hosts[0]!;
  gwHost = lab.addSite('cone', 'gw').hosts[0]!;
  strangerHost = lab.addSite('symmetric', 'str').hosts[0]!;
  work = tmpDir('pilot-gwlab-');
  const www = path.join(work, 'www');
  fs.mkdirSync(www);
  const big = crypto.randomBytes(20 * MB);
  fs.writeFileSync(path.join(www, 'big.bin'), big);
  hashes.set('big.bin', sha256(big));
  for (let i = 0; i < 50; i++) {
    const b = crypto.randomBytes(64 * 1024 + i);
    fs.writeFileSync(path.join(www, `s-${i}.bin`), b);
    hashes.set(`s-${i}.bin`, sha256(b));
  }
  rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rendezvous') });
  const agent = async (name: string, h: Host): Promise<Agent> => {
    const a = new Agent(name, work, h.ns);
    await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${name}@example.com`, '--hostname', name, '--listen', '0.0.0.0:0']);
    return a;
  };
  server = await agent('lab-server', serverHost);
  client = await agent('lab-gw', gwHost);
  stranger = await agent('lab-stranger', strangerHost);
  const py = lab.spawn(serverHost.ns, ['python3', '-m', 'http.server', '8080', '--bind', '127.0.0.1', '--directory', www]);
  procs.push(py);
  await ready(py, /Serving HTTP/, 'http.server');
  const svc = lab.spawn(serverHost.ns, [process.execPath, path.join(ROOT, 'test/gateway/fixtures/services.ts'), '8081']);
  procs.push(svc);
  await ready(svc, /ready/, 'services');
  await trustExposeGateway(client, server, [
    ['80', '127.0.0.1:8080'],
    ['81', '127.0.0.1:8081'],
  ]);
});

after(async () => {
  if (skip) return;
  for (const p of procs) p.kill('SIGKILL');
  for (const a of [server, client, stranger]) await a?.stop();
  await rdv?.kill();
  lab?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('NAT lab: curl behind one NAT fetches 20 MiB from http.server behind another, through http://10.4.0.1/', { skip }, async () => {
  const r = await fetch(gwHost, 'http://10.4.0.1/big.bin');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.hash, hashes.get('big.bin'));
  const peers = await client.ctl(['peers']);
  const p = peers.json.data.peers.find((x: { address: string }) => x.address === server.address);
  console.log(
    `# NAT lab (cone x cone): 20 MiB through the gateway in ${(r.ms / 1000).toFixed(2)} s = ${((20 * MB) / 1e6 / (r.ms / 1000)).toFixed(1)} MB/s, path ${p?.path}`,
  );
});

test('NAT lab: 50 concurrent curls through the gateway all succeed', { skip }, async () => {
  const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => fetch(gwHost, `http://10.4.0.1/s-${i}.bin`, 60)));
  rs.forEach((r, i) => {
    assert.equal(r.code, 0, `curl ${i}: ${r.stderr}`);
    assert.equal(r.hash, hashes.get(`s-${i}.bin`), `curl ${i}`);
  });
});

test('NAT lab: a long-lived chunked response streams through the gateway', { skip }, async () => {
  const p = lab.spawn(gwHost.ns, ['curl', '-sS', '-N', '--max-time', '30', 'http://10.4.0.1:81/stream']);
  const at: number[] = [];
  const t0 = Date.now();
  let text = '';
  p.stdout!.on('data', (c: Buffer) => {
    text += c.toString();
    at.push(Date.now() - t0);
  });
  const code = await new Promise<number | null>((res) => p.on('close', res));
  assert.equal(code, 0);
  assert.equal(text.trim().split('\n').length, 17);
  assert.ok(text.endsWith('done\n'));
  assert.ok(at.at(-1)! - at[0]! > 3000, `data arrived over ${at.at(-1)! - at[0]!} ms`);
});

test("NAT lab: an untrusted agent's gateway is refused fast", { skip }, async () => {
  const gw = await stranger.ctl(['gateway', 'start', '--ports', '80', server.address]);
  assert.equal(gw.code, 0, gw.stderr);
  const t0 = Date.now();
  const r = await run(['ip', 'netns', 'exec', strangerHost.ns, 'curl', '-sS', '--max-time', '20', '-o', '/dev/null', 'http://10.4.0.1/big.bin'], {}, 30_000);
  assert.notEqual(r.code, 0);
  assert.notEqual(r.code, 28, 'no hang until the timeout');
  assert.ok(Date.now() - t0 < 5000, `refused after ${Date.now() - t0} ms`);
  const list = await stranger.ctl(['gateway', 'list']);
  assert.ok(['NOT_TRUSTED', 'NOT_FOUND'].includes(list.json.data.mappings[0].lastRefusal?.code), JSON.stringify(list.json.data.mappings[0]));
});
