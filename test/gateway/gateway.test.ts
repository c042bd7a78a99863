// The seed's promise, for real: `pilotctl gateway start --ports 80 <target>`,
// then an unmodified `curl http://10.4.0.1/` reaches the target's virtual port
// 80, which the target exposes to a real HTTP server (python's http.server).
// Two (three) real daemons and a rendezvous, all in one network namespace we
// create, so the loopback aliases never touch the host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { Lab, netnsSupport } from '../helpers/netns.ts';
import { trustExposeGateway } from './setup.ts';

const support = netnsSupport();
const skip = support.ok ? false : support.reason;
const MB = 1024 * 1024;
const FIXTURES = path.join(ROOT, 'test/gateway/fixtures');

let lab: Lab;
let ns: string;
let rdv: Rendezvous;
let work: string;
let files: string;
let server: Agent; // exposes virtual ports 80 (http.server), 81 (node http + ws), 82 (half-close echo), 83 (endless source)
let client: Agent; // runs the gateway
let stranger: Agent; // never trusted
const procs: ChildProcess[] = [];
const hashes = new Map<string, string>();

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
const inNs = (argv: string[], timeoutMs?: number) => run(['ip', 'netns', 'exec', ns, ...argv], {}, timeoutMs);

/** A long-running process inside the namespace; resolves once `ready` (a regex) shows on stdout/stderr. */
function startIn(argv: string[], ready: RegExp): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} not ready: ${seen}`)), 15_000);
    const on = (c: Buffer): void => {
      seen += c.toString();
      if (ready.test(seen)) {
        clearTimeout(timer);
        resolve(p);
      }
    };
    p.stdout!.on('data', on);
    p.stderr!.on('data', on);
    p.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited ${code}: ${seen}`)));
  });
}

/** Wait until something answers on host:port inside the namespace. */
async function waitHttp(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await inNs(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', url], 5000);
    if (r.stdout === '200') return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`${url} never answered`);
}

async function curlFile(url: string): Promise<{ code: number; hash: string; stderr: string }> {
  const out = path.join(work, `got-${crypto.randomBytes(4).toString('hex')}`);
  const r = await inNs(['curl', '-sS', '--fail', '--max-time', '120', '-o', out, url], 130_000);
  const hash = fs.existsSync(out) ? sha256(fs.readFileSync(out)) : '';
  fs.rmSync(out, { force: true });
  return { code: r.code, hash, stderr: r.stderr };
}

const aliases = (): string => inNsSync(['ip', '-4', '-o', 'addr', 'show', 'dev', 'lo']);
function inNsSync(argv: string[]): string {
  return lab.exec(ns, argv);
}

before(async () => {
  if (skip) return;
  lab = new Lab();
  ns = lab.ns('gw');
  work = tmpDir('pilot-gw-');
  files = path.join(work, 'www');
  fs.mkdirSync(files);
  const big = crypto.randomBytes(20 * MB);
  fs.writeFileSync(path.join(files, 'big.bin'), big);
  hashes.set('big.bin', sha256(big));
  for (let i = 0; i < 50; i++) {
    const small = crypto.randomBytes(256 * 1024 + i);
    fs.writeFileSync(path.join(files, `small-${i}.bin`), small);
    hashes.set(`small-${i}.bin`, sha256(small));
  }
  rdv = await startRendezvous({ netns: ns, listen: '127.0.0.1:0' });
  const agent = async (name: string): Promise<Agent> => {
    const a = new Agent(name, work, ns);
    await a.start(['--registry', rdv.addr, '--email', `${name}@example.com`, '--hostname', name, '--listen', '127.0.0.1:0']);
    return a;
  };
  server = await agent('gw-server');
  client = await agent('gw-client');
  stranger = await agent('gw-stranger');
  await startIn(['python3', '-m', 'http.server', '8080', '--bind', '127.0.0.1', '--directory', files], /Serving HTTP/);
  await startIn([process.execPath, path.join(FIXTURES, 'services.ts'), '8081'], /ready/);
  await waitHttp('http://127.0.0.1:8080/small-0.bin');
  await trustExposeGateway(client, server, [
    ['80', '127.0.0.1:8080'],
    ['81', '127.0.0.1:8081'],
    ['82', '127.0.0.1:8082'],
    ['83', '127.0.0.1:8083'],
  ]);
});

