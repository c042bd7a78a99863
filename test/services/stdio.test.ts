// Port 1000, stdio, over real daemons and the real pilotctl: one-shot and
// interactive connect, recv from the queue (bounded and streamed), listen for
// datagrams; hostile input (over-long lines, binary garbage, a flood beyond the
// queue bound), untrusted peers, and the service switched off.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IpcClient, openPipe } from '../../src/ipc/client.ts';
import { ROOT, type Agent } from '../helpers/cluster.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import * as v from 'valibot';
import { DaemonConfigSchema } from '../../src/daemon/config.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { asPilotError } from '../../src/util/errors.ts';
import { startAgent, startPair, sleep, trustEachOther, type Pair } from './helpers.ts';

const MAX_LINE = 1024;
const QUEUE = 50;
let p: Pair;

before(async () => {
  // beta: a small line cap and queue, to reach both limits quickly
  p = await startPair('stdio', { bServices: { stdioMaxLineBytes: MAX_LINE, stdioQueue: QUEUE } });
});

after(async () => {
  await p?.stop();
});

/** A long-running pilotctl (--json) with piped stdin; stdout collected line by line. */
interface Live {
  proc: ChildProcess;
  lines: string[];
  stderr: () => string;
  waitFor(pred: (lines: string[]) => boolean, ms?: number): Promise<void>;
  exited: Promise<number>;
}

