import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { serveIpc, PipeResult, type HandlerContext } from '../../src/ipc/server.ts';
import { IpcClient, pipeRequest } from '../../src/ipc/client.ts';
import { PilotError } from '../../src/util/errors.ts';

// The transport (serveIpc, IpcClient.request, pipeRequest) with made-up methods;
// the daemon's contract on top of it (startIpcServer, call) is test/ipc/api.test.ts.
type StubHandler = (params: Record<string, unknown>, ctx: HandlerContext) => unknown;
function serveTable(p: string, handlers: Record<string, StubHandler>) {
  return serveIpc(p, (method, params, ctx) => {
    const h = Object.hasOwn(handlers, method) ? handlers[method] : undefined;
    if (!h) throw new PilotError('BAD_REQUEST', `unknown method ${JSON.stringify(method)}`);
    return h(params ?? {}, ctx);
  });
}

function tmpSock(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-ipc-')), 's.sock');
}

test('requests, events, errors, owner-only socket', async () => {
  const p = tmpSock();
  const server = await serveTable(p, {
    add: (params) => (params.a as number) + (params.b as number),
    count: async (_p, ctx) => {
      for (let i = 0; i < 3; i++) ctx.emit('tick', { i });
      return 'done';
    },
    boom: () => {
      throw new PilotError('NOT_FOUND', 'nothing here', 'try elsewhere');
    },
  });
  try {
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
    const c = new IpcClient(p);
    assert.equal(await c.request('add', { a: 2, b: 3 }), 5);
    const ticks: unknown[] = [];
    assert.equal(await c.request('count', {}, (_e, d) => ticks.push(d)), 'done');
    assert.deepEqual(ticks, [{ i: 0 }, { i: 1 }, { i: 2 }]);
    await assert.rejects(c.request('boom'), (e: unknown) => e instanceof PilotError && e.code === 'NOT_FOUND' && e.hint === 'try elsewhere');
    await assert.rejects(c.request('nope'), (e: unknown) => e instanceof PilotError && e.code === 'BAD_REQUEST');
    await assert.rejects(c.request('__proto__'), (e: unknown) => e instanceof PilotError && e.code === 'BAD_REQUEST');
    c.close();
  } finally {
    await server.close();
  }
});

test('garbage on the socket gets an error line and the server keeps serving', async () => {
  const p = tmpSock();
  const server = await serveTable(p, { ping: () => 'pong' });
  try {
    const raw = net.connect(p);
    const reply = await new Promise<string>((resolve) => {
      let buf = '';
      raw.on('data', (c) => {
        buf += c;
        if (buf.includes('\n')) resolve(buf);
      });
      raw.write('this is not json\n');
    });
    assert.match(reply, /BAD_REQUEST/);
    raw.write(Buffer.alloc(2 << 20, 0x41)); // an endless line
    await new Promise((r) => raw.on('close', r));
    const c = new IpcClient(p);
    assert.equal(await c.request('ping'), 'pong');
    c.close();
  } finally {
    await server.close();
  }
});