after(async () => {
  if (skip) return;
  for (const p of procs) p.kill('SIGKILL');
  for (const a of [server, client, stranger]) await a?.stop();
  await rdv?.kill();
  lab.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
});

test('the seed command: curl fetches a 20 MiB file through http://10.4.0.1/ and the hash matches', { skip }, async () => {
  assert.match(aliases(), /inet 10\.4\.0\.1\/32/, 'the gateway added the loopback alias');
  const t0 = Date.now();
  const r = await curlFile('http://10.4.0.1/big.bin');
  const secs = (Date.now() - t0) / 1000;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.hash, hashes.get('big.bin'));
  console.log(`# 20 MiB through the gateway in ${secs.toFixed(2)} s = ${((20 * 1.048576) / secs).toFixed(1)} MB/s`);
  const list = await client.ctl(['gateway', 'list']);
  const m = list.json.data.mappings[0];
  assert.equal(m.target, server.address);
  assert.equal(m.trusted, true);
  assert.ok(m.bytesOut >= 20 * MB, `bytesOut ${m.bytesOut}`);
  // the gateway listens only on the mapped address: every listener on its ports is 10.4.0.1
  const listeners = inNsSync(['ss', '-Hltn'])
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[3])
    .filter((a): a is string => a !== undefined && /:(80|81|82|83)$/.test(a));
  assert.deepEqual(listeners.sort(), ['10.4.0.1:80', '10.4.0.1:81', '10.4.0.1:82', '10.4.0.1:83']);
});

test('50 concurrent curls through the gateway all succeed', { skip }, async () => {
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => curlFile(`http://10.4.0.1/small-${i}.bin`)));
  results.forEach((r, i) => {
    assert.equal(r.code, 0, `curl ${i}: ${r.stderr}`);
    assert.equal(r.hash, hashes.get(`small-${i}.bin`), `curl ${i} hash`);
  });
});

test('a long-lived chunked response streams through (lines arrive over ~4 s, not at the end)', { skip }, async () => {
  // curl -N prints each chunk as it arrives; we timestamp lines on arrival.
  const p = spawn('ip', ['netns', 'exec', ns, 'curl', '-sS', '-N', '--max-time', '30', 'http://10.4.0.1:81/stream'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const arrivals: Array<{ line: string; at: number }> = [];
  const t0 = Date.now();
  let buf = '';
  p.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      arrivals.push({ line: buf.slice(0, i), at: Date.now() - t0 });
      buf = buf.slice(i + 1);
    }
  });
  const code = await new Promise<number | null>((res) => p.on('close', res));
  assert.equal(code, 0);
  assert.equal(arrivals.length, 17, arrivals.map((a) => a.line).join('|'));
  assert.equal(arrivals.at(-1)!.line, 'done');
  const spread = arrivals.at(-1)!.at - arrivals[0]!.at;
  assert.ok(spread > 3000, `chunks arrived over ${spread} ms: streamed, not buffered`);
});

test('a WebSocket echo through the gateway (upgrade, 10 messages over 2 s)', { skip }, async () => {
  const r = await inNs([process.execPath, path.join(FIXTURES, 'clients.ts'), 'ws', 'ws://10.4.0.1:81/', '10'], 30_000);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout.trim());
  assert.equal(out.echoed, 10);
  assert.ok(out.ms >= 1800, `took ${out.ms} ms`);
});

test('half-close both ways: the client FIN reaches the service, the reply and its FIN come back', { skip }, async () => {
  const r = await inNs([process.execPath, path.join(FIXTURES, 'clients.ts'), 'halfclose', '10.4.0.1', '82', String(3 * MB)], 60_000);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout.trim());
  assert.equal(out.reply, out.sent);
});

