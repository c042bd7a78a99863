// What `pilotctl daemon start` says when it cannot start, run for real: each
// message names the real cause, and each hint the flag that fixes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { Agent, startRendezvous, tmpDir } from '../helpers/cluster.ts';

/** A TCP and UDP port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

test('a wrong registry port: one UNREACHABLE naming udp, tcp and websocket with their reasons', async () => {
  const port = await closedPort();
  const a = new Agent('a', tmpDir('pilot-starterr-'));
  const r = await a.ctl(['daemon', 'start', '--registry', `127.0.0.1:${port}`, '--email', 'a@example.com']);
  assert.notEqual(r.code, 0);
  assert.equal(r.json.code, 'UNREACHABLE', r.stderr);
  const at = `127.0.0.1:${port}`;
  assert.match(
    r.json.message,
    new RegExp(`^no uplink reached the rendezvous ${at}: udp ${at}: no answer to a hello; tcp ${at}: .*ECONNREFUSED.*; websocket ws://${at}/pilot: `),
  );
  assert.match(r.json.hint, new RegExp(`nothing accepts connections on ${at}`));
  assert.ok(!/default/.test(r.json.message), 'the registry was given: no word about a default');
});

test('no --registry: the default is named, in the error and in the start output', async (t) => {
  const a = new Agent('a', tmpDir('pilot-starterr-'));
  const env = process.env.PILOT_REGISTRY;
  delete process.env.PILOT_REGISTRY;
  t.after(() => {
    if (env !== undefined) process.env.PILOT_REGISTRY = env;
  });
  const r = await a.ctl(['daemon', 'start', '--email', 'a@example.com']);
  if (r.code === 0) {
    // a rendezvous happens to run on this host's default port: then the output says it was the default
    assert.equal(r.json.data.registryDefault, true);
    assert.equal(r.json.data.registry, '127.0.0.1:9000');
    await a.stop();
    return;
  }
  assert.equal(r.json.code, 'UNREACHABLE', r.stderr);
  assert.match(r.json.message, /\(127\.0\.0\.1:9000 is the default: no --registry was given\)$/);
  assert.match(r.json.hint, /^pass the rendezvous with --registry HOST:PORT/);
});

test('a busy --listen: ADDRESS_IN_USE with the port and the flag, not INTERNAL', async () => {
  const rdv = await startRendezvous();
  const holder = dgram.createSocket('udp4');
  await new Promise<void>((r) => holder.bind(0, '127.0.0.1', () => r()));
  const port = holder.address().port;
  try {
    const a = new Agent('a', tmpDir('pilot-starterr-'));
    const r = await a.ctl(['daemon', 'start', '--registry', rdv.addr, '--email', 'a@example.com', '--listen', `127.0.0.1:${port}`]);
    assert.notEqual(r.code, 0);
    assert.equal(r.json.code, 'ADDRESS_IN_USE', r.stderr);
    assert.match(r.json.message, new RegExp(`udp 127\\.0\\.0\\.1:${port} is already in use`));
    assert.match(r.json.hint, /--listen/);
  } finally {
    holder.close();
    await rdv.kill();
  }
});

test('a bad --uplink: the hint is about --uplink, not --email and --hostname', async () => {
  const a = new Agent('a', tmpDir('pilot-starterr-'));
  const r = await a.ctl(['daemon', 'start', '--registry', '127.0.0.1:9', '--email', 'a@example.com', '--uplink', 'quic']);
  assert.notEqual(r.code, 0);
  assert.equal(r.json.code, 'BAD_ARGUMENT');
  assert.match(r.json.message, /^--uplink: /);
  assert.equal(r.json.hint, '--uplink takes auto, udp, tcp, websocket or wss');
  const both = await a.ctl(['daemon', 'start', '--registry', '127.0.0.1:9', '--email', 'nope', '--cc', 'vegas']);
  assert.match(both.json.hint, /--email takes an email address/);
  assert.match(both.json.hint, /--cc takes bbr, cubic or newreno/);
});