function live(agent: Agent, args: string[], json = true): Live {
  const proc = spawn(process.execPath, [path.join(ROOT, 'src/cli/pilotctl.ts'), ...(json ? ['--json'] : []), ...args], {
    env: { ...process.env, PILOT_HOME: agent.home, PILOT_SOCKET: agent.socket },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buf = '';
  let err = '';
  proc.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const closed = new Promise<number>((r) => proc.on('close', (code) => r(code ?? -1)));
  // a hung pilotctl fails the test instead of hanging it (and is killed)
  const exited = Promise.race([closed, sleep(30_000).then(() => (proc.kill('SIGKILL'), -999))]);
  return {
    proc,
    lines,
    stderr: () => err,
    exited,
    waitFor: async (pred, ms = 15_000) => {
      const end = Date.now() + ms;
      while (!pred(lines)) {
        if (Date.now() > end) assert.fail(`timed out on pilotctl ${args.join(' ')}: stdout ${JSON.stringify(lines)} stderr ${err}`);
        await sleep(50);
      }
    },
  };
}

const events = (lines: string[]): any[] =>
  lines
    .map((l) => JSON.parse(l))
    .filter((x) => x.event)
    .map((x) => x.data);

async function stdioStatus(agent: Agent): Promise<any> {
  const c = new IpcClient(agent.socket);
  try {
    return await c.call('stdio_status');
  } finally {
    c.close();
  }
}

async function drain(agent: Agent): Promise<void> {
  await agent.ctl(['recv', '1000', '--timeout', '300ms']);
}

test('connect --message: lines land in the peer queue; recv --count takes them (NDJSON with --json)', async () => {
  const c = await p.a.ctl(['connect', p.b.address, '--message', 'hello\r\nworld']);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.json.data.lines, 2);
  assert.equal(c.json.data.truncated, 0);
  const human = await p.a.ctl(['connect', 'stdio-beta', '--message', 'third line']);
  assert.equal(human.code, 0, human.stderr);

  const r = await p.b.ctl(['recv', '1000', '--count', '2', '--timeout', '5s']);
  assert.equal(r.code, 0, r.stderr);
  const got = events(r.stdout.trim().split('\n'));
  assert.deepEqual(
    got.map((m) => m.data),
    ['hello', 'world'],
  );
  assert.ok(got.every((m) => m.from === p.a.address && m.via === 'stream' && m.encoding === 'utf8' && m.truncated === false));
  assert.equal(r.json.data.received, 2);
  // the third is still queued; recv took the first two off the queue
  const r2 = await p.b.ctl(['recv', '1000', '--count', '1', '--timeout', '5s']);
  assert.deepEqual(
    events(r2.stdout.trim().split('\n')).map((m) => m.data),
    ['third line'],
  );
  const empty = await p.b.ctl(['recv', '1000', '--count', '1', '--timeout', '300ms']);
  assert.equal(empty.code, 1);
  assert.equal(empty.json.code, 'TIMEOUT');

  // a datagram to port 1000 is one message too
  assert.equal((await p.a.ctl(['send', p.b.address, '1000', '--data', 'by datagram'])).code, 0);
  const dg = await p.b.ctl(['recv', '1000', '--count', '1', '--timeout', '5s']);
  const [m] = events(dg.stdout.trim().split('\n'));
  assert.equal(m.data, 'by datagram');
  assert.equal(m.via, 'datagram');
});

test('recv 1000 without --count streams NDJSON as lines arrive, until the timeout', async () => {
  await drain(p.b);
  const rx = live(p.b, ['recv', '1000', '--timeout', '20s']);
  try {
    assert.equal((await p.a.ctl(['connect', p.b.address, '--message', 'first'])).code, 0);
    await rx.waitFor((l) => events(l).length === 1);
    // the first line is printed before the second is even sent: streamed, not collected
    assert.equal((await p.a.ctl(['connect', p.b.address, '--message', 'second'])).code, 0);
    await rx.waitFor((l) => events(l).length === 2);
    assert.deepEqual(
      events(rx.lines).map((m) => m.data),
      ['first', 'second'],
    );
  } finally {
    rx.proc.kill('SIGINT');
    await rx.exited;
  }
  // human output shows control characters escaped: no terminal escape sequences from a peer
  assert.equal((await p.a.ctl(['connect', p.b.address, '--message', 'red \x1b[31mtext\x07'])).code, 0);
  const h = live(p.b, ['recv', '1000', '--count', '1', '--timeout', '5s'], false);
  assert.equal(await h.exited, 0, h.stderr());
  assert.equal(h.lines[0], `${p.a.address}  red \\x1b[31mtext\\x07`);
});

test('interactive connect: two agents chat line by line through stdin/stdout', async () => {
  await drain(p.a);
  await drain(p.b);
  const ca = live(p.a, ['connect', p.b.address]);
  const cb = live(p.b, ['connect', 'stdio-alpha', '1000']);
  try {
    ca.proc.stdin!.write('hi from alpha\n');
    await cb.waitFor((l) => events(l).some((m) => m.data === 'hi from alpha'));
    cb.proc.stdin!.write('hi from beta\nand again\n');
    await ca.waitFor((l) => events(l).filter((m) => m.from === p.b.address).length === 2);
    assert.deepEqual(
      events(ca.lines).map((m) => m.data),
      ['hi from beta', 'and again'],
    );
    ca.proc.stdin!.end('bye\n');
    assert.equal(await ca.exited, 0, ca.stderr());
    const done = JSON.parse(ca.lines[ca.lines.length - 1]!);
    assert.equal(done.data.lines, 2); // "hi from alpha", "bye"
    assert.equal(done.data.sent, Buffer.byteLength('hi from alpha\nbye\n'));
    await cb.waitFor((l) => events(l).some((m) => m.data === 'bye'));
    cb.proc.stdin!.end();
    assert.equal(await cb.exited, 0, cb.stderr());
  } finally {
    ca.proc.kill();
    cb.proc.kill();
  }
  // the chat took its lines: nothing left in either queue
  assert.equal((await stdioStatus(p.a)).queued, 0);
});

test('interactive connect to another port is a raw stream (echo on port 7)', async () => {
  const c = live(p.a, ['connect', p.b.address, '7'], false);
  c.proc.stdin!.end('ping over the echo port\n');
  assert.equal(await c.exited, 0, c.stderr());
  assert.deepEqual(c.lines, ['ping over the echo port']);
});

test('listen prints datagrams as they arrive (NDJSON), unbounded until stopped; --count stops', async () => {
  const sender = new IpcClient(p.a.socket);
  const rx = live(p.b, ['listen', '5005']);
  try {
    // datagrams are unreliable and the listener starts asynchronously: send until heard
    for (let i = 0; i < 100 && events(rx.lines).length < 3; i++) {
      await sender.call('send', { target: p.b.address, port: 5005, data: `dg ${i}` });
      await sleep(100);
    }
    const got = events(rx.lines);
    assert.ok(got.length >= 3, rx.stderr());
    assert.ok(got.every((m) => /^dg \d+$/.test(m.data) && m.from === p.a.address && m.srcPort === 5005));
    assert.equal(rx.proc.exitCode, null, 'unbounded: still listening');
  } finally {
    rx.proc.kill('SIGINT');
    await rx.exited;
  }
  const two = live(p.b, ['listen', '5006', '--count', '2', '--timeout', '20s']);
  for (let i = 0; i < 100 && two.proc.exitCode === null; i++) {
    await sender.call('send', { target: p.b.address, port: 5006, data: `x${i}` });
    await sleep(100);
  }
  sender.close();
  assert.equal(await two.exited, 0, two.stderr());
  assert.equal(events(two.lines).length, 2);
  assert.equal(JSON.parse(two.lines[two.lines.length - 1]!).data.received, 2);
  const none = await p.b.ctl(['listen', '5007', '--count', '1', '--timeout', '300ms']);
  assert.equal(none.json.code, 'TIMEOUT');
});

test('hostile input: over-long lines are cut at the limit, binary garbage kept as base64, nothing crashes', async () => {
  await drain(p.b);
  const garbage = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x1b, 0x9b]);
  const long = Buffer.alloc(MAX_LINE * 5 + 17, 'A');
  const { socket } = await openPipe('dial', { target: p.b.address, port: 1000 }, p.a.socket);
  const reply: Buffer[] = [];
  socket.on('data', (c: Buffer) => reply.push(c));
  socket.resume(); // openPipe hands it over paused
  // the long line in small pieces (split across many transport chunks), then more lines
  for (let i = 0; i < long.length; i += 333) socket.write(long.subarray(i, i + 333));
  socket.write('\nafter the long one\n');
  socket.write(Buffer.concat([garbage, Buffer.from('\n')]));
  socket.write(Buffer.alloc(MAX_LINE, 'B')); // exactly the limit: kept whole
  socket.end('\nno newline at the end');
  await new Promise((r) => socket.on('close', r));
  const answer = JSON.parse(Buffer.concat(reply).toString());
  assert.deepEqual(answer, { ok: true, lines: 5, truncated: 1 });

  const r = await p.b.ctl(['recv', '1000', '--count', '5', '--timeout', '5s']);
  const got = events(r.stdout.trim().split('\n'));
  assert.equal(got[0].truncated, true);
  assert.equal(got[0].bytes, MAX_LINE);
  assert.equal(got[0].data, 'A'.repeat(MAX_LINE));
  assert.equal(got[1].data, 'after the long one');
  assert.equal(got[2].encoding, 'base64');
  assert.deepEqual(Buffer.from(got[2].data, 'base64'), garbage);
  assert.equal(got[3].data, 'B'.repeat(MAX_LINE));
  assert.equal(got[3].truncated, false);
  assert.equal(got[4].data, 'no newline at the end');

  // one-shot connect reports the cut
  const cut = await p.a.ctl(['connect', p.b.address, '--message', 'x'.repeat(MAX_LINE + 1)]);
  assert.equal(cut.json.data.truncated, 1);
  // a datagram longer than the limit is cut the same way
  assert.equal((await p.a.ctl(['send', p.b.address, '1000', '--data', 'y'.repeat(MAX_LINE + 76)])).code, 0);
  await sleep(300);
  assert.equal((await stdioStatus(p.b)).truncated, 3);
  await drain(p.b);

  // random garbage with no structure at all: the daemon keeps serving
  const { socket: s2 } = await openPipe('dial', { target: p.b.address, port: 1000 }, p.a.socket);
  s2.resume();
  s2.end(crypto.randomBytes(256 * 1024));
  await new Promise((r) => s2.on('close', r));
  const ping = await p.a.ctl(['ping', p.b.address, '--count', '1']);
  assert.equal(ping.code, 0, ping.stderr);
  await drain(p.b);
});