test('backpressure end to end: a client that stops reading stops the source behind the far agent', { skip }, async () => {
  const r = await inNs([process.execPath, path.join(FIXTURES, 'clients.ts'), 'stall', '10.4.0.1', '83', '3000', 'http://127.0.0.1:8081/sourced'], 60_000);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout.trim());
  console.log(
    `# stalled reader: source handed ${(out.stalled / MB).toFixed(1)} MiB to the kernel, then stopped (${(out.stalledLater / MB).toFixed(1)} MiB 0.5 s later)`,
  );
  // Everything in flight is bounded by socket buffers and stream windows; without backpressure
  // the source would have pushed hundreds of MiB in 3 s.
  assert.ok(out.stalled > 0 && out.stalled < 64 * MB, `in flight while stalled: ${out.stalled}`);
  assert.equal(out.stalledLater, out.stalled, 'the source is stopped, not just slow');
  assert.ok(out.after >= out.stalled + 16 * MB, `the source resumed once the client read (${out.after})`);
});

test("an untrusted agent's gateway is refused: curl gets a reset at once, no hang", { skip }, async () => {
  // Same namespace: 10.4.0.1 is busy on those ports, so the stranger's gateway takes 10.4.0.2.
  const gw = await stranger.ctl(['gateway', 'start', '--ports', '80', server.address]);
  assert.equal(gw.code, 0, gw.stderr);
  const ip = gw.json.data.mappings[0].ip;
  assert.equal(ip, '10.4.0.2');
  assert.equal(gw.json.data.mappings[0].trusted, false);
  const t0 = Date.now();
  const r = await inNs(['curl', '-sS', '--max-time', '20', `http://${ip}/big.bin`, '-o', '/dev/null'], 30_000);
  const ms = Date.now() - t0;
  assert.notEqual(r.code, 0, 'curl must fail');
  assert.notEqual(r.code, 28, 'curl must not time out');
  assert.ok(ms < 5000, `refused after ${ms} ms`);
  const list = await stranger.ctl(['gateway', 'list']);
  assert.equal(list.json.data.mappings[0].refused, 1);
  assert.ok(['NOT_TRUSTED', 'NOT_FOUND'].includes(list.json.data.mappings[0].lastRefusal.code), JSON.stringify(list.json.data.mappings[0].lastRefusal));
  assert.equal((await stranger.ctl(['gateway', 'stop'])).code, 0);
  assert.doesNotMatch(aliases(), /inet 10\.4\.0\.2\//, 'the stranger removed its alias');
});

test('an exposed service that is down: the remote curl gets a reset at once', { skip }, async () => {
  assert.equal((await server.ctl(['expose', '84', '127.0.0.1:9'])).code, 0); // nothing listens on TCP 9
  const m = await client.ctl(['gateway', 'map', server.address, '10.4.0.9', '--ports', '84']);
  assert.equal(m.code, 0, m.stderr);
  const t0 = Date.now();
  const r = await inNs(['curl', '-sS', '--max-time', '20', 'http://10.4.0.9:84/'], 30_000);
  assert.notEqual(r.code, 0);
  assert.notEqual(r.code, 28);
  assert.ok(Date.now() - t0 < 5000);
  const ex = await server.ctl(['expose', 'list']);
  assert.equal(ex.json.data.exposes.find((e: { port: number }) => e.port === 84).refused, 1);
  assert.equal((await server.ctl(['expose', 'remove', '84'])).code, 0);
  assert.equal((await client.ctl(['gateway', 'unmap', '10.4.0.9'])).code, 0);
  assert.doesNotMatch(aliases(), /inet 10\.4\.0\.9\//);
});

test('explicit address and local=virtual ports: gateway map <target> 10.4.7.7 --ports 8080=80', { skip }, async () => {
  const m = await client.ctl(['gateway', 'map', server.address, '10.4.7.7', '--ports', '8080=80']);
  assert.equal(m.code, 0, m.stderr);
  const r = await curlFile('http://10.4.7.7:8080/small-3.bin');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.hash, hashes.get('small-3.bin'));
  assert.equal((await client.ctl(['gateway', 'unmap', '10.4.7.7'])).code, 0);
  const gone = await inNs(['curl', '-sS', '--max-time', '3', 'http://10.4.7.7:8080/'], 10_000);
  assert.notEqual(gone.code, 0);
  // a hostname works as a target too (resolved through the registry at connect time)
  const byName = await client.ctl(['gateway', 'map', 'gw-server', '10.4.7.8', '--ports', '80']);
  assert.equal(byName.code, 0, byName.stderr);
  assert.equal(byName.json.data.target, 'gw-server');
  assert.equal(byName.json.data.trusted, true);
  const r2 = await curlFile('http://10.4.7.8/small-4.bin');
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(r2.hash, hashes.get('small-4.bin'));
  assert.equal((await client.ctl(['gateway', 'unmap', 'gw-server'])).code, 0);
});

test('mappings and exposes survive daemon restarts (state in gateway.json / expose.json, 0600)', { skip }, async () => {
  const st = fs.statSync(path.join(client.home, 'gateway.json'));
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(server.home, 'expose.json')).mode & 0o777, 0o600);
  await client.stop();
  assert.doesNotMatch(aliases(), /inet 10\.4\.0\.1\//, 'daemon stop closes listeners and removes the alias');
  await server.stop();
  await server.start([]);
  await client.start([]);
  const list = await client.ctl(['gateway', 'list']);
  assert.equal(list.json.data.mappings.length, 1);
  assert.equal(list.json.data.mappings[0].ip, '10.4.0.1');
  assert.equal(list.json.data.mappings[0].listening, true);
  const ex = await server.ctl(['expose', 'list']);
  assert.deepEqual(ex.json.data.exposes.map((e: { port: number }) => e.port).sort(), [80, 81, 82, 83]);
  const r = await curlFile('http://10.4.0.1/small-7.bin');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.hash, hashes.get('small-7.bin'));

  // A crash (kill -9) leaves the alias behind; the restarted daemon takes it over as its own.
  client.kill9();
  await new Promise((res) => setTimeout(res, 300));
  assert.match(aliases(), /inet 10\.4\.0\.1\//);
  await client.start([]);
  const after = await client.ctl(['gateway', 'list']);
  assert.equal(after.json.data.mappings[0].listening, true);
  assert.equal(after.json.data.mappings[0].alias, 'added');
  const r3 = await curlFile('http://10.4.0.1/small-8.bin');
  assert.equal(r3.code, 0, r3.stderr);
  assert.equal(r3.hash, hashes.get('small-8.bin'));
});

