// pilotctl's conventions against real daemons (issue 17): --version, status, exit
// codes 2 (usage and value errors) vs 1 (failures), hostnames in lists, task show,
// the private-node hint of find/handshake, and send-file's Ctrl-C.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, run, type Agent } from '../helpers/cluster.ts';
import { startPair, sleep, type Pair } from '../services/helpers.ts';

const PILOTCTL = path.join(ROOT, 'src/cli/pilotctl.ts');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

let p: Pair;

before(async () => {
  p = await startPair('cli');
});

after(async () => {
  await p?.stop();
});

/** pilotctl as `agent` without --json: what a person sees. */
function human(agent: Agent, args: string[]) {
  return run([process.execPath, PILOTCTL, ...args], { PILOT_HOME: agent.home, PILOT_SOCKET: agent.socket });
}

test('--version and -V print the package version; --json gives an object', async () => {
  for (const flag of ['--version', '-V']) {
    const r = await run([process.execPath, PILOTCTL, flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version);
  }
  const j = await run([process.execPath, PILOTCTL, '--json', '--version']);
  assert.equal(j.code, 0);
  assert.equal(j.json.data.version, pkg.version);
  assert.equal(j.json.data.node, process.version);
});

test('status: this node, the registry, and each peer with hostname, path and RTT', async () => {
  const ping = await p.a.ctl(['ping', p.b.name, '--count', '2', '--interval', '50ms'], 60_000);
  assert.equal(ping.code, 0, `${ping.stdout} ${ping.stderr} ${p.a.log().slice(-2000)}`);
  const j = await p.a.ctl(['status']);
  assert.equal(j.code, 0, j.stderr);
  const s = j.json.data;
  assert.equal(s.self.address, p.a.address);
  assert.equal(s.self.hostname, p.a.name);
  assert.equal(s.registry.address, p.rdv.addr);
  assert.equal(s.registry.online, true);
  const beta = s.peers.find((x: { address: string }) => x.address === p.b.address);
  assert.ok(beta, JSON.stringify(s.peers));
  assert.equal(beta.hostname, p.b.name);
  assert.equal(beta.connected, true);
  assert.equal(beta.trusted, true);
  assert.match(beta.path, /^direct 127\.0\.0\.1:\d+$/);
  assert.equal(typeof beta.rttMs, 'number');

  const h = await human(p.a, ['status']);
  assert.equal(h.code, 0, h.stderr);
  const lines = h.stdout.split('\n');
  assert.match(lines[0]!, new RegExp(`^${reEscape(p.a.address)}\\s+${p.a.name}\\s+this node\\s+private, NAT `));
  const peerLine = lines.find((l) => l.startsWith(p.b.address));
  assert.ok(peerLine, h.stdout);
  assert.match(peerLine, new RegExp(`${p.b.name}\\s+direct 127\\.0\\.0\\.1:\\d+\\s+[\\d.]+ ms\\s+trusted`));
  assert.match(h.stdout, new RegExp(`# registry ${reEscape(p.rdv.addr)}: online`));
});

test('exit 2 for usage and value errors (nothing done), 1 for failures', async () => {
  const cases: Array<[string[], number, string]> = [
    [['no-such-command'], 2, 'USAGE'],
    [['ping'], 2, 'USAGE'], // missing argument
    [['ping', p.b.name, '--count', 'many'], 2, 'BAD_ARGUMENT'],
    [['ping', p.b.name, '--interval', 'soon'], 2, 'BAD_ARGUMENT'],
    [['ping', 'not a name!'], 2, 'BAD_ADDRESS'], // checked before the daemon is asked
    [['task', 'list', '--type', 'everything'], 2, 'BAD_ARGUMENT'], // the contract's own check, made locally
    [['send-message', p.b.name], 2, 'BAD_ARGUMENT'], // neither --data nor --data-file
    [['recv', '7', '--from', p.b.name], 2, 'BAD_ARGUMENT'],
    [['bench', p.b.name, '0'], 2, 'BAD_ARGUMENT'],
    // failures: the command was fine, running it was not
    [['find', 'nobody-by-this-name'], 1, 'NOT_FOUND'],
    [['task', 'accept', 'ffffffff'], 1, 'NOT_FOUND'],
    [['ping', p.a.address, '--count', '1'], 1, 'BAD_ARGUMENT'], // "that target is this node itself": the daemon's answer
  ];
  for (const [args, code, err] of cases) {
    const r = await p.a.ctl(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.json?.code, err, `${args.join(' ')}: ${r.stderr}`);
  }
  const noDaemon = await run([process.execPath, PILOTCTL, '--json', '--socket', path.join(p.work, 'none.sock'), 'info']);
  assert.equal(noDaemon.code, 1);
  assert.equal(noDaemon.json.code, 'NO_DAEMON');
});

test('lists name peers by hostname: inbox, received, task list; task show prints the results', async () => {
  const m = await p.a.ctl(['send-message', p.b.name, '--data', 'hello from alpha']);
  assert.equal(m.code, 0, m.stderr);
  const inbox = await human(p.b, ['inbox']);
  assert.match(inbox.stdout, new RegExp(`${p.a.name} \\(${reEscape(p.a.address)}\\)  text: hello from alpha`));
  const inboxJson = await p.b.ctl(['inbox']);
  assert.equal(inboxJson.json.data.messages[0].fromHostname, p.a.name);

  const file = path.join(p.work, 'note.txt');
  fs.writeFileSync(file, 'a small file');
  assert.equal((await p.a.ctl(['send-file', p.b.name, file])).code, 0);
  const rec = await human(p.b, ['received']);
  assert.match(rec.stdout, new RegExp(`${p.a.name} \\(${reEscape(p.a.address)}\\)\\s+12\\s+note\\.txt`));

  const sub = await p.a.ctl(['task', 'submit', p.b.name, '--task', 'count the lines']);
  assert.equal(sub.code, 0, sub.stderr);
  const id: string = sub.json.data.task.id;
  for (const step of [
    ['task', 'accept', id],
    ['task', 'execute', id],
    ['task', 'send-results', id, '--results', '42 lines\nin 3 files'],
  ]) {
    const r = await p.b.ctl(step);
    assert.equal(r.code, 0, `${step.join(' ')}: ${r.stderr}`);
  }
  const list = await human(p.b, ['task', 'list']);
  assert.match(list.stdout, new RegExp(`${id.slice(0, 8)}\\s+received\\s+completed\\s+${p.a.name} \\(${reEscape(p.a.address)}\\)`));

  // the receiver sees the results at once; the submitter once the result has travelled back
  const shown = await human(p.b, ['task', 'show', id.slice(0, 6)]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, new RegExp(`Task:     ${id}`));
  assert.match(shown.stdout, /Status: {3}completed/);
  assert.match(shown.stdout, /Description:\n {2}count the lines/);
  assert.match(shown.stdout, /Results:\n {2}42 lines\n {2}in 3 files/);
  let mine: { results: string | null } | undefined;
  for (let i = 0; i < 100 && mine?.results == null; i++) {
    const r = await p.a.ctl(['task', 'show', id]);
    assert.equal(r.code, 0, r.stderr);
    mine = r.json.data.task;
    if (mine?.results == null) await sleep(200);
  }
  assert.equal(mine?.results, '42 lines\nin 3 files');
  const missing = await p.a.ctl(['task', 'show', 'abc']);
  assert.equal(missing.code, 1);
  assert.equal(missing.json.code, 'NOT_FOUND');
  assert.match(missing.json.hint, /at least 4 characters/);
});

test('find / handshake of a private node by hostname: the hint says it may be private, use its address', async () => {
  const stranger = await p.stranger();
  for (const args of [
    ['find', p.a.name],
    ['handshake', p.a.name],
  ]) {
    const r = await stranger.ctl(args);
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.equal(r.json.code, 'NOT_FOUND', r.stderr);
    assert.match(r.json.hint, /may be private/, r.json.hint);
    assert.match(r.json.hint, /address/, r.json.hint);
  }
  // ...and the address works: the handshake goes out
  const byAddress = await stranger.ctl(['handshake', p.a.address]);
  assert.equal(byAddress.code, 0, byAddress.stderr);
});

test('send-file: Ctrl-C says how far it got and how to resume, exits 130; the same command resumes', async () => {
  const file = path.join(p.work, 'big.bin');
  const data = crypto.randomBytes(64 * 1024 * 1024);
  fs.writeFileSync(file, data);
  const child = spawn(process.execPath, [PILOTCTL, 'send-file', p.b.name, file], {
    env: { ...process.env, PILOT_HOME: p.a.home, PILOT_SOCKET: p.a.socket },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // interrupt once the receiver holds part of it
  const partDir = path.join(p.b.home, 'incoming');
  let part = 0;
  for (let i = 0; i < 1200 && part < 4 * 1024 * 1024; i++) {
    await sleep(50);
    const parts = fs.existsSync(partDir) ? fs.readdirSync(partDir) : [];
    part = parts.length === 1 ? fs.statSync(path.join(partDir, parts[0]!)).size : 0;
  }
  assert.ok(part > 0, 'the transfer got under way');
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /error \[INTERRUPTED\]: send-file interrupted: [\d.]+ of 64\.0 MiB \(\d+ bytes\) sent to /);
  assert.match(stderr, new RegExp(`hint: .*resumes.*pilotctl send-file ${p.b.name} ${reEscape(file)}`));
  await sleep(500);
  const again = await p.a.ctl(['send-file', p.b.name, file], 300_000);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(again.json.data.resumedFrom > 0, `resumed from ${again.json.data.resumedFrom}`);
});

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