test('a flood beyond the queue bound drops the oldest lines and counts them', async () => {
  await drain(p.b);
  const before = await stdioStatus(p.b);
  const n = QUEUE * 4;
  const text = Array.from({ length: n }, (_, i) => `line ${i}`).join('\n');
  const c = await p.a.ctl(['connect', p.b.address, '--message', text]);
  assert.equal(c.json.data.lines, n);
  const st = await stdioStatus(p.b);
  assert.equal(st.queued, QUEUE);
  assert.equal(st.dropped - before.dropped, n - QUEUE);
  const r = await p.b.ctl(['recv', '1000', '--count', String(QUEUE), '--timeout', '5s']);
  const got = events(r.stdout.trim().split('\n')).map((m) => m.data);
  // the newest survived
  assert.deepEqual(
    got,
    Array.from({ length: QUEUE }, (_, i) => `line ${n - QUEUE + i}`),
  );
  assert.equal((await p.a.ctl(['ping', p.b.address, '--count', '1'])).code, 0);
});

test('stdio switched off in services.json: peers are refused, recv 1000 says where to switch it on', async () => {
  const c = await startAgent(p.rdv, p.work, 'stdio-off', [], { stdio: false });
  p.agents.push(c);
  await trustEachOther(p.a, c);
  const r = await p.a.ctl(['connect', c.address, '--message', 'anyone?']);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'CONNECTION_REFUSED', r.stderr);
  const local = await c.ctl(['recv', '1000', '--timeout', '1s']);
  assert.equal(local.json.code, 'CONNECTION_REFUSED');
  assert.match(local.json.hint, /services\.json/);
  // the rest of the services still run
  assert.equal((await p.a.ctl(['send-message', c.address, '--data', 'still on'])).code, 0);
});

