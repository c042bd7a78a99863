// Hostile input on the service ports of a real daemon: huge frames, bad JSON,
// lying headers, slow-loris; every one refused with a code, and the daemon
// keeps serving. And a node that is not trusted is refused on every service
// port even when it gets a session (a public target) and thinks it is trusted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openPipe } from '../../src/ipc/client.ts';
import { ByteReader, encodeFrame } from '../../src/services/framing.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import * as v from 'valibot';
import { DaemonConfigSchema } from '../../src/daemon/config.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { asPilotError } from '../../src/util/errors.ts';
import { startAgent, startPair, sleep, type Pair } from './helpers.ts';

let p: Pair;

before(async () => {
  p = await startPair('hostile');
});

after(async () => {
  await p?.stop();
});

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const frameOfText = (text: string): Buffer => Buffer.concat([u32(Buffer.byteLength(text)), Buffer.from(text)]);

/**
 * Raw bytes from a to b's port through a dial pipe; `chunks` are written in
 * order (a function chunk gets the frames read so far and may write more).
 * Returns every answer frame until b closes (or resets) the stream.
 */
async function raw(
  port: number,
  chunks: Array<Buffer | ((frames: any[]) => Buffer | undefined)>,
  opts: { end?: boolean; waitMs?: number } = {},
): Promise<any[]> {
  const { socket } = await openPipe('dial', { target: p.b.address, port }, p.a.socket);
  socket.on('error', () => {});
  const reader = new ByteReader(socket);
  const frames: any[] = [];
  const reading = (async () => {
    try {
      for (;;) {
        const f = await reader.readFrameOrEnd(1 << 20);
        if (f === null) return;
        frames.push(f);
      }
    } catch {
      /* reset */
    }
  })();
  for (const c of chunks) {
    if (typeof c === 'function') {
      for (let i = 0; i < 100 && frames.length === 0; i++) await sleep(20);
      const more = c(frames);
      if (more) socket.write(more);
    } else socket.write(c);
  }
  if (opts.end !== false) socket.end();
  const timer = setTimeout(() => socket.destroy(), opts.waitMs ?? 15_000);
  await reading;
  clearTimeout(timer);
  socket.destroy();
  return frames;
}

function refused(frames: any[], code: string): void {
  const last = frames[frames.length - 1];
  assert.ok(last, 'an answer frame');
  assert.equal(last.ok, false, JSON.stringify(frames));
  assert.equal(last.code, code, JSON.stringify(last));
  assert.equal(typeof last.message, 'string');
}