test('a second server on a live socket is refused; a stale socket is replaced', async () => {
  const p = tmpSock();
  const server = await serveTable(p, {});
  await assert.rejects(serveTable(p, {}), (e: unknown) => e instanceof PilotError && e.code === 'DAEMON_RUNNING');
  await server.close();
  // a regular file at the path is not a stale socket: refused and left alone (never delete what is not ours to delete)
  fs.writeFileSync(p, 'keep');
  await assert.rejects(serveTable(p, {}), (e: unknown) => e instanceof PilotError && e.code === 'UNSAFE_SOCKET');
  assert.equal(fs.readFileSync(p, 'utf8'), 'keep');
  fs.rmSync(p);
  // a socket file nobody listens on (a crashed daemon's): replaced
  assert.equal(spawnSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(p)})`]).status, 0);
  assert.ok(fs.lstatSync(p).isSocket());
  const again = await serveTable(p, { ok: () => true });
  const c = new IpcClient(p);
  assert.equal(await c.request('ok'), true);
  c.close();
  await again.close();
});

test('a pipe carries binary bytes both ways with half-close', async () => {
  const p = tmpSock();
  const echo = new PassThrough();
  const server = await serveTable(p, { dial: () => new PipeResult({ port: 7 }, echo) });
  try {
    const { socket, result } = await pipeRequest('dial', {}, p);
    assert.deepEqual(result, { port: 7 });
    const payload = Buffer.from([0, 10, 13, 255, 10, 0x80, 0xc3, 10]);
    const got: Buffer[] = [];
    socket.on('data', (c: Buffer) => got.push(c));
    socket.resume(); // openPipe hands the socket back paused so no byte is lost
    const ended = new Promise((r) => socket.on('end', r));
    socket.end(payload);
    await ended;
    assert.deepEqual(Buffer.concat(got), payload);
  } finally {
    await server.close();
  }
});

/** A remote end that answers late: everything it got, 30 ms after the client's end. */
function lateEcho(): Duplex {
  const got: Buffer[] = [];
  const d: Duplex = new Duplex({
    allowHalfOpen: true,
    read() {},
    write(c: Buffer, _e, cb) {
      got.push(c);
      cb();
    },
    final(cb) {
      setTimeout(() => {
        d.push(Buffer.concat(got));
        d.push(null);
      }, 30);
      cb();
    },
  });
  return d;
}

test('a pipe client that ends its side still gets everything sent after (half-close)', async () => {
  const p = tmpSock();
  const server = await serveTable(p, { dial: () => new PipeResult({ port: 7 }, lateEcho()) });
  try {
    const { socket } = await pipeRequest('dial', {}, p);
    const got: Buffer[] = [];
    socket.on('data', (c: Buffer) => got.push(c));
    socket.resume();
    const ended = new Promise((r) => socket.on('end', r));
    const payload = Buffer.alloc(3 * 1024 * 1024, 7);
    socket.end(payload);
    await ended;
    assert.equal(Buffer.concat(got).length, payload.length);
  } finally {
    await server.close();
  }
});

test('a raw client that sends a request and ends at once still gets its answer', async () => {
  const p = tmpSock();
  const server = await serveTable(p, {
    slow: async () => {
      await new Promise((r) => setTimeout(r, 30));
      return 'late';
    },
    dial: () => new PipeResult({ port: 7 }, lateEcho()),
  });
  try {
    const talk = (text: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const raw = net.connect({ path: p, allowHalfOpen: true });
        let buf = '';
        raw.on('data', (c: Buffer) => (buf += c.toString('latin1')));
        raw.on('end', () => resolve(buf));
        raw.on('error', reject);
        raw.end(text);
      });
    assert.match(await talk('{"id":1,"method":"slow"}\n'), /"result":"late"/);
    // request and payload in one write, then end: the pipe still sees the payload and the end
    const out = await talk('{"id":2,"method":"dial"}\nhello');
    assert.ok(out.endsWith('hello'), out);
  } finally {
    await server.close();
  }
});

test('a pipe whose remote fails closes the client (no hang) and the server keeps serving', async () => {
  const p = tmpSock();
  const failing = new Duplex({
    read() {},
    write(_c, _e, cb) {
      cb();
    },
  });
  const server = await serveTable(p, { dial: () => new PipeResult({ port: 7 }, failing), ping: () => 'pong' });
  try {
    const { socket } = await pipeRequest('dial', {}, p);
    socket.resume();
    socket.on('error', () => {});
    // (a unix socket has no RST: the client sees the close, the daemon's log says why)
    const closed = new Promise((r) => socket.on('close', r));
    setTimeout(() => failing.destroy(new Error('remote reset')), 20);
    await closed;
    const c = new IpcClient(p);
    assert.equal(await c.request('ping'), 'pong');
    c.close();
  } finally {
    await server.close();
  }
});

test('no daemon gives NO_DAEMON with a hint', async () => {
  const c = new IpcClient(path.join(os.tmpdir(), 'definitely-missing.sock'));
  await assert.rejects(c.request('info'), (e: unknown) => e instanceof PilotError && e.code === 'NO_DAEMON' && /daemon start/.test(e.hint ?? ''));
});

/** A fake daemon that answers every connection with `reply` (raw bytes) and keeps it open. */
async function hostileDaemon(reply: string | Buffer): Promise<{ path: string; close: () => Promise<void> }> {
  const p = tmpSock();
  const conns = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    conns.add(s);
    s.on('error', () => {});
    s.once('data', () => s.write(reply));
  });
  await new Promise<void>((r) => srv.listen(p, r));
  return {
    path: p,
    close: () =>
      new Promise<void>((r) => {
        for (const s of conns) s.destroy();
        srv.close(() => r());
      }),
  };
}

test('malformed replies are rejected with a code, never crash the client (hostile daemon)', async () => {
  for (const bad of [
    'null\n',
    '[]\n',
    '42\n',
    '"x"\n',
    '{"id":1}\n',
    '{"id":1,"ok":false}\n',
    '{"id":1,"ok":false,"error":null}\n',
    '{"id":1,"ok":false,"error":{"code":7,"message":"m"}}\n',
    '{not json\n',
  ]) {
    const d = await hostileDaemon(bad);
    try {
      await assert.rejects(pipeRequest('dial', {}, d.path), (e: unknown) => e instanceof PilotError && e.code === 'INTERNAL', bad);
    } finally {
      await d.close();
    }
  }
  // an event before the pipe's answer is refused too
  const ev = await hostileDaemon('{"id":1,"event":"x","data":null}\n');
  await assert.rejects(pipeRequest('dial', {}, ev.path), (e: unknown) => e instanceof PilotError && e.code === 'INTERNAL');
  await ev.close();
  // the request connection skips junk lines and still takes the real answer
  const mixed = await hostileDaemon('null\n[]\n{"id":1,"ok":false,"error":{"code":"NOT_FOUND","message":"no","hint":"h"}}\n');
  const c = new IpcClient(mixed.path);
  await assert.rejects(c.request('x'), (e: unknown) => e instanceof PilotError && e.code === 'NOT_FOUND' && e.hint === 'h');
  c.close();
  await mixed.close();
});

test('a pipe answer and the first stream bytes in one write: no byte lost', async () => {
  const d = await hostileDaemon(Buffer.concat([Buffer.from('{"id":1,"ok":true,"result":{"port":7}}\n'), Buffer.from([0, 10, 255, 10])]));
  try {
    const { socket, result } = await pipeRequest('dial', {}, d.path);
    assert.deepEqual(result, { port: 7 });
    const first = new Promise<Buffer>((r) => socket.once('data', r));
    socket.resume(); // handed back paused
    assert.deepEqual(await first, Buffer.from([0, 10, 255, 10]));
    socket.destroy();
  } finally {
    await d.close();
  }
});

test('requests sent at once share one connection, and close() ends it', async () => {
  // A bare NDJSON server that counts connections: three requests made before the
  // first connect finished used to open three sockets, close() ended one, and the
  // other two kept the process alive (pilotctl status hung).
  const p = tmpSock();
  const open = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((sock) => {
    connections++;
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    let buf = '';
    sock.on('data', (c: Buffer) => {
      buf += c.toString();
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) break;
        const req = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        sock.write(`${JSON.stringify({ id: req.id, ok: true, result: req.params.v })}\n`);
      }
    });
    sock.on('end', () => sock.end());
  });
  await new Promise<void>((r) => server.listen(p, r));
  try {
    const c = new IpcClient(p);
    const got = await Promise.all([c.request('echo', { v: 1 }), c.request('echo', { v: 2 }), c.request('echo', { v: 3 })]);
    assert.deepEqual(got, [1, 2, 3]);
    assert.equal(connections, 1);
    c.close();
    for (let i = 0; i < 100 && open.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(open.size, 0, 'close() ended every connection');
  } finally {
    for (const s of open) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
