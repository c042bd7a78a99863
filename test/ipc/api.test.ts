// The IPC contract (src/ipc/api.ts) through a real IPC server on a temp socket,
// with stub handlers that echo the params they were given (no daemon): every
// method has a schema, bad params are refused with BAD_ARGUMENT naming the
// parameter before any handler runs, defaults are filled in, unknown methods
// are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as v from 'valibot';
import { METHODS, PARAMS, MAX_EVENT_DATA, answerWith, type Method } from '../../src/ipc/api.ts';
import { invoke, startIpcServer, type Handlers, type IpcServer } from '../../src/ipc/server.ts';
import { IpcClient } from '../../src/ipc/client.ts';
import { PilotError } from '../../src/util/errors.ts';
import { parsePort } from '../../src/wire/address.ts';

/** The method names pilotctl and the SDK use today: the contract must keep every one (renaming one breaks clients). */
const KNOWN = [
  'info', 'status', 'stop', 'set_hostname', 'clear_hostname', 'set_visibility', 'find', 'peers', 'stats',
  'ping', 'connect', 'send', 'recv', 'bench', 'connections', 'disconnect', 'traceroute', 'broadcast',
  'handshake', 'pending', 'approve', 'reject', 'trust', 'untrust',
  'dial', 'listen', 'accept',
  'sdk_dial', 'sdk_accept', 'sdk_pipe_error', 'sdk_reset', 'sdk_cancel', 'sdk_listen', 'sdk_recv', 'events',
  'gateway_start', 'gateway_map', 'gateway_unmap', 'gateway_list', 'gateway_stop', 'expose', 'expose_list', 'expose_remove',
  'stdio_recv', 'stdio_status', 'send_message', 'inbox', 'send_file', 'received', 'publish', 'subscribe', 'pubsub_status',
  'task_submit', 'task_list', 'task_accept', 'task_decline', 'task_execute', 'task_send_results',
  'set_webhook', 'clear_webhook', 'webhook_status',
  'network_create', 'network_list', 'network_members', 'network_invite', 'network_invites', 'network_revoke_invite', 'network_join',
  'network_leave', 'network_kick', 'network_delete', 'network_policy', 'network_audit', 'set_tags', 'clear_tags', 'network_find',
  'rotate_key',
  'deregister',
]; // biome-ignore format: one group per line

/** Stub handlers: each answers { method, params } with the params as the handler got them. */
function echoHandlers(seen: Array<{ method: string; params: unknown }>): Handlers {
  const table = Object.fromEntries(
    METHODS.map((m) => [
      m,
      (params: unknown) => {
        seen.push({ method: m, params });
        return { method: m, params };
      },
    ]),
  );
  // stubs: every method answers its params (the answers' shapes are the type checker's job, not this test's)
  return table as unknown as Handlers;
}

async function withServer(fn: (c: IpcClient, seen: Array<{ method: string; params: unknown }>) => Promise<void>): Promise<void> {
  const p = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-api-')), 's.sock');
  const seen: Array<{ method: string; params: unknown }> = [];
  const server: IpcServer = await startIpcServer(p, echoHandlers(seen));
  const c = new IpcClient(p);
  try {
    await fn(c, seen);
  } finally {
    c.close();
    await server.close();
  }
}