test('untrusted peers are refused on port 1000 (stream and datagram), even with a session', async () => {
  const pub = await startAgent(p.rdv, p.work, 'stdio-public', ['--public']);
  p.agents.push(pub);
  const home = path.join(p.work, 'stdio-intruder');
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const config = v.parse(DaemonConfigSchema, {
    registry: p.rdv.addr,
    email: 'stdio-intruder@example.com',
    hostname: 'stdio-intruder',
    listen: '127.0.0.1:0',
    socket: path.join(home, 'pilot.sock'),
  });
  const intruder = await Daemon.start({ home, config, logger: silentLogger() });
  try {
    // the start-up trust sync would erase the forgery below: let it happen first
    await sleep(1500);
    intruder.trust.addTrusted(pub.address, 'stdio-public'); // forged on its side only
    const s = await intruder.dial(pub.address, 1000);
    const err = await new Promise<unknown>((resolve) => {
      s.on('error', resolve);
      s.on('data', (d: Buffer) => resolve(new Error(`answered ${d.toString()}`)));
      s.end('let me in\n');
    });
    assert.equal(asPilotError(err).code, 'NOT_TRUSTED', asPilotError(err).message);
    await intruder.sendDatagram(pub.address, 1000, 1000, Buffer.from('datagram in'));
    await sleep(500);
    const st = await stdioStatus(pub);
    assert.equal(st.received, 0);
    // and the honest untrusted path: pilotctl refuses before sending
    const x = await p.a.ctl(['connect', pub.address, '--message', 'x']);
    assert.equal(x.json.code, 'NOT_TRUSTED');
  } finally {
    await intruder.stop();
  }
});