test('gateway stop removes every mapping and the alias, and they stay gone after a restart', { skip }, async () => {
  const stop = await client.ctl(['gateway', 'stop']);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(stop.json.data.stopped.length, 1);
  assert.doesNotMatch(aliases(), /inet 10\.4\.0\.1\//);
  const r = await inNs(['curl', '-sS', '--max-time', '3', 'http://10.4.0.1/'], 10_000);
  assert.notEqual(r.code, 0);
  await client.stop();
  await client.start([]);
  assert.equal((await client.ctl(['gateway', 'list'])).json.data.mappings.length, 0);
});

test('usage and argument errors are coded', { skip }, async () => {
  const noTarget = await client.ctl(['gateway', 'start']);
  assert.equal(noTarget.code, 2);
  const badPorts = await client.ctl(['gateway', 'start', '--ports', '80,x', server.address]);
  assert.equal(badPorts.code, 1);
  assert.equal(badPorts.json.code, 'BAD_ARGUMENT');
  const badTarget = await client.ctl(['gateway', 'start', 'not a target!']);
  assert.equal(badTarget.json.code, 'BAD_ADDRESS');
  const unmap = await client.ctl(['gateway', 'unmap', '10.4.99.99']);
  assert.equal(unmap.json.code, 'NOT_FOUND');
  const taken = await server.ctl(['expose', '7', '127.0.0.1:8080']); // echo owns virtual port 7
  assert.equal(taken.json.code, 'BAD_ARGUMENT');
  const ctx = await client.ctl(['context']);
  const names = ctx.json.data.commands.map((c: { name: string }) => c.name);
  for (const n of ['gateway start', 'gateway map', 'gateway unmap', 'gateway list', 'gateway stop', 'expose add', 'expose list', 'expose remove'])
    assert.ok(names.includes(n), n);
});