/** Rejects with BAD_ARGUMENT whose message is `message` (or matches it), and no handler ran. */
async function refused(c: IpcClient, seen: unknown[], method: string, params: Record<string, unknown>, message: string | RegExp): Promise<void> {
  const before = seen.length;
  await assert.rejects(c.request(method, params), (e: unknown) => {
    assert.ok(e instanceof PilotError, String(e));
    assert.equal(e.code, 'BAD_ARGUMENT', `${method} ${JSON.stringify(params)}: ${e.message}`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
  assert.equal(seen.length, before, `${method}: the handler must not run on bad params`);
}

test('every method has a params schema, and the names are those clients use', () => {
  assert.deepEqual([...METHODS].sort(), [...KNOWN].sort());
  for (const m of METHODS) assert.equal(typeof PARAMS[m]['~run'], 'function', m);
});

test('each method with required params refuses {} with BAD_ARGUMENT naming a parameter; the others accept it', async () => {
  await withServer(async (c, seen) => {
    for (const m of METHODS) {
      const r = v.safeParse(PARAMS[m], {});
      if (r.success) {
        const got = (await c.request(m, {})) as { method: Method };
        assert.equal(got.method, m);
      } else {
        await refused(c, seen, m, {}, /parameter "\w+"|invalid port|give at least one target/);
      }
    }
  });
});

test('bounds: types, lengths, ranges and required-ness are refused with the parameter named', async () => {
  await withServer(async (c, seen) => {
    await refused(c, seen, 'find', {}, 'missing parameter "target"');
    await refused(c, seen, 'disconnect', { id: 1.5 }, 'parameter "id" must be a whole number in 1..9007199254740991');
    await refused(c, seen, 'disconnect', { id: 0 }, 'parameter "id" must be a number in 1..9007199254740991');
    await refused(c, seen, 'broadcast', { net: 'fleet', port: 4000, data: 'd'.repeat(4097) }, 'parameter "data" must be a string of at most 4096 characters');
    await refused(c, seen, 'set_tags', { tags: 'worker' }, 'tags must be a list of at most 16 strings');
    await refused(c, seen, 'network_invite', { net: 'fleet', tags: [7] }, 'tags must be a list of at most 16 strings');
    await refused(c, seen, 'network_join', { token: 't'.repeat(4097) }, 'parameter "token" must be a string of at most 4096 characters');
    await refused(c, seen, 'find', { target: null }, 'missing parameter "target"');
    await refused(c, seen, 'find', { target: 7 }, 'parameter "target" must be a string of at most 65536 characters');
    await refused(c, seen, 'set_hostname', { hostname: 'h'.repeat(65537) }, 'parameter "hostname" must be a string of at most 65536 characters');
    await refused(c, seen, 'ping', { target: 'x', count: 0 }, 'parameter "count" must be a number in 1..10000');
    await refused(c, seen, 'ping', { target: 'x', intervalMs: 'soon' }, 'parameter "intervalMs" must be a number in 0..60000');
    await refused(c, seen, 'ping', { target: 'x', timeoutMs: 5 }, 'parameter "timeoutMs" must be a number in 10..60000');
    await refused(c, seen, 'connect', { target: 'x', timeoutMs: 600001 }, 'parameter "timeoutMs" must be a number in 10..600000');
    await refused(c, seen, 'send', { target: 'x', port: 7, data: 'd', srcPort: 65536 }, 'parameter "srcPort" must be a number in 0..65535');
    await refused(c, seen, 'recv', { port: 'abc' }, 'invalid port: abc');
    await refused(c, seen, 'send', { target: 'x', data: 'd' }, 'invalid port: undefined');
    await refused(c, seen, 'bench', { target: 'x', sizeMb: 0 }, 'parameter "sizeMb" must be a number in 0.001..4096');
    await refused(c, seen, 'handshake', { target: 'x', reason: 'r'.repeat(257) }, 'reason is limited to 256 characters');
    await refused(c, seen, 'sdk_dial', { port: 1, target: '' }, 'parameter "target" must be a non-empty string');
    await refused(c, seen, 'sdk_dial', { port: 1, target: 'x'.repeat(257) }, 'parameter "target" must be a string of at most 256 characters');
    // the SDK sends numbers: a numeric string is not one here (as before)
    await refused(c, seen, 'sdk_dial', { port: 1, target: 'x', timeoutMs: '100' }, 'parameter "timeoutMs" must be a number in 10..600000');
    await refused(c, seen, 'sdk_cancel', {}, 'missing parameter "token"');
    await refused(c, seen, 'gateway_start', { targets: [] }, 'give at least one target (address or hostname)');
    await refused(c, seen, 'gateway_start', { targets: ['a', 7] }, 'give at least one target (address or hostname)');
    await refused(c, seen, 'gateway_map', { target: 'x', ip: 'i'.repeat(1001) }, 'parameter "ip" must be a string of at most 1000 characters');
    await refused(c, seen, 'stdio_recv', { from: 'f'.repeat(257) }, 'parameter "from" must be a string of at most 256 characters');
    await refused(c, seen, 'stdio_recv', { count: -1 }, 'parameter "count" must be a number in 0..1000000000');
    await refused(c, seen, 'send_message', { target: 'x', type: 'zip', data: 'd' }, 'unknown message type "zip"');
    await refused(c, seen, 'send_message', { target: 'x' }, 'missing parameter "data"');
    await refused(c, seen, 'send_file', { target: 'x', path: 'relative.txt' }, 'path must be absolute (pilotctl resolves it)');
    await refused(
      c,
      seen,
      'publish',
      { target: 'x', topic: 't', data: 'd'.repeat(MAX_EVENT_DATA + 1) },
      `parameter "data" must be a string of at most ${MAX_EVENT_DATA} characters`,
    );
    await refused(c, seen, 'subscribe', { target: 'x', topic: 't'.repeat(257) }, 'parameter "topic" must be a string of at most 256 characters');
    await refused(c, seen, 'subscribe', { target: 'x', topic: 't', timeoutMs: 86_400_001 }, 'parameter "timeoutMs" must be a number in 0..86400000');
    await refused(c, seen, 'task_list', { type: 'all' }, '--type must be received or submitted');
    await refused(c, seen, 'task_accept', { id: 'i'.repeat(65) }, 'parameter "id" must be a string of at most 64 characters');
    await refused(c, seen, 'task_decline', { id: 'i', reason: 'r'.repeat(1025) }, 'parameter "reason" must be a string of at most 1024 characters');
    await refused(c, seen, 'task_send_results', { id: 'i' }, 'missing parameter "results"');
    await refused(c, seen, 'set_webhook', { url: 'u'.repeat(4097) }, 'parameter "url" must be a string of at most 4096 characters');
  });
});

test('the first bad parameter in the order the handlers checked them is the one named', async () => {
  await withServer(async (c, seen) => {
    await refused(c, seen, 'ping', { count: 0 }, 'missing parameter "target"');
    await refused(c, seen, 'handshake', { reason: 'r'.repeat(300) }, 'reason is limited to 256 characters');
    await refused(c, seen, 'sdk_dial', { port: 'x', target: '' }, 'invalid port: x');
  });
});

test('handlers get checked params with defaults filled in (numeric strings as numbers, null as absent)', async () => {
  await withServer(async (c) => {
    const params = async (method: string, p: Record<string, unknown>): Promise<unknown> => ((await c.request(method, p)) as { params: unknown }).params;
    assert.deepEqual(await params('ping', { target: 'x' }), { target: 'x', count: 4, intervalMs: 1000, timeoutMs: 3000 });
    assert.deepEqual(await params('ping', { target: 'x', count: '7', intervalMs: null }), { target: 'x', count: 7, intervalMs: 1000, timeoutMs: 3000 });
    assert.deepEqual(await params('connect', { target: 'x', port: null }), { target: 'x', port: 1000, timeoutMs: 5000 });
    assert.deepEqual(await params('recv', { port: '5001' }), { port: 5001, count: 1, timeoutMs: 0 });
    assert.deepEqual(await params('sdk_dial', { port: 80, target: 'x' }), { port: 80, target: 'x', timeoutMs: 10000 });
    assert.deepEqual(await params('send_message', { target: 'x', data: 'd' }), { target: 'x', type: 'text', data: 'd' });
    assert.deepEqual(await params('publish', { target: 'x', topic: 't' }), { target: 'x', topic: 't', data: '' });
    assert.deepEqual(await params('gateway_start', { targets: ['a'], ports: 80, portOffset: '8000' }), { targets: ['a'], ports: '80', portOffset: 8000 });
    // loose flags: only `true` is on (as the handlers had it)
    assert.deepEqual(await params('inbox', { clear: 'yes' }), { clear: false });
    assert.deepEqual(await params('set_visibility', { public: true }), { public: true });
    // unknown keys are dropped, never reach a handler
    assert.deepEqual(await params('info', { extra: 1 }), {});
  });
});

test('an unknown method is refused with BAD_REQUEST, also names of Object.prototype', async () => {
  await withServer(async (c, seen) => {
    for (const m of ['nope', '__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      await assert.rejects(
        c.request(m, {}),
        (e: unknown) => e instanceof PilotError && e.code === 'BAD_REQUEST' && e.message === `unknown method ${JSON.stringify(m)}`,
      );
    }
    assert.equal(seen.length, 0);
  });
});

test('invoke (the embedded SDK path, no socket) refuses alike', async () => {
  const seen: Array<{ method: string; params: unknown }> = [];
  const ctx = { emit: () => {}, closed: new Promise<void>(() => {}), isClosed: () => false };
  await assert.rejects(invoke(echoHandlers(seen), 'nope', {}, ctx), (e: unknown) => e instanceof PilotError && e.code === 'BAD_REQUEST');
  await assert.rejects(
    invoke(echoHandlers(seen), 'ping', { target: 'x', count: 0 }, ctx),
    (e: unknown) => e instanceof PilotError && e.code === 'BAD_ARGUMENT' && e.message === 'parameter "count" must be a number in 1..10000',
  );
  assert.deepEqual(await invoke(echoHandlers(seen), 'find', { target: 'x' }, ctx), { method: 'find', params: { target: 'x' } });
});

test('ports are checked by the wire rule: same answers and messages as parsePort', async () => {
  for (const x of [0, 1, 80, 65535, 65536, -1, 1.5, '80', '080', '65535', '65536', 'abc', '', ' 80', '1e3', null, undefined, true]) {
    let wire: number | string;
    try {
      wire = parsePort(x as string | number);
    } catch (e) {
      wire = (e as PilotError).message;
    }
    const r = v.safeParse(PARAMS.listen, x === undefined ? {} : { port: x });
    const ipc = r.success ? r.output.port : r.issues[0]?.message;
    assert.equal(ipc, wire, JSON.stringify(x));
  }
});

test('answerWith takes the branch an either-or answer was asked for', () => {
  const listed: { count: number; messages: string[] } | { cleared: number } = { count: 1, messages: ['m'] };
  assert.deepEqual(answerWith(listed, 'messages').messages, ['m']);
  assert.throws(
    () => answerWith(listed, 'cleared'),
    (e: unknown) => e instanceof PilotError && e.code === 'INTERNAL',
  );
});