test('port 1001: huge frames, bad JSON and lying headers are refused with a code', async () => {
  const hdr = (h: unknown): Buffer => encodeFrame(h);
  const body = Buffer.from('hello');
  refused(await raw(1001, [u32(0xfffffff0), Buffer.alloc(64)]), 'FRAME_TOO_LARGE');
  refused(await raw(1001, [u32(16 * 1024 + 1)]), 'FRAME_TOO_LARGE');
  refused(await raw(1001, [frameOfText('{"type":"text", nope')]), 'BAD_REQUEST');
  refused(await raw(1001, [frameOfText('null')]), 'BAD_REQUEST');
  refused(await raw(1001, [frameOfText('[1,2,3]')]), 'BAD_REQUEST');
  refused(await raw(1001, [hdr({ type: 'exe', size: 5, sha256: sha(body) })]), 'BAD_REQUEST');
  refused(await raw(1001, [hdr({ type: 'text', size: -1, sha256: sha(body) })]), 'BAD_REQUEST');
  refused(await raw(1001, [hdr({ type: 'text', size: 5, sha256: 'zz' })]), 'BAD_REQUEST');
  refused(await raw(1001, [hdr({ type: 'text', size: 100 * 1024 * 1024, sha256: sha(body) })]), 'FRAME_TOO_LARGE');
  // a file no disk can hold is refused before a byte of it is sent
  refused(await raw(1001, [hdr({ type: 'file', name: 'x', size: Number.MAX_SAFE_INTEGER, sha256: sha(body) })]), 'FRAME_TOO_LARGE');
  // headers accepted, then the body lies
  const longer = await raw(1001, [hdr({ type: 'text', size: 5, sha256: sha(body) }), () => Buffer.from('hello, and more')]);
  assert.equal(longer[0].ok, true);
  refused(longer, 'BAD_REQUEST');
  const shorter = await raw(1001, [hdr({ type: 'text', size: 5, sha256: sha(body) }), () => Buffer.from('hel')]);
  refused(shorter, 'CONNECTION_RESET');
  refused(await raw(1001, [hdr({ type: 'text', size: 5, sha256: sha(Buffer.from('other')) }), () => body]), 'BAD_REQUEST');
  refused(await raw(1001, [hdr({ type: 'json', size: 5, sha256: sha(body) }), () => body]), 'BAD_REQUEST');
  const badFile = await raw(1001, [hdr({ type: 'file', name: 'bad.bin', size: 5, sha256: sha(Buffer.from('other')) }), () => body]);
  refused(badFile, 'BAD_REQUEST');
  // a flood of garbage: refused, the stream cut
  refused(await raw(1001, [crypto.randomBytes(3 * 1024 * 1024)]), 'FRAME_TOO_LARGE');

  // none of it got in, and the daemon serves as before
  assert.equal((await p.b.ctl(['inbox'])).json.data.messages.length, 0);
  assert.equal((await p.b.ctl(['received'])).json.data.files.length, 0);
  assert.deepEqual(fs.readdirSync(path.join(p.b.home, 'incoming')), []);
  const ok = await p.a.ctl(['send-message', p.b.address, '--data', 'still here?']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((await p.b.ctl(['inbox'])).json.data.messages[0].data, 'still here?');
});

test('port 1001: a header that never completes is cut after the request timeout', async () => {
  const t0 = Date.now();
  const frames = await raw(1001, [Buffer.from([0, 0])], { end: false, waitMs: 20_000 });
  refused(frames, 'TIMEOUT');
  assert.ok(Date.now() - t0 >= 9_000, `cut after ${Date.now() - t0} ms`);
});

test('port 1002: bad requests, bad topics and oversized events are refused', async () => {
  refused(await raw(1002, [frameOfText('{{{')]), 'BAD_REQUEST');
  refused(await raw(1002, [encodeFrame({ op: 'delete', topic: 'a' })]), 'BAD_REQUEST');
  refused(await raw(1002, [encodeFrame({ op: 'publish', topic: 'a..b', data: 'x' })]), 'BAD_ARGUMENT');
  refused(await raw(1002, [encodeFrame({ op: 'publish', topic: '../../etc', data: 'x' })]), 'BAD_ARGUMENT');
  refused(await raw(1002, [encodeFrame({ op: 'publish', topic: 'a'.repeat(300), data: 'x' })]), 'BAD_ARGUMENT');
  refused(await raw(1002, [encodeFrame({ op: 'subscribe', topic: 'a.**' })]), 'BAD_ARGUMENT');
  refused(await raw(1002, [encodeFrame({ op: 'publish', topic: 'a', data: 'x'.repeat(65 * 1024) })]), 'FRAME_TOO_LARGE');
  refused(await raw(1002, [u32(0x7fffffff)]), 'FRAME_TOO_LARGE');
  const okPub = await raw(1002, [encodeFrame({ op: 'publish', topic: 'a.b', data: 'x' })]);
  assert.deepEqual(okPub, [{ ok: true, delivered: 0 }]);
});

test('port 1003: bad requests, bad ids, oversized tasks and foreign updates are refused', async () => {
  refused(await raw(1003, [frameOfText('not json')]), 'BAD_REQUEST');
  refused(await raw(1003, [encodeFrame({ op: 'submit', id: '../../x', description: 'd' })]), 'BAD_REQUEST');
  refused(await raw(1003, [encodeFrame({ op: 'submit', id: crypto.randomUUID(), description: 'd'.repeat(70 * 1024) })]), 'FRAME_TOO_LARGE');
  refused(await raw(1003, [encodeFrame({ op: 'update', id: crypto.randomUUID(), status: 'completed', results: 'x' })]), 'NOT_FOUND');
  refused(await raw(1003, [encodeFrame({ op: 'update', id: crypto.randomUUID(), status: 'hacked' })]), 'BAD_REQUEST');
  refused(await raw(1003, [u32(0xffffffff)]), 'FRAME_TOO_LARGE');
  assert.equal((await p.b.ctl(['task', 'list'])).json.data.tasks.length, 0);
  // a task id submitted twice by the same peer with another text is a conflict
  const id = crypto.randomUUID();
  assert.equal((await raw(1003, [encodeFrame({ op: 'submit', id, description: 'one' })]))[0].ok, true);
  refused(await raw(1003, [encodeFrame({ op: 'submit', id, description: 'two' })]), 'BAD_REQUEST');
  const list = (await p.b.ctl(['task', 'list'])).json.data.tasks;
  assert.equal(list.length, 1);
  assert.equal(list[0].description, 'one');
});

test('an untrusted node that thinks it is trusted is refused on every service port', async () => {
  // a public target: sessions from anyone are allowed (for echo), so the refusal is the port's
  const pub = await startAgent(p.rdv, p.work, 'hostile-public', ['--public']);
  p.agents.push(pub);
  const home = path.join(p.work, 'hostile-intruder');
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const config = v.parse(DaemonConfigSchema, {
    registry: p.rdv.addr,
    email: 'intruder@example.com',
    hostname: 'hostile-intruder',
    listen: '127.0.0.1:0',
    socket: path.join(home, 'pilot.sock'),
  });
  const intruder = await Daemon.start({ home, config, logger: silentLogger() });
  try {
    // Let its start-up heartbeat (sent as soon as its NAT class is known) sync trust from the
    // registry first: that sync would rightly erase the forgery and reset the streams.
    await new Promise((r) => setTimeout(r, 1500));
    intruder.trust.addTrusted(pub.address, 'hostile-public'); // forged on its side only
    const body = Buffer.from('let me in');
    const requests: Array<[number, unknown]> = [
      [1001, { type: 'text', size: body.length, sha256: sha(body) }],
      [1001, { type: 'file', name: 'x', size: body.length, sha256: sha(body) }],
      [1002, { op: 'publish', topic: 'a', data: 'x' }],
      [1002, { op: 'subscribe', topic: '*' }],
      [1003, { op: 'submit', id: crypto.randomUUID(), description: 'd' }],
    ];
    for (const [port, req] of requests) {
      const s = await intruder.dial(pub.address, port);
      const reader = new ByteReader(s);
      s.write(encodeFrame(req));
      const err = await reader.readFrame().then(
        (f) => assert.fail(`port ${port} answered ${JSON.stringify(f)}`),
        (e: unknown) => asPilotError(e),
      );
      assert.equal(err.code, 'NOT_TRUSTED', `port ${port}: ${err.message}`);
    }
    // the echo port still answers (it is public), so the session itself was up
    const echo = await intruder.dial(pub.address, 7);
    const er = new ByteReader(echo);
    echo.end(Buffer.from('ping'));
    assert.equal((await er.readExact(4)).toString(), 'ping');
    assert.equal((await pub.ctl(['inbox'])).json.data.messages.length, 0);
    assert.equal((await pub.ctl(['task', 'list'])).json.data.tasks.length, 0);
    assert.equal((await pub.ctl(['received'])).json.data.files.length, 0);
  } finally {
    await intruder.stop();
  }
});
