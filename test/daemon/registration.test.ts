// Registration with a fake registry: the address is written down, a heartbeat
// carries our endpoints and report, and a failed one marks us offline, starts a
// fresh TCP link on a timeout, and registers again when the registry forgot us.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registration, type RegistrationCalls } from '../../src/daemon/registration.ts';
import * as v from 'valibot';
import { DaemonConfigSchema, loadConfig } from '../../src/daemon/config.ts';
import { PilotError } from '../../src/util/errors.ts';
import { silentLogger } from '../../src/util/logger.ts';

function rig() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-registration-'));
  const config = v.parse(DaemonConfigSchema, { registry: '127.0.0.1:9000', email: 'a@example.com', socket: path.join(home, 'pilot.sock') });
  const s = { calls: [] as unknown[], failWith: undefined as string | undefined, observed: [] as string[], events: [] as string[] };
  const client: RegistrationCalls = {
    register: async (p) => (s.calls.push(['register', p]), { address: '1:0001.0000.002A', observed: '203.0.113.1:4000' }) as never,
    heartbeat: async (p) => {
      s.calls.push(['heartbeat', p]);
      if (s.failWith) throw new PilotError(s.failWith as never, 'no');
      return { observed: '203.0.113.1:4001' } as never;
    },
    setHostname: async (h) => (s.calls.push(['hostname', h]), {}) as never,
    clearHostname: async () => (s.calls.push(['hostname-clear']), {}) as never,
    setVisibility: async (v) => (s.calls.push(['visibility', v]), {}) as never,
    resolve: async (q) =>
      (s.calls.push(['resolve', q]), { address: '1:0001.0000.002B', publicKey: Buffer.alloc(32, 1).toString('base64'), endpoints: null }) as never,
  };
  const reg = new Registration(
    {
      log: silentLogger(),
      home,
      config,
      lanEndpoints: () => ['10.0.0.5:4000'],
      report: () => ({ nat: 'eim' }),
      observed: (e) => s.observed.push(e),
      syncTrust: async () => void s.events.push('sync'),
      reconnectUplink: (reason) => s.events.push(`reconnect ${reason}`),
    },
    client,
  );
  return { reg, s, home, config };
}

test('register: our address, written to <home>/address; a heartbeat reports and syncs trust', async () => {
  const { reg, s, home } = rig();
  assert.equal(reg.online, false);
  await reg.register();
  assert.equal(reg.address?.node, 0x2a);
  assert.equal(reg.online, true);
  assert.equal(fs.readFileSync(path.join(home, 'address'), 'utf8'), '1:0001.0000.002A\n');
  assert.deepEqual(s.calls[0], ['register', { email: 'a@example.com', lanEndpoints: ['10.0.0.5:4000'], public: false }]);
  await reg.heartbeat();
  assert.deepEqual(s.calls[1], ['heartbeat', { lanEndpoints: ['10.0.0.5:4000'], nat: 'eim' }]);
  assert.deepEqual(s.observed, ['203.0.113.1:4000', '203.0.113.1:4001']);
  assert.deepEqual(s.events, ['sync']);
});

test('a failed heartbeat: offline; a timeout reopens the uplink; a forgotten node registers again', async () => {
  const { reg, s } = rig();
  await reg.register();
  s.failWith = 'TIMEOUT';
  await reg.heartbeat();
  assert.equal(reg.online, false);
  assert.deepEqual(s.events, ['reconnect heartbeat unanswered']);
  s.failWith = 'NOT_REGISTERED';
  await reg.heartbeat();
  assert.deepEqual(
    s.calls.map((c) => (c as [string])[0]),
    ['register', 'heartbeat', 'heartbeat', 'register'],
  );
  assert.equal(reg.online, true, 'registered again');
});

test('hostname and visibility are saved in the config file; a lookup decodes the record', async () => {
  const { reg, home, config } = rig();
  await reg.setHostname('alpha');
  await reg.setVisibility(true);
  assert.equal(loadConfig(home)?.hostname, 'alpha');
  assert.equal(loadConfig(home)?.public, true);
  await reg.setHostname(undefined);
  assert.equal(config.hostname, undefined);
  const r = await reg.resolve({ hostname: 'beta' });
  assert.equal(r.address.node, 0x2b);
  assert.ok(r.publicKey.equals(Buffer.alloc(32, 1)));
  assert.deepEqual(r.endpoints, []);
  assert.equal(r.public, false);
});
